"""Where images come from: folders, globs, path lists, COCO / YOLO / VOC datasets and video.

Every source yields :class:`Item` objects that load lazily (video frames arrive decoded,
one at a time, never the whole video in memory).

**EXIF orientation rule** (applied everywhere, by :func:`load_image`): pixels are rotated
as the EXIF ``Orientation`` tag says, exactly as annotation tools (Label Studio, CVAT,
browsers) display the image. Widths, heights and boxes in every output refer to that
displayed image. A dataset whose recorded size disagrees with the displayed size is
therefore reported, not silently mixed.
"""

from __future__ import annotations

import glob as _glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from autolabel.core import ImageInfo, Results
from autolabel.io.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ImageReadError, find_images, load_image_draft



@dataclass
class Item:
    """One input: an image file or a decoded video frame."""

    key: str
    path: str | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    array: np.ndarray | None = field(default=None, repr=False)

    def load(self, draft: tuple[int, int] | None = None) -> tuple[np.ndarray, ImageInfo]:
        """Pixels (RGB uint8) and identity (full image size). With ``draft`` (a model
        input (height, width)) large JPEGs decode smaller (:func:`load_image_draft`):
        the pixels may then be smaller than ``ImageInfo.width`` x ``height``.
        Raises :class:`ImageReadError`."""
        if self.array is not None:
            h, w = self.array.shape[:2]
            arr, (w, h) = self.array, (w, h)
        else:
            arr, (w, h) = load_image_draft(self.path or self.key, draft)
        return arr, ImageInfo(self.key, w, h, self.path, self.frame_index, self.timestamp)


class NoImagesError(ValueError):
    """A source (folder, glob, list, dataset) that holds no image."""


@dataclass
class Source:
    """An iterable of :class:`Item`; ``ground_truth`` is set for labeled datasets."""

    items: Iterable[Item] | Callable[[], Iterator[Item]]
    description: str
    length: int | None = None
    ground_truth: Results | None = None

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The dataset's classes (labeled datasets only)."""
        return None if self.ground_truth is None else self.ground_truth.class_names

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items() if callable(self.items) else self.items)

    def require_items(self) -> Source:
        """``self``, unless it is known to hold nothing (checked before any work starts).

        Raises:
            NoImagesError: ``"no images found in <source>"``.
        """
        if self.length == 0:
            raise NoImagesError(f"no images found in {self.description}")
        return self

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError(f"length of {self.description} is unknown before reading it")
        return self.length

    def __repr__(self) -> str:
        n = "?" if self.length is None else self.length
        return f"Source({self.description}, {n} items)"


def _is_image(p: str) -> bool:
    return p.lower().endswith(IMAGE_EXTENSIONS)


def _keyed(paths: Sequence[str], root: str | None, description: str | None = None) -> Source:
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else "."
    items = [Item(Path(os.path.relpath(os.path.abspath(p), root)).as_posix(), p) for p in paths]
    return Source(items, description or (f"{len(items)} images under {root}" if items else "an empty list of images"),
                  len(items))


def from_folder(root: str | os.PathLike, recursive: bool = True, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> Source:
    """All images under ``root`` (by extension, case-insensitive), sorted; keys are relative paths."""
    root = str(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    return _keyed(find_images(root, recursive, extensions), root, f"folder {root}")


def from_glob(pattern: str) -> Source:
    """Images matching a glob pattern (``**`` recurses); keys relative to the fixed prefix."""
    paths = sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p))
    prefix = pattern.split("*")[0].split("?")[0].split("[")[0]
    root = prefix if prefix.endswith(os.sep) else os.path.dirname(prefix) or "."
    return _keyed(paths, root, f"glob {pattern}")


def from_paths(paths: Sequence[str | os.PathLike]) -> Source:
    """An explicit list of image paths; keys relative to their common folder."""
    return _keyed([str(p) for p in paths], None)


def _dataset_source(gt: Results, image_dir: str, description: str) -> Source:
    items = [Item(d.image.key, d.image.path or os.path.join(image_dir, d.image.key)) for d in gt if d.image]
    return Source(items, description, len(items), gt)


def from_coco(annotations: str | os.PathLike, image_dir: str | os.PathLike | None = None,
              invalid_boxes: str = "error") -> Source:
    """Images of a COCO dataset (``file_name`` relative to ``image_dir``, default: the
    JSON's folder or its ``images/`` subfolder), with categories and ground truth
    (``invalid_boxes``: see :func:`~autolabel.formats.read_coco`)."""
    from autolabel.formats import read_coco

    gt = read_coco(str(annotations), invalid_boxes)
    if image_dir is None:
        base = os.path.dirname(os.path.abspath(annotations))
        first = gt.detections[0].info.key if len(gt) else ""
        image_dir = base if os.path.exists(os.path.join(base, first)) else os.path.join(base, "images")
    return _dataset_source(gt, str(image_dir), f"COCO {annotations}")


