"""COCO object-detection dataset JSON (loadable by ``pycocotools.coco.COCO``).

Written: ``info`` (``model_id``, ``date_created``, ``tool``, ``failures``), ``images``
(ids 1.., ``file_name``, ``width``, ``height``; video frames add ``video``,
``frame_index``, ``timestamp``), ``categories`` (ids 1..C in ``class_names`` order) and
``annotations`` with ``bbox`` ``[x, y, w, h]`` at full float precision, ``area``,
``iscrowd``, ``score`` and, for boxes of tracks, ``track_id`` (as in TAO and CVAT's COCO
variant; read back onto ``Detections.track_id``); boxes of segmentation models add
``segmentation`` (polygons in pixels, from ``Detections.data["polygons"]``; ``area``
stays the box area). Pose models' boxes add COCO ``person_keypoints`` fields: ``keypoints``
(flat ``x, y, v``; ``v`` = 2 where the model's visibility score >= ``keypoint_conf``, else 0),
``num_keypoints`` and ``keypoint_scores`` (the model's scores, read back onto
``Detections.keypoints``); categories carry the ``keypoints`` names and the 1-based
``skeleton``. Keypoints of ground truth or human labels (``v`` flags 0/1/2) are written as
they are, and ``area`` from ``Detections.data["area"]`` (COCO's segment area, which OKS
uses) when read from a COCO file that had keypoints.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.core import Failure, ImageInfo, Results
from autolabel.formats._common import (
    Builder, ResultsLike, check_names, keypoint_flags, labeled, now, num, number, with_keypoints,
)
from autolabel.io.files import atomic_writer, load_json
from autolabel.keypoints import KeypointSpec

__all__ = ["write_coco", "read_coco"]


def write_coco(results: ResultsLike, path: str | os.PathLike, keypoint_conf: float = 0.5) -> list[str]:
    """Write ``results`` as one COCO dataset JSON file; returns ``[path]``. ``keypoint_conf``:
    keypoints scoring below it are written with ``v = 0`` (not labeled; pose models only).

    Written as the images come (one pass, one image in memory): ``images`` straight to
    the file, ``annotations`` to a temporary file appended after them."""
    check_names(results.class_names)
    meta = {"description": f"pre-labels by {results.model_id or 'an unnamed model'}",
            "model_id": results.model_id, "date_created": now(), "tool": "autolabel"}
    folder = os.path.dirname(str(path)) or "."
    with atomic_writer(path) as f, tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder) as ann:
        # the same bytes as json.dumps of the whole dataset dict, written piece by piece
        f.write('{"info":' + _dumps(meta)[:-1] + ',"failures":[')
        f.write(",".join(_dumps({"key": x.key, "reason": x.reason}) for x in results.failures))
        f.write(']},"images":[')
        n_ann = 0
        for image_id, (d, info) in enumerate(labeled(results), start=1):
            record: dict[str, Any] = {"id": image_id, "file_name": info.file_name, "width": info.width,
                                      "height": info.height}
            if info.frame_index is not None:
                record.update(video=info.sequence_name, frame_index=info.frame_index,
                              timestamp=info.timestamp)
            f.write(("," if image_id > 1 else "") + _dumps(record))
            tracks = d.track_id.tolist() if d.track_id is not None else [None] * len(d)
            polygons = d.data.get("polygons")
            kps, areas = d.keypoints, d.data.get("area")
            for k, (b, s, c, z, t) in enumerate(zip(d.xyxy.tolist(), d.scores, d.class_ids.tolist(), d.crowd, tracks)):
                # float64 differences of float32 corners are exact: x + w gives x2 back bit for bit
                w, h = b[2] - b[0], b[3] - b[1]
                n_ann += 1
                record = {"id": n_ann, "image_id": image_id, "category_id": c + 1,
                          "bbox": [b[0], b[1], w, h], "area": w * h if areas is None else float(areas[k]),
                          "iscrowd": int(z), "score": float(num(s))}
                if t is not None:
                    record["track_id"] = t  # as TAO and CVAT's COCO export name it
                if polygons is not None and polygons[k]:
                    record["segmentation"] = list(polygons[k])
                if kps is not None:
                    record.update(_keypoint_fields(kps[k], keypoint_conf))
                ann.write(("," if n_ann > 1 else "") + _dumps(record))
        f.write('],"annotations":[')
        ann.seek(0)
        shutil.copyfileobj(ann, f)
        categories = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(results.class_names)]
        spec = getattr(results, "keypoint_spec", None)
        if spec is not None:
            for c in categories:
                c.update(keypoints=list(spec.names), skeleton=[[a + 1, b + 1] for a, b in spec.skeleton])
        f.write('],"categories":' + _dumps(categories) + "}")
    return [str(path)]


def _keypoint_fields(kp: Any, conf: float) -> dict[str, Any]:
    """COCO fields of one box's (K, 3) keypoints: flags as they are, or scores as flags + ``keypoint_scores``."""
    v = kp[:, 2]
    flags = keypoint_flags(v)  # labels (COCO's v), not a model's scores
    vis = v.astype(int) if flags else (v >= conf) * 2
    out: dict[str, Any] = {"keypoints": [x for (px, py), f in zip(kp[:, :2].tolist(), vis.tolist()) for x in (px, py, f)],
                           "num_keypoints": int((vis > 0).sum())}
    if not flags:
        out["keypoint_scores"] = [float(num(x)) for x in v]
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _categories(categories: list[Any], name: str, invalid_boxes: str) -> tuple[dict[Any, int], Builder]:
    """Category id -> class index (ids sorted), and a builder with the class names."""
    for c in categories:
        _id(c, name, "category")
    cats = sorted(categories, key=lambda c: (str(type(c["id"])), c["id"]))
    category = {c["id"]: i for i, c in enumerate(cats)}
    if len(category) != len(cats):
        raise ValueError(f"{name}: duplicate category ids")
    builder = Builder(name, [str(_field(c, "name", name, f"category {c['id']}")) for c in cats], invalid_boxes)
    if len(set(builder.names)) != len(builder.names):
        raise ValueError(f"{name}: duplicate category names")
    return category, builder


