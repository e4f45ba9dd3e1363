"""Training data: labels in any format we read, checked, split and laid out for Ultralytics.

:func:`read_labels` reads COCO / YOLO / VOC / CVAT / Label Studio labels (or a ``pull``
export folder) into :class:`~autolabel.core.Results`; :func:`check_labels` refuses bad
input before any training (unknown or empty classes, missing images, too few images per
class), naming the file and the class; :func:`split_validation` holds back a seeded,
per-image validation split; :func:`write_dataset` writes the Ultralytics YOLO dataset
(``images/{train,val}``, ``labels/{train,val}``, ``data.yaml``) inside ``out`` only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from autolabel.core import Results
from autolabel.io.files import atomic_write, safe_join

__all__ = ["read_labels", "check_labels", "LabeledData", "split_validation", "write_dataset", "class_counts",
           "data_hash", "MIN_IMAGES_PER_CLASS"]

#: fewest labeled images a class needs before training starts (``min_images_per_class``)
MIN_IMAGES_PER_CLASS = 5


def read_labels(labels: Any, class_names: Sequence[str] | None = None) -> Results:
    """Labels as :class:`~autolabel.core.Results`, from any format the library reads.

    Args:
        labels: ``Results``; a COCO ``.json`` (a list of tasks is read as a Label Studio
            export); a folder holding ``annotations.json`` (COCO, what ``pull`` and
            ``prelabel --format coco`` write), ``data.yaml`` (YOLO), ``Annotations/``
            (VOC) or ``tasks.json`` (Label Studio); a YOLO ``.yaml``; a CVAT ``.xml``.
        class_names: VOC and Label Studio readers take the class list from here.

    Raises:
        FileNotFoundError: no such file or folder, or a folder of no known layout.
        ValueError: the file does not parse (the reader names the file and record).
    """
    from autolabel import formats as f

    if isinstance(labels, Results):
        return labels
    p = str(labels)
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p}: no such labels file or folder")
    if os.path.isdir(p):
        for name, read in (("annotations.json", f.read_coco), ("data.yaml", f.read_yolo),
                           ("tasks.json", lambda x: f.read_labelstudio(x, class_names=class_names))):
            if os.path.isfile(os.path.join(p, name)):
                return read(os.path.join(p, name))
        if os.path.isdir(os.path.join(p, "Annotations")):
            return f.read_voc(p, class_names=class_names)
        raise FileNotFoundError(f"{p}: a folder with no annotations.json (COCO), data.yaml (YOLO), "
                                "tasks.json (Label Studio) or Annotations/ (VOC)")
    low = p.lower()
    if low.endswith(".json"):
        with open(p, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: not valid JSON ({e})") from e
        if isinstance(data, list):
            return f.read_labelstudio(data, class_names=class_names, use="annotations")
        return f.read_coco(data)
    if low.endswith((".yaml", ".yml")):
        return f.read_yolo(p)
    if low.endswith(".xml"):
        return f.read_cvat(p)
    raise ValueError(f"{p}: unknown labels format (give a COCO/Label Studio .json, a YOLO data.yaml, "
                     "a CVAT .xml, or a VOC / pull-export folder)")


@dataclass(frozen=True)
class LabeledData:
    """Checked labels: each image's ground truth with its file on disk, and the class list."""

    results: Results  #: the labels, one entry per image, in the class list below
    paths: tuple[str, ...]  #: the image file of each entry
    class_names: tuple[str, ...]


def _image_path(images: str, key: str) -> str | None:
    for rel in (key, os.path.basename(key)):
        p = os.path.join(images, *rel.split("/"))
        if os.path.isfile(p):
            return p
    return None


