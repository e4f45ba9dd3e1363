"""What every format shares: safe output paths, atomic writes, number formatting,
relative (normalised / percent) boxes, parse errors that name the file and record."""

from __future__ import annotations

import math
import os
from dataclasses import replace
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.io.files import safe_join, safe_relpath
from autolabel.io.images import Size


# -- writing ---------------------------------------------------------------------------


class ResultsLike(Protocol):
    """What a writer reads: :class:`~autolabel.core.Results`, or a view that reads them
    as it goes (:class:`~autolabel.engine.log.LogResults`). Writers go through the images
    once, in order, and hold one image at a time."""

    class_names: tuple[str, ...]
    model_id: str

    @property
    def failures(self) -> Iterable[Failure]: ...

    def __iter__(self) -> Iterator[Detections]: ...

    def __len__(self) -> int: ...


def labeled(results: Iterable[Detections]) -> Iterator[tuple[Detections, ImageInfo]]:
    """Every detections with its image, as they come; an image is required and keys must
    be unique (checked as they come: a writer stops at the first offender)."""
    seen = set()
    for i, d in enumerate(results):
        if d.image is None:
            raise ValueError(f"detections #{i} have no ImageInfo: a format needs the image name and size")
        if d.image.key in seen:
            raise ValueError(f"image key {d.image.key!r} appears twice")
        seen.add(d.image.key)
        yield d, d.image


def per_image_paths(
    results: Iterable[Detections], out_dir: str, sub: str, ext: str
) -> Iterator[tuple[Detections, ImageInfo, str]]:
    """``out_dir/sub/<file name without extension><ext>`` for every image (safe, no two alike)."""
    owner: dict[str, str] = {}
    for d, info in labeled(results):
        rel = sub + "/" + os.path.splitext(safe_relpath(info.file_name))[0] + ext
        if rel in owner:
            raise ValueError(f"images {owner[rel]!r} and {info.key!r} would both be written to {rel}")
        owner[rel] = info.key
        yield d, info, safe_join(out_dir, rel)


def check_names(class_names: Sequence[str]) -> None:
    """Names every format can store: unique, non-empty, no control characters."""
    if len(set(class_names)) != len(class_names) or not all(n and n.isprintable() for n in class_names):
        raise ValueError(f"class names must be unique, non-empty and printable: {list(class_names)}")


def num(x: float) -> str:
    """Shortest text that reads back to the same float32 (``0.87``, not ``0.8700000047``)."""
    return str(np.float32(x))


def image_score(d: Detections) -> float:
    """Score of an image as a whole: the mean box score, 0 without boxes."""
    return float(d.scores.mean()) if len(d) else 0.0


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_relative(d: Detections, info: ImageInfo, center: bool, scale: float = 1.0) -> np.ndarray:
    """Boxes as ``[x, y, w, h]`` divided by the image size times ``scale`` (float64);
    ``x, y`` is the centre when ``center`` else the top-left corner."""
    b = d.xyxy.astype(np.float64)
    wh = b[:, 2:] - b[:, :2]
    xy = b[:, :2] + wh / 2 if center else b[:, :2]
    return np.hstack([xy, wh]) / np.array([info.width, info.height] * 2, np.float64) * scale


def from_relative(xywh: np.ndarray, size: Size, center: bool, scale: float = 1.0) -> np.ndarray:
    """Inverse of :func:`to_relative`: pixel ``xyxy``."""
    b = np.asarray(xywh, np.float64).reshape(-1, 4) / scale * np.array([*size, *size], np.float64)
    x1y1 = b[:, :2] - b[:, 2:] / 2 if center else b[:, :2]
    return np.hstack([x1y1, x1y1 + b[:, 2:]])


