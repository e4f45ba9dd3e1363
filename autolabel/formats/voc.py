"""Pascal VOC XML: ``Annotations/<stem>.xml`` per image and ``ImageSets/Main/<split>.txt``.

**Coordinates**: ``xmin ymin xmax ymax`` are read and written as plain pixel
coordinates, with no 1-pixel shift (as CVAT/Datumaro, MMDetection 2+ and the COCO
conversion ``bccd/instances.json`` do), rounded to integers when written. Boxes past the
image border are kept as they are. ``difficult=1`` objects read as ``iscrowd`` (regions
that evaluation ignores) and ``iscrowd`` is written as ``difficult``. Extra elements,
ignored by VOC tools: ``<score>`` per object and ``<model_id>`` per file.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Sequence

from autolabel.core import ImageInfo, Results
from autolabel.formats._common import Builder, ResultsLike, check_names, load_xml, num, per_image_paths, rel_posix, sub, xml_number, xml_text
from autolabel.io.files import atomic_write, atomic_writer, safe_relpath
from autolabel.io.images import image_size

__all__ = ["write_voc", "read_voc"]

LABELMAP = "labelmap.txt"  # class list, in the Datumaro / CVAT VOC export layout


def write_voc(results: ResultsLike, out_dir: str | os.PathLike, split: str = "default") -> list[str]:
    """Write one ``Annotations/<stem>.xml`` per image, ``ImageSets/Main/<split>.txt`` and
    ``labelmap.txt`` (the class names in order)."""
    out_dir = str(out_dir)
    check_names(results.class_names)
    written = []
    listing = os.path.join(out_dir, "ImageSets", "Main", f"{safe_relpath(split)}.txt")
    with atomic_writer(listing) as image_ids:
        for d, info, path in per_image_paths(results, out_dir, "Annotations", ".xml"):
            image_ids.write(rel_posix(os.path.splitext(path)[0], os.path.join(out_dir, "Annotations")) + "\n")
            root = ET.Element("annotation")
            sub(root, "folder", "JPEGImages")
            sub(root, "filename", safe_relpath(info.file_name).rsplit("/", 1)[-1])
            size = sub(root, "size")
            for tag, v in (("width", info.width), ("height", info.height), ("depth", 3)):
                sub(size, tag, v)
            sub(root, "segmented", 0)
            sub(root, "model_id", results.model_id)
            for b, s, name, z in zip(d.xyxy.tolist(), d.scores, d.labels, d.crowd):
                obj = sub(root, "object")
                fields = (("name", name), ("pose", "Unspecified"), ("truncated", 0), ("difficult", int(z)),
                          ("score", num(s)))
                for tag, value in fields:
                    sub(obj, tag, value)
                box = sub(obj, "bndbox")
                for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), b):
                    sub(box, tag, round(v))
            written.append(atomic_write(path, xml_text(root)))
    labelmap = "# label:color_rgb:parts:actions\n" + "".join(f"{n}:::\n" for n in results.class_names)
    return [*written, listing, atomic_write(os.path.join(out_dir, LABELMAP), labelmap)]


def read_voc(root: str | os.PathLike, split: str | None = None, class_names: Sequence[str] | None = None,
             invalid_boxes: str = "error") -> Results:
    """A Pascal VOC dataset: the ids of ``ImageSets/Main/<split>.txt``, or every
    ``Annotations/**/*.xml`` sorted. Keys are ``<filename>`` from the XML (fallback:
    the file's stem + ``.jpg``), under the XML's subfolder if any. Class names:
    ``class_names``, else those of ``labelmap.txt``, else the sorted unique names found
    (with a list, other names are errors). Invalid boxes (see
    :func:`~autolabel.formats._common.box_problem`) are errors naming the file and object,
    unless ``invalid_boxes="drop"``."""
    root = str(root)
    ann_dir = os.path.join(root, "Annotations")
    if not os.path.isdir(ann_dir):
        raise FileNotFoundError(f"not a VOC dataset (no Annotations/ folder): {root}")
    if split is None:
        image_ids = sorted(
            rel_posix(os.path.join(folder, f), ann_dir)[:-4]
            for folder, _, files in os.walk(ann_dir) for f in files if f.endswith(".xml")
        )
    else:
        listing = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(listing):
            raise FileNotFoundError(f"no split {split!r} in {root}: {listing} not found")
        with open(listing, encoding="utf-8") as f:
            image_ids = [line.split()[0] for line in f if line.strip()]
    labelmap = os.path.join(root, LABELMAP)
    if class_names is None and os.path.isfile(labelmap):
        with open(labelmap, encoding="utf-8") as f:
            rows = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
        class_names = [row.rsplit(":", 3)[0] for row in rows]
    builder = Builder(root, class_names, invalid_boxes)
    model_id = None
    for image_id in image_ids:
        path = os.path.join(ann_dir, *image_id.split("/")) + ".xml"
        if not os.path.isfile(path):
            raise ValueError(f"{path}: annotation file of image {image_id!r} not found")
        el = load_xml(path)
        if el.tag != "annotation":
            raise ValueError(f"{path}: root element is <{el.tag}>, not <annotation>")
        model_id = el.findtext("model_id", "") if model_id is None else model_id
        folder = image_id.rsplit("/", 1)[0] + "/" if "/" in image_id else ""
        filename = (el.findtext("filename") or "").strip()
        key = f"{folder}{filename}" if filename else f"{image_id}.jpg"
        image_path = os.path.join(root, "JPEGImages", *key.split("/"))
        if el.find("size/width") is None and os.path.isfile(image_path):
            size = image_size(image_path)
        else:
            size = (int(xml_number(el, "size/width", path)), int(xml_number(el, "size/height", path)))
        boxes, scores, labels, crowd, records = [], [], [], [], []
        for i, obj in enumerate(el.iter("object")):
            name = (obj.findtext("name") or "").strip()
            where = f"{path}: object {i} ({name or 'no name'})"
            if not name:
                raise ValueError(f"{where}: missing <name>")
            boxes.append([xml_number(obj, f"bndbox/{t}", where) for t in ("xmin", "ymin", "xmax", "ymax")])
            scores.append(xml_number(obj, "score", where) if obj.find("score") is not None else 1.0)
            labels.append(builder.label(name, where))
            crowd.append(obj.findtext("difficult", "0").strip() == "1")
            records.append(f"{os.path.basename(path)} object {i} ({name})")
        builder.add(ImageInfo(key, *size, image_path), boxes, scores, labels, crowd, records)
    return builder.results(model_id or "")