def check_labels(
    results: Results,
    images: str | os.PathLike,
    where: str,
    class_names: Sequence[str] | None = None,
    min_images_per_class: int = MIN_IMAGES_PER_CLASS,
) -> LabeledData:
    """Refuse bad training input before any training.

    Args:
        results: the labels (:func:`read_labels`).
        images: the image folder (a label's ``file_name`` is relative to it; its base
            name is tried too).
        where: the labels' name for messages (their path).
        class_names: the classes to train; labels naming another class are an error.
            Default: the labels' own class list.
        min_images_per_class: fewest images a class must appear in.

    Returns:
        :class:`LabeledData` with the labels re-indexed to ``class_names``.

    Raises:
        FileNotFoundError: the image folder is missing, or labeled images are not in it
            (the first few named).
        ValueError: no labeled images, unknown classes, classes with no or too few images.
    """
    img_dir = str(images)
    if not os.path.isdir(img_dir):
        raise FileNotFoundError(f"{img_dir}: no such image folder")
    dets = [d for d in results.detections if d.image is not None]
    if not dets:
        raise ValueError(f"{where}: no labeled images")
    names = tuple(class_names) if class_names is not None else tuple(results.class_names)
    found = sorted({str(results.class_names[c]) for d in dets for c in d.class_ids.tolist()})
    unknown = [c for c in found if c not in names]
    if unknown:
        raise ValueError(f"{where}: labels name classes not in the class list {list(names)}: {unknown}")
    lookup = {n: i for i, n in enumerate(names)}
    remap = np.array([lookup.get(str(n), -1) for n in results.class_names], dtype=np.int64)
    # crowd regions are not objects to learn (Ultralytics has no crowd flag): left out
    relabeled = [replace(d[~d.crowd], class_ids=remap[d.class_ids[~d.crowd]], class_names=names) for d in dets]
    paths = [_image_path(img_dir, d.image.key) for d in dets]  # type: ignore[union-attr]
    missing = [d.image.key for d, p in zip(dets, paths) if p is None]  # type: ignore[union-attr]
    if missing:
        raise FileNotFoundError(f"{where}: {len(missing)} labeled images are not in {img_dir}: "
                                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    per_class = class_counts(Results(relabeled, names))["images"]
    empty = [c for c in names if per_class[c] == 0]
    if empty:
        raise ValueError(f"{where}: classes with no labeled box: {empty} (drop them with class_names, or label some)")
    few = {c: n for c, n in per_class.items() if n < min_images_per_class}
    if few:
        raise ValueError(f"{where}: too few labeled images per class (at least {min_images_per_class} needed, "
                         f"min_images_per_class): {few}")
    return LabeledData(Results(relabeled, names), tuple(p for p in paths if p), names)


def class_counts(results: Results) -> dict[str, dict[str, int]]:
    """``{"images": {class: images with a box of it}, "boxes": {class: boxes}}``."""
    names = [str(n) for n in results.class_names]
    images, boxes = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
    for d in results.detections:
        ids = d.class_ids.tolist()
        for c in ids:
            boxes[names[c]] += 1
        for c in set(ids):
            images[names[c]] += 1
    return {"images": images, "boxes": boxes}


def split_validation(keys: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The held-back validation keys: a seeded draw of ``round(fraction * n)`` images (at
    least 1, and at least 1 left to train on), returned sorted."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {fraction}")
    if len(keys) < 2:
        raise ValueError(f"{len(keys)} labeled image(s): training needs at least 2 (one held back to validate)")
    n_val = min(len(keys) - 1, max(1, round(fraction * len(keys))))
    rng = np.random.default_rng(seed)
    return sorted(str(keys[i]) for i in rng.choice(len(keys), n_val, replace=False))


def data_hash(data: LabeledData) -> str:
    """SHA-256 over the sorted (image key, image file bytes hash, boxes, classes)."""
    from autolabel.detectors.base import file_sha256

    h = hashlib.sha256()
    for d, p in sorted(zip(data.results.detections, data.paths), key=lambda t: t[0].image.key):  # type: ignore[union-attr]
        h.update(d.image.key.encode())  # type: ignore[union-attr]
        h.update(file_sha256(p).encode())
        h.update(np.round(d.xyxy.astype(np.float64), 3).tobytes())
        h.update(",".join(data.class_names[c] for c in d.class_ids.tolist()).encode())
    return h.hexdigest()


def write_dataset(data: LabeledData, val_keys: Sequence[str], out: str) -> str:
    """Write the Ultralytics dataset under ``out`` and return its ``data.yaml``.

    Images are copied (never linked) as ``images/<split>/<index>_<base name>``, so names
    from any folder depth are unique and stay inside ``out``; each gets
    ``labels/<split>/<same stem>.txt`` with ``class cx cy w h`` normalised to the image
    size the labels give (EXIF-oriented, as both we and Ultralytics decode images).
    ``split.json`` records which key went where.
    """
    import yaml

    val = set(val_keys)
    split: dict[str, dict[str, str]] = {"train": {}, "val": {}}
    for i, (d, src) in enumerate(zip(data.results.detections, data.paths)):
        info = d.image
        assert info is not None
        part = "val" if info.key in val else "train"
        name = f"{i:06d}_{os.path.basename(src)}"
        dst = safe_join(out, f"images/{part}/{name}")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        xyxy = d.xyxy.astype(np.float64).clip(0, [info.width, info.height, info.width, info.height])
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 / info.width, (xyxy[:, 1] + xyxy[:, 3]) / 2 / info.height
        bw, bh = (xyxy[:, 2] - xyxy[:, 0]) / info.width, (xyxy[:, 3] - xyxy[:, 1]) / info.height
        keep = (bw > 0) & (bh > 0)
        lines = [f"{c} {a:.6f} {b:.6f} {w:.6f} {h:.6f}" for c, a, b, w, h in
                 zip(d.class_ids[keep].tolist(), cx[keep], cy[keep], bw[keep], bh[keep])]
        label = safe_join(out, f"labels/{part}/{os.path.splitext(name)[0]}.txt")
        os.makedirs(os.path.dirname(label), exist_ok=True)
        atomic_write(label, "".join(line + "\n" for line in lines))
        split[part][info.key] = name
    atomic_write(os.path.join(out, "split.json"), json.dumps(split, indent=1, sort_keys=True))
    yaml_path = os.path.join(out, "data.yaml")
    atomic_write(yaml_path, yaml.safe_dump({"path": os.path.abspath(out), "train": "images/train",
                                            "val": "images/val", "names": dict(enumerate(data.class_names))},
                                           sort_keys=False))
    return yaml_path
