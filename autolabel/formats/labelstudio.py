"""Label Studio: tasks JSON with ``predictions``, ready to import, and its labeling config.

Each task is ``{"data": {"image": <url>, "key", "width", "height", ...}, "predictions":
[{"model_version", "score", "result": [rectanglelabels regions]}]}``; region
``x, y, width, height`` are percent of the image size, with a per-region ``score``.
Boxes of segmentation models (``Detections.data["polygons"]``) add one ``polygonlabels``
region per polygon (``points`` in percent, control ``polygon``), and the config a
``PolygonLabels`` control. Boxes of pose models (``Detections.keypoints``) add one
``keypointlabels`` region per keypoint scoring >= ``keypoint_conf`` (or labeled, for COCO
flags 0/1/2; control ``keypoint``, ``x, y`` in percent, ``parentID`` = its box region, the
model's visibility score as region ``score``, a label's flag in ``meta.visibility``), and the
config a ``KeyPointLabels`` control with one label per keypoint name. Read back, a keypoint
belongs to its ``parentID`` box, or else to the smallest box holding it; a keypoint not
written (or not placed) reads as ``(0, 0, 0)``.
Images are referenced by URL (``image_root_url`` + the URL-quoted file name), never
embedded. :func:`labelstudio_config` gives the matching ``<View>`` config, also written
beside the tasks as ``label_config.xml``.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import quote, unquote

import numpy as np

from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.formats._common import (
    Builder, ResultsLike, Size, check_names, from_relative, image_score, keypoint_flags, labeled, load_xml, num, number,
    rotated_bounds, size_for, sub, to_relative, with_keypoints, xml_text,
)
from autolabel.io.files import atomic_write, atomic_writer, load_json
from autolabel.keypoints import KeypointSpec

__all__ = ["write_labelstudio", "read_labelstudio", "labelstudio_config", "CONFIG_NAME"]

CONFIG_NAME = "label_config.xml"
_RESERVED = ("image", "key", "width", "height", "frame_index", "timestamp")


def labelstudio_config(
    class_names: Sequence[str], polygons: bool = False, keypoints: KeypointSpec | None = None
) -> str:
    """The labeling config XML for rectangles over ``$image`` with these labels (escaped),
    polygons (control ``polygon``) when ``polygons``, and keypoints (control ``keypoint``,
    one label per keypoint name) with a ``keypoints`` spec."""
    view = ET.Element("View")
    sub(view, "Image", name="image", value="$image")
    controls = [("RectangleLabels", "label", class_names)] + ([("PolygonLabels", "polygon", class_names)] if polygons else [])
    controls += [("KeyPointLabels", "keypoint", keypoints.names)] if keypoints is not None else []
    for tag, name, values in controls:
        labels = sub(view, tag, name=name, toName="image", **({"smart": "false"} if tag == "KeyPointLabels" else {}))
        for n in values:
            sub(labels, "Label", value=n)
    return xml_text(view, declaration=False)


def _certified(d: Detections, key: str) -> np.ndarray | None:
    """``d.data["certified"]`` as (N,) bool, or ``None`` when absent."""
    c = d.data.get("certified")
    if c is None:
        return None
    if c.dtype != bool:
        raise ValueError(f"image {key!r}: data['certified'] must be bool per box, got dtype {c.dtype}")
    return c


def _polygon_regions(i: int, d: Any, info: ImageInfo, to_name: str = "image") -> list[dict[str, Any]]:
    """``polygonlabels`` regions of the boxes' mask polygons (points in percent)."""
    polygons = d.data.get("polygons")
    if polygons is None:
        return []
    out = []
    for j, (polys, name, s) in enumerate(zip(polygons, d.labels, d.scores)):
        for q, flat in enumerate(polys):
            points = [[100.0 * x / info.width, 100.0 * y / info.height] for x, y in zip(flat[::2], flat[1::2])]
            out.append({
                "id": f"{i}-{j}-p{q}", "from_name": "polygon", "to_name": to_name, "type": "polygonlabels",
                "original_width": info.width, "original_height": info.height, "image_rotation": 0,
                "value": {"points": points, "closed": True, "polygonlabels": [name]}, "score": float(num(s)),
            })
    return out