def from_yolo(root: str | os.PathLike, split: str | None = None) -> Source:
    """A YOLO dataset (``data.yaml`` + ``images/`` + ``labels/``), optionally one split."""
    from autolabel.formats import read_yolo

    gt = read_yolo(str(root), split=split)
    return _dataset_source(gt, str(root), f"YOLO {root}" + (f" [{split}]" if split else ""))


def from_voc(root: str | os.PathLike, split: str | None = None, invalid_boxes: str = "error") -> Source:
    """A Pascal VOC dataset (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``);
    ``invalid_boxes``: see :func:`~autolabel.formats.read_voc`."""
    from autolabel.formats import read_voc

    gt = read_voc(str(root), split=split, invalid_boxes=invalid_boxes)
    return _dataset_source(gt, os.path.join(str(root), "JPEGImages"), f"VOC {root}" + (f" [{split}]" if split else ""))


def from_video(path: str | os.PathLike, every: int | None = None, every_seconds: float | None = None) -> Source:
    """Frames of a video, every ``every``-th frame or every ``every_seconds`` seconds.

    Frames are decoded one at a time (skipped frames are only grabbed, not decoded);
    each item carries the frame index and timestamp (seconds). Keys are
    ``"<file name>#<frame index>"``.
    """
    import cv2

    path = str(path)
    if every is not None and every_seconds is not None:
        raise ValueError("give either every or every_seconds, not both")
    cap = cv2.VideoCapture(path)
    if not os.path.isfile(path) or not cap.isOpened():
        raise ImageReadError(path, "cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    if every_seconds is not None and fps <= 0:
        raise ImageReadError(path, "video reports no frame rate; use every=<k frames>")
    step = max(1, every or (round(every_seconds * fps) if every_seconds else 1))
    name = os.path.basename(path)

    def frames() -> Iterator[Item]:
        cap = cv2.VideoCapture(path)
        try:
            i = 0
            while True:
                if i % step:
                    if not cap.grab():
                        return
                else:
                    ok, bgr = cap.read()
                    if not ok:
                        return
                    ts = i / fps if fps > 0 else float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                    yield Item(f"{name}#{i}", path, i, round(ts, 6), np.ascontiguousarray(bgr[..., ::-1]))
                i += 1
        finally:
            cap.release()

    length = (count + step - 1) // step if count > 0 else None
    return Source(frames, f"video {path} every {step} frames", length)


def open_source(spec: Source | str | os.PathLike | Sequence[str | os.PathLike], **kw: Any) -> Source:
    """Any source from one argument: a :class:`Source`, an image folder, a glob, a video
    file, a MOTChallenge sequence folder (has ``seqinfo.ini``; numbered frames with
    ``fps=``: see :mod:`autolabel.sources.sequences`), a COCO ``.json``, a VOC root (has ``Annotations/``), a YOLO root (has
    ``data.yaml``), a single image, or a list of image paths. ``kw`` goes to the
    matching ``from_*`` function (e.g. ``every=30`` for video, ``split="val"``)."""
    if isinstance(spec, Source):
        return spec
    if isinstance(spec, (list, tuple)):
        return from_paths(spec)
    s = str(spec)
    low = s.lower()
    if any(c in s for c in "*?["):
        return from_glob(s)
    if low.endswith(VIDEO_EXTENSIONS):
        return from_video(s, **kw)
    if low.endswith(".json"):
        return from_coco(s, **kw)
    if os.path.isdir(s):
        from autolabel.sources import sequences  # MOTChallenge folders (seqinfo.ini) and numbered frames at an fps

        if sequences.is_sequence(s) or "fps" in kw:
            return sequences.open_sequence(s, **kw)
        if os.path.isdir(os.path.join(s, "Annotations")) and os.path.isdir(os.path.join(s, "JPEGImages")):
            return from_voc(s, **kw)
        if os.path.isfile(os.path.join(s, "data.yaml")):
            return from_yolo(s, **kw)
        return from_folder(s, **kw)
    if os.path.isfile(s) and _is_image(s):
        return from_paths([s])
    raise FileNotFoundError(f"no such image folder, image, video or dataset: {s}")