def rotated_bounds(
    x1: float, y1: float, x2: float, y2: float, degrees: float, pivot: tuple[float, float]
) -> list[float]:
    """Axis-aligned box around ``x1 y1 x2 y2`` turned clockwise (image y points down) about ``pivot``."""
    if not degrees:
        return [x1, y1, x2, y2]
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    px, py = pivot
    xs, ys = zip(*[(px + (x - px) * c - (y - py) * s, py + (x - px) * s + (y - py) * c)
                   for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2))])
    return [min(xs), min(ys), max(xs), max(ys)]


def xml_text(root: ET.Element, declaration: bool = True, level: int = 0) -> str:
    """Indented XML text (as a child at depth ``level``); ElementTree escapes every name and value."""
    ET.indent(root, level=level)
    return "  " * level + ET.tostring(root, encoding="unicode", xml_declaration=declaration) + "\n"


def sub(parent: ET.Element, tag: str, text: object = None, **attrib: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


# -- reading -----------------------------------------------------------------------------


def load_xml(path: str | os.PathLike) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: not valid XML: {e}") from e


def number(value: Any, where: str, what: str) -> float:
    """A finite float, or ``ValueError`` naming ``where`` (file and record) and ``what``."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        raise ValueError(f"{where}: {what} must be a finite number, got {value!r}")
    return x


def xml_number(el: ET.Element, path: str, where: str) -> float:
    return number(el.findtext(path), where, f"<{path}>")


#: the largest magnitude a box coordinate may have: boxes are stored as float32
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def box_problem(box: Sequence[float], size: Size) -> str | None:
    """Why an ``xyxy`` box in pixels cannot be a box of an image of ``size`` (width,
    height), or None: every command refuses non-finite corners (also as float32),
    non-positive width or height, and boxes entirely outside the image (a box may
    overhang the border)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = size
    if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in (x1, y1, x2, y2)):
        return f"corners {[x1, y1, x2, y2]} are not finite 32-bit numbers"
    if not (x2 > x1 and y2 > y1):
        kind = "negative" if x2 < x1 or y2 < y1 else "zero"
        return f"{kind} width or height ({x2 - x1:g} x {y2 - y1:g}): a box needs a positive width and height"
    if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
        return f"box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (x1 y1 x2 y2) lies entirely outside the {w}x{h} image"
    return None


def check_boxes(results: Iterable[Detections], what: str) -> None:
    """Raise ``ValueError`` naming ``what``, the image and the box at the first box
    :func:`box_problem` refuses (in-memory results; the readers check as they read)."""
    for i, d in enumerate(results):
        size = (d.image.width, d.image.height) if d.image else (math.inf, math.inf)
        for k, b in enumerate(d.xyxy.tolist()):
            why = box_problem(b, size)  # type: ignore[arg-type]
            if why:
                name = d.image.key if d.image else f"#{i}"
                raise ValueError(f"{what}: image {name!r}, box {k}: invalid box: {why}")