def _keypoint_regions(
    i: int, d: Any, info: ImageInfo, spec: Any, conf: float, names: tuple[str, str]
) -> list[dict[str, Any]]:
    """``keypointlabels`` regions of the boxes' keypoints that are shown (score >= conf) or labeled (flags)."""
    if spec is None or d.keypoints is None:
        return []
    flags = keypoint_flags(d.keypoints[:, :, 2])
    out = []
    for j, kp in enumerate(d.keypoints.tolist()):
        for n, (name, (x, y, vis)) in enumerate(zip(spec.names, kp)):
            if (vis == 0) if flags else (vis < conf):
                continue
            region = {
                "id": f"{i}-{j}-k{n}", "parentID": f"{i}-{j}", "from_name": names[0], "to_name": names[1],
                "type": "keypointlabels", "original_width": info.width, "original_height": info.height,
                "image_rotation": 0, "value": {"x": 100.0 * x / info.width, "y": 100.0 * y / info.height,
                                               "width": 0.6, "keypointlabels": [name]},
            }
            region.update({"meta": {"visibility": int(vis)}} if flags else {"score": float(num(vis))})
            out.append(region)
    return out


def labelstudio_tasks(
    results: ResultsLike,
    image_root_url: str = "",
    extra_data: Mapping[str, Mapping[str, Any]] | None = None,
    from_name: str = "label",
    to_name: str = "image",
    keypoint_conf: float = 0.5,
    keypoint_name: str | None = "keypoint",
) -> Iterator[dict[str, Any]]:
    """The import tasks, one per image, as :func:`write_labelstudio` writes them;
    ``from_name``/``to_name``: the project's RectangleLabels control and its image;
    ``keypoint_conf``: a pose model's keypoints scoring below it are left out;
    ``keypoint_name``: the project's KeyPointLabels control (``None``: no keypoint regions).

    A box with ``Detections.data["certified"]`` true gets region ``meta``
    ``{"certified": true, "text": ["certified"]}`` (Label Studio shows ``meta.text`` in
    the region's details), one with false ``{"certified": false}``, so annotators can
    tell certified boxes from uncertain ones.

    Raises:
        ValueError: an image without :class:`ImageInfo`, a repeated key, bad class
            names, reserved ``extra_data`` fields, or a non-bool ``certified``.
    """
    check_names(results.class_names)
    for i, (d, info) in enumerate(labeled(results)):
        boxes = to_relative(d, info, center=False, scale=100.0).tolist()
        regions = [
            {
                "id": f"{i}-{j}", "from_name": from_name, "to_name": to_name, "type": "rectanglelabels",
                "original_width": info.width, "original_height": info.height, "image_rotation": 0,
                "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [name]},
                "score": float(num(s)),
            }
            for j, ((x, y, w, h), name, s) in enumerate(zip(boxes, d.labels, d.scores))
        ]
        certified = _certified(d, info.key)
        if certified is not None:
            for r, c in zip(regions, certified.tolist()):
                r["meta"] = {"certified": True, "text": ["certified"]} if c else {"certified": False}
        regions += _polygon_regions(i, d, info, to_name)
        if keypoint_name is not None:
            spec = getattr(results, "keypoint_spec", None)
            regions += _keypoint_regions(i, d, info, spec, keypoint_conf, (keypoint_name, to_name))
        data: dict[str, Any] = {
            "image": image_root_url + quote(info.file_name, safe="/"), "key": info.key,
            "width": info.width, "height": info.height,
        }
        if info.frame_index is not None:
            data.update(frame_index=info.frame_index, timestamp=info.timestamp)
        extra = (extra_data or {}).get(info.key, {})
        clash = sorted(set(extra).intersection(_RESERVED))
        if clash:
            raise ValueError(f"extra_data for {info.key!r} may not set {', '.join(clash)}")
        data.update(extra)
        prediction = {"model_version": results.model_id, "score": float(num(image_score(d))), "result": regions}
        yield {"data": data, "predictions": [prediction]}


