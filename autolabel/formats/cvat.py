"""CVAT for images 1.1 XML (``annotations.xml``).

``<meta>`` holds the task's labels (each with a text attribute ``score``) and
``<model_id>``; every image is ``<image id name width height>`` with
``<box label xtl ytl xbr ybr occluded source="auto" z_order>`` and
``<attribute name="score">``. Coordinates have 2 decimals, as CVAT writes them. Boxes of
segmentation models (``Detections.data["polygons"]``) are followed by their mask as
``<polygon label points="x,y;x,y;..." source="auto">`` shapes sharing the box's
``group_id`` (CVAT's grouping of shapes of one object); labels are then of type ``any``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Sequence

from autolabel.core import ImageInfo, Results
from autolabel.formats._common import Builder, ResultsLike, check_names, labeled, load_xml, now, num, number, rotated_bounds, sub, xml_text
from autolabel.io.files import atomic_writer

__all__ = ["write_cvat", "read_cvat", "add_labels"]


def write_cvat(results: ResultsLike, path: str | os.PathLike, polygons: bool | None = None) -> list[str]:
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
    add_labels(task, results.class_names, shapes="any" if polygons else "rectangle")
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
                polygons = masks[j] if masks is not None else None
                group = {"group_id": str(j + 1)} if polygons else {}
                box = sub(image, "box", label=name, source="auto", occluded=0, **corners, z_order=0, **group)
                sub(box, "attribute", num(s), name="score")
                for flat in polygons if polygons else ():
                    points = ";".join(f"{x:.2f},{y:.2f}" for x, y in zip(flat[::2], flat[1::2]))
                    poly = sub(image, "polygon", label=name, source="auto", occluded=0, points=points,
                               z_order=0, **group)
                    sub(poly, "attribute", num(s), name="score")
            f.write(xml_text(image, declaration=False, level=1))
        f.write("</annotations>" + end)
    return [str(path)]


def add_labels(task: ET.Element, class_names: Sequence[str], mutable: bool = False, shapes: str = "rectangle") -> None:
    """``<labels>`` of a CVAT task: one label per class of type ``shapes`` (``rectangle``,
    or ``any`` for rectangles and polygons), each with a text attribute ``score``
    (``mutable``: it may change along a track, as in CVAT for video)."""
    labels = sub(task, "labels")
    for n in class_names:
        label = sub(labels, "label")
        sub(label, "name", n)
        sub(label, "type", shapes)
        attribute = sub(sub(label, "attributes"), "attribute")
        fields = ("name", "score"), ("mutable", str(mutable)), ("input_type", "text"), ("default_value", ""), ("values", "")
        for tag, v in fields:
            sub(attribute, tag, v)


def read_cvat(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> Results:
    """A CVAT for images 1.1 XML file: boxes of every ``<image>`` (other shapes are
    skipped), ``score`` attribute -> scores (absent: 1.0), rotated boxes as their
    enclosing box. Class names: ``class_names``, else the labels in ``<meta>``, else the
    sorted names found."""
    path = str(path)
    root = load_xml(path)
    if root.tag != "annotations":
        raise ValueError(f"{path}: root element is <{root.tag}>, not <annotations>")
    declared = [el.findtext("name", "") for el in root.findall("meta/*/labels/label")]
    builder = Builder(path, class_names if class_names is not None else declared or None)
    for image in root.iter("image"):
        where = f"{path}: image {image.get('id')} ({image.get('name')})"
        if not image.get("name"):
            raise ValueError(f"{where}: no name")
        width, height = (int(number(image.get(t), where, t)) for t in ("width", "height"))
        boxes, scores, ids = [], [], []
        for j, box in enumerate(image.iter("box")):
            bw = f"{where}: box {j}"
            x1, y1, x2, y2 = (number(box.get(t), bw, t) for t in ("xtl", "ytl", "xbr", "ybr"))
            turn = number(box.get("rotation", 0), bw, "rotation")
            boxes.append(rotated_bounds(x1, y1, x2, y2, turn, ((x1 + x2) / 2, (y1 + y2) / 2)))
            score = box.find("attribute[@name='score']")
            scores.append(number(score.text, bw, "score") if score is not None else 1.0)
            ids.append(builder.label(box.get("label", ""), bw))
        builder.add(ImageInfo(image.get("name", ""), width, height), boxes, scores, ids)
    return builder.results(root.findtext("meta/model_id", ""))