@dataclass
class _Rows:
    """One image's annotations as read, per box."""

    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    crowd: list[bool] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    tracks: list[int] = field(default_factory=list)
    keypoints: list[list[float]] = field(default_factory=list)
    areas: list[float] = field(default_factory=list)

    def builder_args(self) -> tuple[list, list, list, list, list]:
        return self.boxes, self.scores, self.ids, self.crowd, self.records

    def keep(self, kept: Sequence[int]) -> None:
        """Keep the per-box lists the builder does not hold of the boxes it kept."""
        self.tracks = [self.tracks[k] for k in kept]
        if self.keypoints:
            self.keypoints = [self.keypoints[k] for k in kept]
            self.areas = [self.areas[k] for k in kept]


def _images(images: list[Any], name: str) -> list[tuple[Any, ImageInfo]]:
    """``(image id, ImageInfo)`` of each ``images`` record, in order."""
    infos, seen = [], set()
    for im in images:
        image_id = _id(im, name, "image")
        where = f"image id {image_id}"
        if image_id in seen:
            raise ValueError(f"{name}: {where} appears twice")
        seen.add(image_id)
        fname = str(_field(im, "file_name", name, where))
        w, h = (int(number(_field(im, k, name, where), f"{name}: {where}", k)) for k in ("width", "height"))
        video, frame = im.get("video"), im.get("frame_index")
        if video and frame is not None:
            infos.append((image_id, ImageInfo(f"{video}#{frame}", w, h, None, frame, im.get("timestamp"))))
        else:
            infos.append((image_id, ImageInfo(fname, w, h)))
    return infos


def _check_annotation(a: Any, name: str, rows: Mapping[Any, Any], category: Mapping[Any, int]) -> str:
    """Refuse an annotation record that names no known image or category or has no box;
    returns how errors name it."""
    if not isinstance(a, dict):
        raise ValueError(f"{name}: annotation {a!r:.80} is not an object")
    where = f"{name}: annotation id {a.get('id')!r:.40}"
    for k in ("image_id", "category_id"):
        if not isinstance(a.get(k), (int, str)) or isinstance(a.get(k), bool):
            raise ValueError(f"{where}: {k} must be an integer (or a string), got {type(a.get(k)).__name__}")
    if a.get("image_id") not in rows:
        raise ValueError(f"{where}: unknown image_id {a.get('image_id')!r}")
    if a.get("category_id") not in category:
        raise ValueError(f"{where}: unknown category_id {a.get('category_id')!r}")
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
    return where