def write_labelstudio(
    results: ResultsLike,
    path: str | os.PathLike,
    image_root_url: str = "",
    extra_data: Mapping[str, Mapping[str, Any]] | None = None,
    keypoint_conf: float = 0.5,
) -> list[str]:
    """Write the tasks JSON to ``path`` and ``label_config.xml`` beside it.

    ``image_root_url`` prefixes every image (e.g. ``"/data/local-files/?d=photos/"``);
    ``extra_data`` maps an image key to fields merged into that task's ``data``;
    ``keypoint_conf``: a pose model's keypoints scoring below it are left out."""
    polygons = False
    with atomic_writer(path) as f:
        f.write("[")
        close = "]"
        for i, t in enumerate(labelstudio_tasks(results, image_root_url, extra_data, keypoint_conf=keypoint_conf)):
            polygons = polygons or any(r["type"] == "polygonlabels" for r in t["predictions"][0]["result"])
            task = json.dumps(t, indent=1, ensure_ascii=False, allow_nan=False)
            # the same bytes as json.dumps of the whole list with indent=1: each task one level in
            f.write(("," if i else "") + "\n " + task.replace("\n", "\n "))
            close = "\n]"
        f.write(close)
    config = os.path.join(os.path.dirname(str(path)), CONFIG_NAME)
    spec = getattr(results, "keypoint_spec", None)
    return [str(path), atomic_write(config, labelstudio_config(results.class_names, polygons, spec))]


def read_labelstudio(
    source: str | os.PathLike | list[dict[str, Any]],
    class_names: Sequence[str] | None = None,
    use: str | None = None,
    image_root_url: str = "",
    image_sizes: Mapping[str, Size] | None = None,
) -> Results:
    """Tasks with ``predictions`` or a Label Studio JSON export with ``annotations``.

    ``use=None`` takes a task's first non-cancelled annotation, else its first prediction;
    ``"annotations"``/``"predictions"`` take only that kind (a task without one becomes a
    :class:`~autolabel.core.Failure`). Percent boxes become pixels; rotated boxes their
    enclosing box. Keys: ``data.key``, else the image URL less ``image_root_url``,
    unquoted. Class names: ``class_names``, else the ``label_config.xml`` beside the
    file, else the sorted names found. Sizes: ``data.width/height``, the regions'
    ``original_width/height``, or ``image_sizes``."""
    if use not in (None, "annotations", "predictions"):
        raise ValueError(f"use must be 'annotations' or 'predictions', got {use!r}")
    tasks, name = load_json(source)
    tasks = [tasks] if isinstance(tasks, dict) else tasks
    if not isinstance(tasks, list):
        raise ValueError(f"{name}: Label Studio tasks are a JSON list, got {type(tasks).__name__}")
    class_names, spec = _from_config(source, name, class_names)
    builder, failures, model_id = Builder(name, class_names), [], None
    keypoints: list[np.ndarray] = []
    for t, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        where = f"{name}: task {task.get('id', t) if isinstance(task, dict) else t}"
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            raise ValueError(f"{where}: no data.image")
        url = data["image"]
        key = str(data.get("key") or unquote(url[len(image_root_url):] if url.startswith(image_root_url) else url))
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        kind = use or ("annotations" if done else "predictions")
        chosen = done if kind == "annotations" else task.get("predictions") or []
        if not chosen:
            failures.append(Failure(key, f"no {kind}"))
            continue
        if kind == "predictions" and model_id is None:
            model_id = str(chosen[0].get("model_version") or "")
        boxes, scores, labels, sizes, ids = [], [], [], [], []
        for r in chosen[0].get("result") or []:
            if r.get("type") == "rectanglelabels":
                rw = f"{where}: region {r.get('id')}"
                box, score, label, wh = _region(r, rw)
                boxes.append(box)
                scores.append(score if kind == "predictions" else 1.0)
                labels.append(builder.label(label, rw))
                sizes.append(wh)
                ids.append(r.get("id"))
        if data.get("width") and data.get("height"):
            size = int(number(data["width"], where, "data.width")), int(number(data["height"], where, "data.height"))
        else:
            size = sizes[0] if sizes else size_for(key, image_sizes, where)
        frame = data.get("frame_index")
        info = ImageInfo(key, size[0], size[1], None, frame, data.get("timestamp") if frame is not None else None)
        builder.add(info, boxes, scores, labels)
        if spec is not None:
            keypoints.append(_read_keypoints(chosen[0].get("result") or [], ids, boxes, spec, where))
    results = builder.results(model_id or "", failures)
    return results if spec is None else with_keypoints(results, keypoints, spec)


