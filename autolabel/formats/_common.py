"""What every format shares: safe output paths, atomic writes, number formatting,
relative (normalised / percent) boxes, parse errors that name the file and record."""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import xml.etree.ElementTree as ET
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Protocol, Sequence

import numpy as np

from autolabel.core import Detections, Failure, ImageInfo, Results

Size = tuple[int, int]  # (width, height)


# -- writing ---------------------------------------------------------------------------
def safe_relpath(name: str) -> str:
    """``name`` made relative and harmless: backslashes become ``/``, a drive letter and
    leading ``/`` are dropped, and so are ``.``/``..``/empty components
    (``"../../evil.jpg"`` -> ``"evil.jpg"``, ``"/etc/passwd.jpg"`` -> ``"etc/passwd.jpg"``)."""
    if "\0" in name:
        raise ValueError(f"file name {name!r} contains a NUL character")
    s = re.sub(r"^[A-Za-z]:", "", name.replace("\\", "/"))
    parts = [p for p in s.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"file name {name!r} has no usable component")
    return "/".join(parts)


def safe_join(out_dir: str | os.PathLike, name: str) -> str:
    """``out_dir/<safe_relpath(name)>``, verified (symlinks resolved) to stay inside ``out_dir``."""
    path = os.path.join(out_dir, *safe_relpath(name).split("/"))
    root = os.path.realpath(out_dir)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ValueError(f"file name {name!r} would be written outside {out_dir} (through a link)")
    return path


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


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in the folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | os.PathLike, durable: bool = False) -> Iterator[IO[str]]:
    """A text file (UTF-8) to write ``path`` through: written to a temporary file beside
    ``path`` and renamed over it when the block ends without an error (else removed), so
    a crash leaves the old file or the new one, never half of one. ``durable``: also
    fsync the file before the rename and the folder after it (survives power loss).

    Args:
        path: the file to write.
        durable: fsync file and folder.

    Yields:
        The open temporary file.

    Raises:
        OSError: the folder cannot be written (the error of the failing call, unchanged).
    """
    path = str(path)
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")  # mode "x": the umask applies
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):  # the temp file may never have been made: keep the real error
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder or ".")


def atomic_write(path: str | os.PathLike, text: str, durable: bool = False) -> str:
    """Write ``text`` to ``path`` through :func:`atomic_writer`; returns ``path``."""
    with atomic_writer(path, durable) as f:
        f.write(text)
    return str(path)


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
    owner = {}
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
def load_json(source: str | os.PathLike | Any) -> tuple[Any, str]:
    """``(data, name)`` from a JSON file path, or an already parsed object (``name="<data>"``)."""
    if not isinstance(source, (str, os.PathLike)):
        return source, "<data>"
    try:
        with open(source, encoding="utf-8") as f:
            return json.load(f), str(source)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON: {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 text: {e}") from e


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


def image_size(path: str) -> Size:
    """Displayed ``(width, height)`` from the file header: EXIF orientations 5-8 swap them
    (see the EXIF rule in :mod:`autolabel.sources`)."""
    from PIL import Image, UnidentifiedImageError

    from autolabel.sources import open_pil

    try:
        with open_pil(path) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot read the image size: {e}") from e
    return (h, w) if turned else (w, h)


class Builder:
    """Collects a reader's images and boxes into :class:`Results`. Class names are fixed
    up front (other names are errors) or, with ``class_names=None``, collected and sorted."""

    def __init__(self, source: str, class_names: Sequence[str] | None = None):
        self.source = source
        self.fixed = class_names is not None
        self.names = list(class_names or [])
        self.ids = {n: i for i, n in enumerate(self.names)}
        self.rows: list[tuple[ImageInfo, list, list, list, list | None]] = []

    def label(self, name: str, where: str) -> int:
        """Class id of ``name`` (``where`` names the file and record for errors)."""
        if name not in self.ids:
            if self.fixed:
                raise ValueError(f"{where}: unknown class {name!r}; known: {', '.join(self.names)}")
            self.ids[name] = len(self.names)
            self.names.append(name)
        return self.ids[name]

    def add(self, info: ImageInfo, boxes: list, scores: list, ids: list, iscrowd: list | None = None) -> None:
        self.rows.append((info, boxes, scores, ids, iscrowd))

    def results(self, model_id: str = "", failures: Sequence[Failure] = ()) -> Results:
        keys = [r[0].key for r in self.rows]
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ValueError(f"{self.source}: image {dup!r} appears more than once")
        names = self.names if self.fixed else sorted(self.names)
        remap = np.array([names.index(n) for n in self.names] or [0], np.int64)
        dets = [
            Detections(np.asarray(b, np.float64).reshape(-1, 4), s, remap[np.asarray(i, np.int64)], names, info,
                       iscrowd=c)
            for info, b, s, i, c in self.rows
        ]
        return Results(dets, tuple(names), model_id, list(failures))


def size_for(key: str, sizes: Mapping[str, Size] | None, where: str) -> Size:
    if sizes is None or key not in sizes:
        raise ValueError(f"{where}: no size for image {key!r}; pass image_sizes={{key: (width, height)}}")
    w, h = sizes[key]
    return int(w), int(h)


def rel_posix(path: str | os.PathLike, root: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
