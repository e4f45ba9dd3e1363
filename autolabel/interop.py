"""Hand-offs that keep everything: supervision ``Detections`` and FiftyOne datasets.

Both ways, nothing is lost: boxes, scores, class names, track ids, class probabilities,
crowd flags and every per-box ``Detections.data`` array (routing fields, agreement, ...).

- supervision (``pip install supervision``): :func:`to_supervision` /
  :func:`from_supervision`, also as :meth:`Detections.to_supervision` /
  :meth:`Detections.from_supervision`. Class names go in ``data["class_name"]`` (the
  convention of supervision's own converters) and in ``metadata["class_names"]``, the
  image identity in ``metadata["image"]``.
- FiftyOne (``pip install fiftyone``): :func:`to_fiftyone` / :func:`from_fiftyone`. One
  sample per image (``filepath``, ``metadata`` width/height, ``autolabel_key``) with a
  ``fo.Detections`` field: relative ``[x, y, w, h]`` boxes, ``confidence``, ``label``,
  the track id as the object ``index`` (FiftyOne's field for object identity across
  frames), and each ``data`` value as a custom attribute of its detection. The dataset's
  ``classes[label_field]`` holds the class names, ``info["autolabel"]`` the model id and
  the ``data`` dtypes and shapes. :func:`fiftyone_document` / :func:`from_fiftyone_document` do
  the same with FiftyOne's documented sample schema as plain dicts (what
  ``Sample.to_dict()`` gives), so the conversion itself needs neither FiftyOne nor its
  database.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from autolabel.core import Detections, ImageInfo, Results

if TYPE_CHECKING:
    import supervision as sv

__all__ = [
    "to_supervision",
    "from_supervision",
    "fiftyone_document",
    "from_fiftyone_document",
    "fiftyone_samples",
    "to_fiftyone",
    "from_fiftyone",
]

# the named per-box arrays travel in sv's data under these keys
_SV_NAMED = {"class_probs": "class_probs", "iscrowd": "iscrowd"}
# fields of a FiftyOne Detection that are not our data
_FO_RESERVED = frozenset(
    {"_id", "id", "_cls", "label", "bounding_box", "confidence", "index", "tags", "attributes", "mask",
     "mask_path", "instance", "iscrowd", "class_probs", "location", "dimensions", "rotation"}
)


# -- supervision ------------------------------------------------------------------------------------
def to_supervision(det: Detections) -> sv.Detections:
    """A ``supervision.Detections`` holding everything ``det`` holds.

    Args:
        det: detections of one image.

    Returns:
        ``sv.Detections`` with ``xyxy`` (N, 4) pixels, ``confidence``, ``class_id``,
        ``tracker_id`` (track ids or ``None``), ``data`` (``class_name`` (N,) str,
        ``class_probs``/``iscrowd`` where set, and every ``det.data`` array) and
        ``metadata`` (``class_names``, ``image``).

    Raises:
        ValueError: a ``det.data`` key clashes with ``class_name``, ``class_probs`` or ``iscrowd``.
    """
    import supervision as sv

    data: dict[str, Any] = {"class_name": np.array(det.labels, dtype=str).reshape(len(det))}
    for attr, key in _SV_NAMED.items():
        if getattr(det, attr) is not None:
            data[key] = getattr(det, attr)
    clash = sorted(set(det.data) & set(data) | set(det.data) & set(_SV_NAMED.values()))
    if clash:
        raise ValueError(f"Detections.data keys {clash} clash with the keys supervision's data uses for named arrays")
    data.update(det.data)
    return sv.Detections(
        xyxy=det.xyxy.copy(), confidence=det.scores.copy(), class_id=det.class_ids.copy(),
        tracker_id=None if det.track_id is None else det.track_id.copy(), data=data,
        metadata={"class_names": list(det.class_names), "image": det.image},
    )


def from_supervision(
    detections: sv.Detections, class_names: Sequence[str] | None = None, image: ImageInfo | None = None
) -> Detections:
    """Our :class:`~autolabel.core.Detections` from a ``supervision.Detections``.

    Args:
        detections: from :func:`to_supervision` or any supervision converter.
        class_names: the class list; default ``metadata["class_names"]``, else the
            sorted names in ``data["class_name"]`` (ids then follow those names).
        image: the image identity; default ``metadata["image"]``.

    Returns:
        Detections with every ``data`` entry other than ``class_name``,
        ``class_probs`` and ``iscrowd`` in ``data``; scores 1 where there is no ``confidence``.

    Raises:
        ValueError: no class ids and no class names, or names not in ``class_names``.
    """
    meta = getattr(detections, "metadata", None) or {}
    data = {k: np.asarray(v) for k, v in (detections.data or {}).items()}
    names_col = data.pop("class_name", None)
    names = tuple(class_names if class_names is not None else meta.get("class_names") or
                  (sorted(set(names_col.tolist())) if names_col is not None else ()))
    n = len(detections.xyxy)
    if names_col is not None and (class_names is not None or detections.class_id is None):
        unknown = sorted(set(names_col.tolist()) - set(names))
        if unknown:
            raise ValueError(f"class names {unknown} are not in class_names {list(names)[:10]}")
        ids = np.array([names.index(c) for c in names_col.tolist()], np.int64)
    elif detections.class_id is not None:
        ids = np.asarray(detections.class_id, np.int64)
    else:
        raise ValueError("the supervision detections carry neither class_id nor data['class_name']")
    scores = np.ones(n, np.float32) if detections.confidence is None else detections.confidence
    named = {attr: data.pop(key, None) for attr, key in _SV_NAMED.items()}
    return Detections(
        detections.xyxy, scores, ids, names, image if image is not None else meta.get("image"),
        track_id=detections.tracker_id, data=data, class_probs=named["class_probs"], iscrowd=named["iscrowd"],
    )


# -- FiftyOne ---------------------------------------------------------------------------------------
def fiftyone_document(
    results: Results, label_field: str = "predictions", image_root: str | os.PathLike | None = None
) -> dict[str, Any]:
    """``results`` in FiftyOne's sample schema, as plain dicts.

    Args:
        results: detections with their :class:`~autolabel.core.ImageInfo`.
        label_field: the samples' field holding the ``Detections``.
        image_root: where relative image keys lie (default: each image's own ``path``).

    Returns:
        ``{"info": {"autolabel": {model_id, data (dtypes, shapes), named}}, "classes": {label_field:
        names}, "samples": [sample dicts]}``; sample dicts as ``fo.Sample.to_dict()``
        gives them (``_cls`` tags included), boxes relative ``[x, y, w, h]``.

    Raises:
        ValueError: an image without identity or file path, or a data key FiftyOne reserves.
    """
    dtypes: dict[str, list[Any]] = {}  # data key -> [dtype, per-box shape], to rebuild exact arrays
    named: set[str] = set()
    samples = []
    for i, d in enumerate(results):
        info = d.image
        if info is None:
            raise ValueError(f"detections #{i} have no ImageInfo: FiftyOne samples need the image file and size")
        reserved = sorted(set(d.data) & _FO_RESERVED)
        if reserved:
            raise ValueError(f"image {info.key!r}: data keys {reserved} are reserved by FiftyOne's Detection")
        dtypes.update({k: [v.dtype.str, list(v.shape[1:])] for k, v in d.data.items()})
        named.update(a for a in ("track_id", "iscrowd", "class_probs") if getattr(d, a) is not None)
        path = os.path.join(str(image_root), info.file_name) if image_root is not None else info.path
        if not path:
            raise ValueError(f"image {info.key!r} has no file path: pass image_root=")
        w, h = info.width, info.height
        dets = []
        for j, ((x1, y1, x2, y2), label, score) in enumerate(zip(d.xyxy.tolist(), d.labels, d.scores.tolist())):
            o: dict[str, Any] = {
                "_cls": "Detection", "tags": [], "label": label,
                "bounding_box": [x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h], "confidence": score,
            }
            if d.track_id is not None:
                o["index"] = int(d.track_id[j])
            if d.iscrowd is not None:
                o["iscrowd"] = bool(d.iscrowd[j])
            if d.class_probs is not None:
                o["class_probs"] = d.class_probs[j].tolist()
            o.update({k: v[j].tolist() for k, v in d.data.items()})
            dets.append(o)
        sample: dict[str, Any] = {
            "filepath": os.path.abspath(path), "tags": [],
            "metadata": {"_cls": "ImageMetadata", "width": w, "height": h},
            "autolabel_key": info.key, label_field: {"_cls": "Detections", "detections": dets},
        }
        if info.frame_index is not None:
            sample.update(autolabel_frame_index=info.frame_index, autolabel_timestamp=info.timestamp)
        samples.append(sample)
    return {
        "info": {"autolabel": {"model_id": results.model_id, "data": dtypes, "named": sorted(named)}},
        "classes": {label_field: list(results.class_names)},
        "samples": samples,
    }


def from_fiftyone_document(
    document: Mapping[str, Any], label_field: str = "predictions", class_names: Sequence[str] | None = None
) -> Results:
    """:class:`~autolabel.core.Results` from FiftyOne sample dicts (see :func:`fiftyone_document`).

    Args:
        document: ``{"samples": [...], "classes": {...}, "info": {...}}``; ``classes``
            and ``info`` are optional (class names then come from ``class_names`` or the
            sorted labels found, dtypes from the values).
        label_field: the samples' ``Detections`` field.
        class_names: overrides ``classes[label_field]``.

    Returns:
        One Detections per sample, boxes in pixels, custom detection attributes in ``data``.

    Raises:
        ValueError: a sample without width/height metadata, a label not in the class
            names, or detections of one sample with different custom attributes.
    """
    samples = list(document.get("samples") or [])
    meta = (document.get("info") or {}).get("autolabel") or {}
    dtypes = meta.get("data") or {}
    named = set(meta.get("named") or ())
    fields = [(s.get(label_field) or {}).get("detections") or [] for s in samples]
    names = tuple(class_names or (document.get("classes") or {}).get(label_field)
                  or sorted({o.get("label") for dets in fields for o in dets}))
    out = []
    for s, dets in zip(samples, fields):
        where = f"FiftyOne sample {s.get('filepath')!r}"
        md = s.get("metadata") or {}
        if not md.get("width") or not md.get("height"):
            raise ValueError(f"{where}: no metadata width/height (run dataset.compute_metadata() first)")
        w, h = int(md["width"]), int(md["height"])
        unknown = sorted({o.get("label") for o in dets} - set(names))
        if unknown:
            raise ValueError(f"{where}: labels {unknown} are not in the class names {list(names)[:10]}")
        keys = {k for o in dets for k in o if k not in _FO_RESERVED}
        if any(set(o) - _FO_RESERVED != keys for o in dets):
            raise ValueError(f"{where}: its detections carry different custom attributes")
        box = np.array([o["bounding_box"] for o in dets], np.float64).reshape(-1, 4) * [w, h, w, h]
        box[:, 2:] += box[:, :2]

        if not dets:  # an image without boxes: the empty arrays the other images have
            keys = set(dtypes)

        def column(k: str, dtype: Any = None, tail: Sequence[int] = ()) -> np.ndarray | None:
            if not dets:
                return np.zeros((0, *tail), dtype) if k in named or k in dtypes else None
            return np.array([o[k] for o in dets], dtype) if k in dets[0] else None

        key = str(s.get("autolabel_key") or os.path.basename(str(s.get("filepath"))))
        frame = s.get("autolabel_frame_index")
        info = ImageInfo(key, w, h, s.get("filepath"), frame, s.get("autolabel_timestamp") if frame is not None else None)
        out.append(Detections(
            box, np.array([o.get("confidence", 1.0) for o in dets]), np.array([names.index(o["label"]) for o in dets]),
            names, info,
            class_probs=column("class_probs", np.float32, (len(names),)), iscrowd=column("iscrowd", bool),
            track_id=column("index") if dets else column("track_id", np.int64),
            data={k: v for k in sorted(keys) if (v := column(k, *dtypes.get(k, (None, ())))) is not None},
        ))
    return Results(out, names, str(meta.get("model_id") or ""))


def fiftyone_samples(
    results: Results, label_field: str = "predictions", image_root: str | os.PathLike | None = None
) -> list[Any]:
    """``fo.Sample`` objects of ``results``, not yet in a dataset (needs ``fiftyone``, not its database).

    Args:
        results: detections with their images.
        label_field: the samples' ``Detections`` field.
        image_root: where relative image keys lie (default: each image's ``path``).

    Returns:
        One ``fo.Sample`` per image (see :func:`fiftyone_document` for the fields).
    """
    import fiftyone as fo

    def detection(o: Mapping[str, Any]) -> Any:
        return fo.Detection(**{k: v for k, v in o.items() if k != "_cls"})

    samples = []
    for s in fiftyone_document(results, label_field, image_root)["samples"]:
        extra = {k: v for k, v in s.items() if k not in ("filepath", "tags", "metadata", label_field)}
        md = {k: v for k, v in s["metadata"].items() if k != "_cls"}
        dets = fo.Detections(detections=[detection(o) for o in s[label_field]["detections"]])
        samples.append(fo.Sample(filepath=s["filepath"], metadata=fo.ImageMetadata(**md), **{label_field: dets}, **extra))
    return samples


def to_fiftyone(
    results: Results, name: str | None = None, label_field: str = "predictions",
    image_root: str | os.PathLike | None = None,
) -> Any:
    """A new ``fiftyone.Dataset`` of ``results`` (needs ``fiftyone`` and its MongoDB).

    Args:
        results: detections with their images.
        name: the dataset name (FiftyOne's default when ``None``).
        label_field: the samples' ``Detections`` field.
        image_root: where relative image keys lie (default: each image's ``path``).

    Returns:
        The dataset, with ``classes[label_field]`` and ``info["autolabel"]`` set.
    """
    import fiftyone as fo

    doc = fiftyone_document(results, label_field, image_root)
    ds = fo.Dataset(name)
    ds.info = doc["info"]
    ds.classes = doc["classes"]
    ds.add_samples(fiftyone_samples(results, label_field, image_root))
    return ds


def from_fiftyone(
    samples: Any, label_field: str = "predictions", class_names: Sequence[str] | None = None,
    info: Mapping[str, Any] | None = None,
) -> Results:
    """:class:`~autolabel.core.Results` from a FiftyOne dataset or view (or any iterable of samples).

    Args:
        samples: a ``fo.Dataset``/``DatasetView`` (its ``classes`` and ``info`` are read) or samples.
        label_field: the ``Detections`` field to read.
        class_names: overrides the dataset's ``classes[label_field]``.
        info: overrides the dataset's ``info`` (model id, data dtypes; see :func:`fiftyone_document`).
    """
    doc = {
        "samples": [s.to_dict() for s in samples],
        "classes": dict(getattr(samples, "classes", None) or {}),
        "info": dict(info if info is not None else getattr(samples, "info", None) or {}),
    }
    return from_fiftyone_document(doc, label_field, class_names)