def _from_config(
    source: Any, name: str, class_names: Sequence[str] | None
) -> tuple[Sequence[str] | None, KeypointSpec | None]:
    """Class names (unless given) and the keypoint spec of the ``label_config.xml`` beside a tasks file."""
    config_file = os.path.join(os.path.dirname(name), CONFIG_NAME)
    if not isinstance(source, (str, os.PathLike)) or not os.path.isfile(config_file):
        return class_names, None
    config = load_xml(config_file)
    if class_names is None:
        class_names = [el.get("value", "") for c in config if c.tag == "RectangleLabels" for el in c.iter("Label")]
    kp_names = tuple(el.get("value", "") for c in config if c.tag == "KeyPointLabels" for el in c.iter("Label"))
    if not kp_names:
        return class_names, None
    spec = KeypointSpec.default(len(kp_names))
    return class_names, spec if spec.names == kp_names else KeypointSpec(kp_names)


def _read_keypoints(result: list, ids: list, boxes: list, spec: KeypointSpec, where: str) -> np.ndarray:
    """(boxes, K, 3) keypoints of one task's ``keypointlabels`` regions: each to its ``parentID`` box,
    or the smallest box holding it; v = region score, ``meta.visibility``, or 2 (placed by a person)."""
    out = np.zeros((len(boxes), len(spec), 3), np.float32)
    row = {r: i for i, r in enumerate(ids)}
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    for r in result:
        if r.get("type") != "keypointlabels":
            continue
        rw = f"{where}: region {r.get('id')}"
        v = r.get("value") or {}
        name = (v.get("keypointlabels") or [""])[0]
        if name not in spec.names:
            raise ValueError(f"{rw}: keypoint label {name!r} is not one of {list(spec.names)}")
        w, h = (number(r.get(f"original_{k}"), rw, f"original_{k}") for k in ("width", "height"))
        x, y = number(v.get("x"), rw, "x") * w / 100.0, number(v.get("y"), rw, "y") * h / 100.0
        i = row.get(r.get("parentID"))
        if i is None:  # placed by a person: the smallest box that holds it
            inside = np.flatnonzero((b[:, 0] <= x) & (x <= b[:, 2]) & (b[:, 1] <= y) & (y <= b[:, 3]))
            if not len(inside):
                continue
            i = int(inside[np.argmin(((b[:, 2:] - b[:, :2]).prod(1))[inside])])
        vis = r["score"] if "score" in r else (r.get("meta") or {}).get("visibility", 2)
        out[i, spec.names.index(name)] = (x, y, number(vis, rw, "score"))
    return out


def _region(r: dict[str, Any], where: str) -> tuple[list[float], float, str, Size]:
    """``(xyxy in pixels, score, label, (original_width, original_height))`` of a region."""
    v = r.get("value") or {}
    labels = v.get("rectanglelabels") or [""]
    if not labels[0]:
        raise ValueError(f"{where}: no rectanglelabels")
    wh = (int(number(r.get("original_width"), where, "original_width")),
          int(number(r.get("original_height"), where, "original_height")))
    xywh = np.array([number(v.get(k), where, k) for k in ("x", "y", "width", "height")])
    x1, y1, x2, y2 = from_relative(xywh, wh, center=False, scale=100.0)[0].tolist()
    box = rotated_bounds(x1, y1, x2, y2, number(v.get("rotation", 0), where, "rotation"), (x1, y1))
    return box, number(r.get("score", 1.0), where, "score"), str(labels[0]), wh