def read_coco(source: str | os.PathLike | dict[str, Any], invalid_boxes: str = "error") -> Results:
    """A COCO dataset (path or parsed dict): one :class:`Detections` per entry of
    ``images`` in order, even with no boxes. Class names come from ``categories``
    sorted by id (ids with gaps map to 0..C-1); ``score`` -> scores (absent: 1.0);
    ``iscrowd`` is kept. Keys are ``file_name`` (video frames written by autolabel get
    their ``"<video>#<frame>"`` key back). Bad records raise ``ValueError`` naming the
    file and the record; so do invalid boxes (non-finite, non-positive width or height,
    entirely outside the image), unless ``invalid_boxes="drop"`` (then dropped, with a
    warning)."""
    data, name = load_json(source)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: a COCO dataset is a JSON object, got {type(data).__name__}")
    missing = [k for k in ("images", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise ValueError(f"{name}: not a COCO dataset: missing or non-list {', '.join(missing)}")
    category, builder = _categories(data["categories"], name, invalid_boxes)
    kp_cat = next((c for c in data["categories"] if isinstance(c.get("keypoints"), list) and c["keypoints"]), None)
    spec = None if kp_cat is None else KeypointSpec.from_coco_category(kp_cat)
    infos = _images(data["images"], name)
    rows: dict[Any, _Rows] = {image_id: _Rows() for image_id, _ in infos}
    size = {image_id: (info.width, info.height) for image_id, info in infos}
    for a in data.get("annotations") or []:
        where = _check_annotation(a, name, rows, category)
        x, y, bw, bh = (number(v, where, "bbox") for v in a["bbox"])
        r = rows[a["image_id"]]
        r.records.append(f"annotation id {a.get('id')!r:.40}")
        r.boxes.append([x, y, x + bw, y + bh])
        r.scores.append(number(a.get("score", 1.0), where, "score"))
        r.ids.append(category[a["category_id"]])
        r.crowd.append(bool(a.get("iscrowd", 0)))
        r.tracks.append(int(number(a.get("track_id", -1), where, "track_id")))
        if spec is not None:
            w, h = size[a["image_id"]]
            r.keypoints.append(_read_keypoints(a, len(spec), where))
            r.areas.append(number(a.get("area", w * h), where, "area"))
    for image_id, info in infos:
        rows[image_id].keep(builder.add(info, *rows[image_id].builder_args()))
    meta: dict[str, Any] = data["info"] if isinstance(data.get("info"), dict) else {}
    failures = [Failure(str(f.get("key")), str(f.get("reason")))
                for f in meta.get("failures") or [] if isinstance(f, dict)]
    results = builder.results(str(meta.get("model_id") or ""), failures)
    if any("track_id" in a for a in data.get("annotations") or []):  # every image gets the array (-1 where absent)
        results.detections = [replace(d, track_id=np.asarray(rows[i].tracks, np.int64))
                              for d, (i, _) in zip(results.detections, infos)]
    if spec is not None:  # a keypoint dataset: every box gets keypoints (v = 0 where it has none), and its area
        with_keypoints(results, [rows[i].keypoints for i, _ in infos], spec,
                       [{"area": np.asarray(rows[i].areas)} for i, _ in infos])
    return results


def _id(record: Any, name: str, what: str) -> Any:
    """A record's ``id``: an integer (or a string), never a list or an object."""
    value = _field(record, "id", name, what)
    if not isinstance(value, (int, str)) or isinstance(value, bool):
        raise ValueError(f"{name}: {what} id must be an integer (or a string), got {type(value).__name__} "
                         f"in {what} {record!r:.80}")
    return value


def _read_keypoints(a: dict[str, Any], k: int, where: str) -> list[float]:
    """One annotation's (K * 3) keypoint values: v from ``keypoint_scores`` when written by autolabel."""
    flat = a.get("keypoints")
    if flat is None or (isinstance(flat, list) and not flat):
        return [0.0] * (3 * k)
    if not isinstance(flat, list) or len(flat) != 3 * k:
        raise ValueError(f"{where}: keypoints must be a list of {3 * k} numbers (x, y, v for {k} keypoints)")
    vals = [number(v, where, "keypoints") for v in flat]
    scores = a.get("keypoint_scores")
    if scores is not None:
        if not isinstance(scores, list) or len(scores) != k:
            raise ValueError(f"{where}: keypoint_scores must be a list of {k} numbers")
        vals[2::3] = [number(v, where, "keypoint_scores") for v in scores]
    return vals


def _field(record: Any, key: str, name: str, what: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        raise ValueError(f"{name}: {what} {record!r:.80} has no {key!r}")
    return record[key]
