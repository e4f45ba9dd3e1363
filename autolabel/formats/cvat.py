"""CVAT for images 1.1 XML (``annotations.xml``).

``<meta>`` holds the task's labels (each with a text attribute ``score``) and
``<model_id>``; every image is ``<image id name width height>`` with
``<box label xtl ytl xbr ybr occluded source="auto" z_order>`` and
``<attribute name="score">``. Coordinates have 2 decimals, as CVAT writes them. Boxes of
segmentation models (``Detections.data["polygons"]``) are followed by their mask as
``<polygon label points="x,y;x,y;..." source="auto">`` shapes sharing the box's
``group_id`` (CVAT's grouping of shapes of one object); labels are then of type ``any``.
Boxes of pose models (``Detections.keypoints``) are followed by a CVAT ``<skeleton>`` of the
same ``group_id``: one ``<points>`` element per keypoint (``outside="1"`` where it is not
labeled, ``occluded="1"`` for COCO's ``v = 1``, a ``score`` attribute with the model's
visibility score); the class label is then of type ``skeleton`` with an ``<svg>`` of its
nodes and edges, and each keypoint a ``points`` sublabel with ``<parent>``, as CVAT exports
skeletons. A model's keypoints scoring below ``keypoint_conf`` are written ``outside``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any, Sequence

import numpy as np

from autolabel.core import ImageInfo, Results
from autolabel.formats._common import (
    Builder, ResultsLike, check_names, keypoint_flags, labeled, load_xml, now, num, number, rotated_bounds, sub,
    with_keypoints, xml_text,
)
from autolabel.io.files import atomic_writer
from autolabel.keypoints import KeypointSpec

__all__ = ["write_cvat", "read_cvat", "add_labels"]


def write_cvat(
    results: ResultsLike, path: str | os.PathLike, polygons: bool | None = None, keypoint_conf: float = 0.5
) -> list[str]:
    """Write one CVAT for images 1.1 XML file, image by image; returns ``[path]``.

    ``polygons``: declare labels of type ``any`` (rectangles and polygons); default: when
    the first image's detections carry ``data["polygons"]``."""
    check_names(results.class_names)
    if polygons is None:
        first = next(iter(results), None)
        polygons = first is not None and "polygons" in getattr(first, "data", {})
    root = ET.Element("annotations")
    sub(root, "version", "1.1")
    meta = sub(root, "meta")
    task = sub(meta, "task")
    for tag, v in (("name", f"autolabel {results.model_id}".strip()), ("size", len(results)), ("mode", "annotation")):
        sub(task, tag, v)
    spec = getattr(results, "keypoint_spec", None)
    add_labels(task, results.class_names, shapes="any" if polygons else "rectangle", skeleton=spec)
    sub(meta, "model_id", results.model_id)
    sub(meta, "dumped", now())
    head, end = xml_text(root).rsplit("</annotations>", 1)
    with atomic_writer(path) as f:
        f.write(head)
        for i, (d, info) in enumerate(labeled(results)):
            image = ET.Element("image", id=str(i), name=info.file_name, width=str(info.width),
                               height=str(info.height))
            masks = d.data.get("polygons")
            for j, (b, s, name) in enumerate(zip(d.xyxy.tolist(), d.scores, d.labels)):
                corners = {t: f"{v:.2f}" for t, v in zip(("xtl", "ytl", "xbr", "ybr"), b)}
                grouped = (masks is not None and masks[j]) or (spec is not None and d.keypoints is not None)
                group = {"group_id": str(j + 1)} if grouped else {}
                box = sub(image, "box", label=name, source="auto", occluded=0, **corners, z_order=0, **group)
                sub(box, "attribute", num(s), name="score")
                for flat in masks[j] if masks is not None else ():
                    points = ";".join(f"{x:.2f},{y:.2f}" for x, y in zip(flat[::2], flat[1::2]))
                    poly = sub(image, "polygon", label=name, source="auto", occluded=0, points=points,
                               z_order=0, **group)
                    sub(poly, "attribute", num(s), name="score")
                if spec is not None and d.keypoints is not None:
                    _skeleton(image, name, d.keypoints[j], spec, keypoint_conf, group)
            f.write(xml_text(image, declaration=False, level=1))
        f.write("</annotations>" + end)
    return [str(path)]