def refuse_invalid(box: Sequence[float], size: Size, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` (file and record) when :func:`box_problem` refuses ``box``."""
    why = box_problem(box, size)
    if why:
        raise ValueError(f"{where}: invalid box: {why} (fix or remove the record)")


#: What readers do with an invalid box (see :func:`box_problem`): refuse the file, or drop the box.
INVALID_BOXES = ("error", "drop")


class Builder:
    """Collects a reader's images and boxes into :class:`Results`. Class names are fixed
    up front (other names are errors) or, with ``class_names=None``, collected and sorted.
    Every image must have a positive size and every box be valid (:func:`box_problem`):
    ``invalid_boxes="error"`` refuses the file naming the record, ``"drop"`` drops the box
    (counted in :attr:`dropped`)."""

    def __init__(self, source: str, class_names: Sequence[str] | None = None, invalid_boxes: str = "error"):
        if invalid_boxes not in INVALID_BOXES:
            raise ValueError(f"invalid_boxes must be one of {INVALID_BOXES}, got {invalid_boxes!r}")
        self.source = source
        self.fixed = class_names is not None
        self.names = list(class_names or [])
        self.ids = {n: i for i, n in enumerate(self.names)}
        self.rows: list[tuple[ImageInfo, list, list, list, list | None]] = []
        self.invalid_boxes = invalid_boxes
        self.dropped = 0

    def label(self, name: str, where: str) -> int:
        """Class id of ``name`` (``where`` names the file and record for errors)."""
        if name not in self.ids:
            if self.fixed:
                raise ValueError(f"{where}: unknown class {name!r}; known: {', '.join(self.names)}")
            self.ids[name] = len(self.names)
            self.names.append(name)
        return self.ids[name]

    def add(self, info: ImageInfo, boxes: list, scores: list, ids: list, iscrowd: list | None = None,
            records: Sequence[str] | None = None) -> list[int]:
        """One image and its boxes (``xyxy`` pixels); ``records`` name each box's record
        in errors (default: ``box <index>``). Returns the indices of the boxes kept."""
        where = f"{self.source}: image {info.key!r}"
        if not (info.width > 0 and info.height > 0):
            raise ValueError(f"{where}: width and height must be positive, got {info.width}x{info.height}")
        keep = []
        for k, b in enumerate(boxes):
            why = box_problem(b, (info.width, info.height))
            if why is None:
                keep.append(k)
            elif self.invalid_boxes == "drop":
                self.dropped += 1
            else:
                raise ValueError(f"{where}, {records[k] if records else f'box {k}'}: invalid box: {why} "
                                 "(fix or remove the record)")
        if len(keep) < len(boxes):
            boxes, scores, ids = ([x[k] for k in keep] for x in (boxes, scores, ids))
            iscrowd = None if iscrowd is None else [iscrowd[k] for k in keep]
        self.rows.append((info, boxes, scores, ids, iscrowd))
        return keep

    def results(self, model_id: str = "", failures: Sequence[Failure] = ()) -> Results:
        keys = [r[0].key for r in self.rows]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"{self.source}: image {dup!r} appears more than once")
        if self.dropped:
            import warnings

            warnings.warn(f"{self.source}: dropped {self.dropped} invalid boxes (invalid_boxes='drop')", stacklevel=3)
        names = self.names if self.fixed else sorted(self.names)
        remap = np.array([names.index(n) for n in self.names] or [0], np.int64)
        dets = [
            Detections(np.asarray(b, np.float64).reshape(-1, 4), np.asarray(s, np.float64), remap[np.asarray(i, np.int64)],
                       tuple(names), info, iscrowd=None if c is None else np.asarray(c, bool))
            for info, b, s, i, c in self.rows
        ]
        return Results(dets, tuple(names), model_id, list(failures))


def keypoint_flags(visibility: np.ndarray) -> bool:
    """Whether keypoint visibilities are COCO's ``v`` flags 0/1/2 (labels) rather than a model's scores."""
    v = np.asarray(visibility)
    return bool(((v == 0) | (v == 1) | (v == 2)).all())


def with_keypoints(results: Results, keypoints: Sequence[Any], spec: Any, data: Sequence[dict] | None = None) -> Results:
    """``results`` (changed in place) with each image's keypoints ((N * K * 3) values) under ``spec``,
    and per image extra ``data`` arrays."""
    results.detections = [
        replace(d, keypoints=np.asarray(k, np.float32).reshape(len(d), len(spec), 3), keypoint_spec=spec,
                data={**d.data, **(data[i] if data is not None else {})})
        for i, (d, k) in enumerate(zip(results.detections, keypoints))]
    results.keypoint_spec = spec
    return results


def size_for(key: str, sizes: Mapping[str, Size] | None, where: str) -> Size:
    if sizes is None or key not in sizes:
        raise ValueError(f"{where}: no size for image {key!r}; pass image_sizes={{key: (width, height)}}")
    w, h = sizes[key]
    return int(w), int(h)


def rel_posix(path: str | os.PathLike, root: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