def add_labels(
    task: ET.Element, class_names: Sequence[str], mutable: bool = False, shapes: str = "rectangle",
    skeleton: KeypointSpec | None = None,
) -> None:
    """``<labels>`` of a CVAT task: one label per class of type ``shapes`` (``rectangle``,
    or ``any`` for rectangles and polygons), each with a text attribute ``score``
    (``mutable``: it may change along a track, as in CVAT for video). With ``skeleton``
    every class is a ``skeleton`` label with its ``<svg>`` and one ``points`` sublabel per keypoint."""
    labels = sub(task, "labels")

    def label(name: str, kind: str, parent: str | None = None, svg: str | None = None) -> None:
        el = sub(labels, "label")
        sub(el, "name", name)
        sub(el, "type", kind)
        attribute = sub(sub(el, "attributes"), "attribute")
        fields = ("name", "score"), ("mutable", str(mutable)), ("input_type", "text"), ("default_value", ""), ("values", "")
        for tag, v in fields:
            sub(attribute, tag, v)
        if svg is not None:
            sub(el, "svg", svg)
        if parent is not None:
            sub(el, "parent", parent)

    for n in class_names:
        label(n, "skeleton" if skeleton else shapes, svg=_svg(skeleton) if skeleton else None)
        for kp in skeleton.names if skeleton else ():
            label(kp, "points", parent=n)


def _svg(spec: KeypointSpec) -> str:
    """CVAT's skeleton drawing: nodes (1-based ``data-node-id``, ``data-label-name``) on a circle, edges between them."""
    angle = 2 * np.pi * np.arange(len(spec)) / max(len(spec), 1)
    xy = np.stack([50 + 40 * np.sin(angle), 50 - 40 * np.cos(angle)], 1).round(1)
    edges = "".join(f'<line x1="{xy[a][0]}" y1="{xy[a][1]}" x2="{xy[b][0]}" y2="{xy[b][1]}" stroke="black" '
                    f'data-type="edge" data-node-from="{a + 1}" data-node-to="{b + 1}" stroke-width="0.5"></line>'
                    for a, b in spec.skeleton)
    nodes = "".join(f'<circle r="1.5" stroke="black" fill="#b3b3b3" cx="{x}" cy="{y}" stroke-width="0.1" '
                    f'data-type="element node" data-element-id="{i + 1}" data-node-id="{i + 1}" '
                    f'data-label-name="{n}"></circle>' for i, ((x, y), n) in enumerate(zip(xy.tolist(), spec.names)))
    return edges + nodes


def _skeleton(image: ET.Element, label: str, kp: Any, spec: KeypointSpec, conf: float, group: dict) -> None:
    """One box's ``<skeleton>``: flags 0/1/2 as outside/occluded/visible, a model's scores as ``score``."""
    flags = keypoint_flags(kp[:, 2])
    sk = sub(image, "skeleton", label=label, source="auto", z_order=0, **group)
    for name, (x, y, vis) in zip(spec.names, kp.tolist()):
        hidden = vis == 0 if flags else vis < conf
        pt = sub(sk, "points", label=name, source="auto", outside=int(hidden), occluded=int(flags and vis == 1),
                 points=f"{x:.2f},{y:.2f}")
        if not flags:
            sub(pt, "attribute", num(vis), name="score")


def read_cvat(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> Results:
    """A CVAT for images 1.1 XML file: boxes of every ``<image>`` (other shapes are
    skipped), ``score`` attribute -> scores (absent: 1.0), rotated boxes as their
    enclosing box. Class names: ``class_names``, else the labels in ``<meta>``, else the
    sorted names found."""
    path = str(path)
    root = load_xml(path)
    if root.tag != "annotations":
        raise ValueError(f"{path}: root element is <{root.tag}>, not <annotations>")
    declared = [el.findtext("name", "") for el in root.findall("meta/*/labels/label") if el.find("parent") is None]
    spec = _read_spec(root)
    builder = Builder(path, class_names if class_names is not None else declared or None)
    keypoints: list[np.ndarray] = []
    for image in root.iter("image"):
        where = f"{path}: image {image.get('id')} ({image.get('name')})"
        if not image.get("name"):
            raise ValueError(f"{where}: no name")
        size = [int(number(image.get(t), where, t)) for t in ("width", "height")]
        boxes, scores, ids, groups = [], [], [], []
        for j, box in enumerate(image.iter("box")):
            bw = f"{where}: box {j}"
            x1, y1, x2, y2 = (number(box.get(t), bw, t) for t in ("xtl", "ytl", "xbr", "ybr"))
            turn = number(box.get("rotation", 0), bw, "rotation")
            boxes.append(rotated_bounds(x1, y1, x2, y2, turn, ((x1 + x2) / 2, (y1 + y2) / 2)))
            score = box.find("attribute[@name='score']")
            scores.append(number(score.text, bw, "score") if score is not None else 1.0)
            ids.append(builder.label(box.get("label", ""), bw))
            groups.append(box.get("group_id"))
        builder.add(ImageInfo(image.get("name", ""), size[0], size[1]), boxes, scores, ids)
        if spec is not None:
            keypoints.append(_read_skeletons(image, groups, spec, where))
    results = builder.results(root.findtext("meta/model_id", ""))
    return results if spec is None else with_keypoints(results, keypoints, spec)


def _read_spec(root: ET.Element) -> KeypointSpec | None:
    """The keypoint spec of the first ``skeleton`` label: its sublabels in order, edges from its ``<svg>``."""
    labels = root.findall("meta/*/labels/label")
    top = next((el for el in labels if el.findtext("type") == "skeleton"), None)
    if top is None:
        return None
    parent = top.findtext("name")
    names = tuple(el.findtext("name", "") for el in labels if el.findtext("parent") == parent)
    svg = ET.fromstring(f"<svg>{top.findtext('svg') or ''}</svg>")
    node = {c.get("data-node-id"): names.index(c.get("data-label-name", "")) for c in svg.iter("circle")
            if c.get("data-label-name") in names}
    edges = tuple((node[e.get("data-node-from")], node[e.get("data-node-to")]) for e in svg.iter("line")
                  if e.get("data-node-from") in node and e.get("data-node-to") in node)
    default = KeypointSpec.default(len(names))
    return KeypointSpec(names, edges, default.sigmas if default.names == names else ())


def _read_skeletons(image: ET.Element, groups: list, spec: KeypointSpec, where: str) -> np.ndarray:
    """(boxes, K, 3) keypoints of an image's boxes, each from the ``<skeleton>`` of its ``group_id``
    (v: the ``score`` attribute, else 0 outside, 1 occluded, 2 visible; zeros for a box without one)."""
    out = np.zeros((len(groups), len(spec), 3), np.float32)
    row = {g: i for i, g in enumerate(groups) if g is not None}
    for sk in image.iter("skeleton"):
        i = row.get(sk.get("group_id"))
        if i is None:
            continue
        for pt in sk.iter("points"):
            name = pt.get("label", "")
            if name not in spec.names:
                raise ValueError(f"{where}: skeleton point {name!r} is not a keypoint of {list(spec.names)}")
            x, y = (number(v, f"{where}: point {name}", "points") for v in (pt.get("points") or "").split(",")[:2])
            score = pt.find("attribute[@name='score']")
            flag = 0 if pt.get("outside") == "1" else 1 if pt.get("occluded") == "1" else 2
            v = number(score.text, f"{where}: point {name}", "score") if score is not None else flag
            out[i, spec.names.index(name)] = (x, y, v)
    return out
