"""Image sequences as sources: MOTChallenge folders, folders of numbered frames, video files.

Every frame is an :class:`~autolabel.sources.Item` with the same identity as a video
frame today: key ``"<sequence name>#<frame index>"``, a 0-based ``frame_index`` and a
``timestamp`` in seconds (``frame_index / fps``). A :class:`SequenceSource` also knows
its frame rate (trackers need it) and, for a MOT folder with ``gt/gt.txt``, its ground
truth as :class:`~autolabel.core.Results` with a ``track_id`` per box.

* **MOTChallenge folder**: ``seqinfo.ini`` (``[Sequence]`` with ``name``, ``imDir``,
  ``frameRate``, ``seqLength``, ``imExt``). The frames are the files of ``imDir``
  (``img1`` in MOT15-20, any name elsewhere; without the key, ``img1`` or else ``img``)
  with that extension.
* **Numbered frames**: a folder of images whose names end in a number
  (``000001.jpg``, ``frame_0001.png``), with ``fps`` given.
* **Video file**: decoded one frame at a time by :func:`autolabel.sources.from_video`.

Frame index rule: ``number in the file name - number of the first frame``, so
``000001.jpg`` and ``frame_0000.jpg`` are both frame 0 and a gap in the numbering stays
a gap in time. MOT files write ``frame_index + 1`` (MOT frames are 1-based).
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from autolabel.core import Results
from autolabel.sources import Item, Source, from_video
from autolabel.io.images import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = ["SequenceSource", "SeqInfo", "read_seqinfo", "is_sequence", "from_mot_folder", "from_frames",
           "open_sequence"]

_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``."""

    name: str
    im_dir: str
    fps: float
    length: int | None
    width: int | None
    height: int | None
    im_ext: str


class SequenceSource(Source):
    """A :class:`~autolabel.sources.Source` of the frames of one sequence, in order.

    Attributes:
        name: the sequence name (key prefix).
        fps: frames per second (timestamps are ``frame_index / fps``).
    """

    def __init__(self, items: Iterable[Item] | Callable[[], Iterator[Item]], description: str, name: str, fps: float,
                 ground_truth: Results | None = None, length: int | None = None):
        n = len(items) if length is None and isinstance(items, list) else length
        super().__init__(items, description, n, ground_truth)
        self.name = name
        self.fps = float(fps)

    def __repr__(self) -> str:
        return f"SequenceSource({self.name!r}, {self.length} frames at {self.fps:g} fps)"


def read_seqinfo(path: str | os.PathLike) -> SeqInfo:
    """Parse a MOTChallenge ``seqinfo.ini``.

    Raises:
        ValueError: the file has no ``[Sequence]`` section or a non-numeric field, naming the file.
    """
    cp = configparser.ConfigParser()
    try:
        cp.read(os.fspath(path), encoding="utf-8")
    except configparser.Error as e:
        raise ValueError(f"{path}: not a valid seqinfo.ini: {e}") from None
    if not cp.has_section("Sequence"):
        raise ValueError(f"{path}: no [Sequence] section")
    s = cp["Sequence"]

    def num(key: str) -> float | None:
        if key not in s:
            return None
        try:
            return float(s[key])
        except ValueError:
            raise ValueError(f"{path}: {key}={s[key]!r} is not a number") from None

    def whole(key: str) -> int | None:
        v = num(key)
        if v is not None and v != int(v):
            raise ValueError(f"{path}: {key}={s[key]!r} is not a whole number")
        return None if v is None else int(v)

    fps = num("frameRate")
    if fps is not None and fps <= 0:
        raise ValueError(f"{path}: frameRate must be positive, got {fps}")
    im_dir = s.get("imDir") or next((d for d in ("img1", "img") if (Path(path).parent / d).is_dir()), "img1")
    return SeqInfo(
        name=s.get("name", Path(path).parent.name), im_dir=im_dir, fps=fps or 0.0,
        length=whole("seqLength"), width=whole("imWidth"), height=whole("imHeight"),
        im_ext=s.get("imExt", ""),
    )


def is_sequence(path: str | os.PathLike) -> bool:
    """True for a MOTChallenge-style folder (it has a ``seqinfo.ini``)."""
    return os.path.isfile(os.path.join(path, "seqinfo.ini"))


def _numbered(folder: str, ext: str = "") -> list[tuple[int, str]]:
    exts = (ext.lower(),) if ext else IMAGE_EXTENSIONS
    out = []
    for f in os.listdir(folder):
        stem, e = os.path.splitext(f)
        m = _NUMBER.search(stem)
        if e.lower() in exts and m:
            out.append((int(m.group(1)), os.path.join(folder, f)))
    out.sort()
    numbers = [n for n, _ in out]
    if len(set(numbers)) != len(numbers):
        dup = next(n for n in numbers if numbers.count(n) > 1)
        raise ValueError(f"{folder}: two frames carry the number {dup}")
    return out


def _items(frames: list[tuple[int, str]], name: str, fps: float) -> list[Item]:
    first = frames[0][0]
    return [Item(f"{name}#{n - first}", p, n - first, round((n - first) / fps, 6)) for n, p in frames]


def from_frames(folder: str | os.PathLike, fps: float, name: str | None = None, ext: str = "",
                every: int | None = None) -> SequenceSource:
    """A folder of numbered frames (``000001.jpg``, ``frame_0001.png``, ...) at ``fps``.

    Args:
        folder: the folder holding the frames (not searched recursively).
        fps: frames per second, > 0.
        name: sequence name for the keys (default: the folder's name).
        ext: only files with this extension (default: any image extension).
        every: keep every ``every``-th frame (frame indices and timestamps stay the originals).

    Raises:
        FileNotFoundError: no folder; ValueError: no numbered frames, fps not positive,
        or two files with the same number.
    """
    folder = str(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"frame folder not found: {folder}")
    if not fps or fps <= 0:
        raise ValueError(f"{folder}: fps must be positive, got {fps!r}")
    frames = _numbered(folder, ext)
    if not frames:
        raise ValueError(f"{folder}: no image files with a frame number at the end of their name")
    name = name or Path(os.path.abspath(folder)).name
    return SequenceSource(_items(frames, name, fps)[:: every or 1], f"frames {folder} at {fps:g} fps", name, fps)


def from_mot_folder(root: str | os.PathLike, fps: float | None = None, every: int | None = None) -> SequenceSource:
    """A MOTChallenge-style sequence: ``seqinfo.ini`` + its ``imDir`` (+ ``gt/gt.txt``).

    Args:
        root: the sequence folder.
        fps: overrides ``frameRate`` (required when the ini has none).
        every: keep every ``every``-th frame (and its ground truth).

    Returns:
        The frames in order; ``ground_truth`` holds ``gt/gt.txt`` (class ``person``,
        scored rows only) when the file exists.

    Raises:
        ValueError: a bad ``seqinfo.ini``, no frames, or frame count unequal to ``seqLength``.
    """
    from autolabel.formats.mot import read_mot

    root = str(root)
    info = read_seqinfo(os.path.join(root, "seqinfo.ini"))
    rate = fps or info.fps
    img = os.path.join(root, info.im_dir)
    if not os.path.isdir(img):
        raise ValueError(f"{root}/seqinfo.ini: imDir={info.im_dir!r} is not a folder")
    if not rate:
        raise ValueError(f"{root}/seqinfo.ini: no frameRate; pass fps=")
    frames = _numbered(img, info.im_ext)
    if not frames:
        raise ValueError(f"{img}: no frames named <number>{info.im_ext}")
    if info.length is not None and info.length != len(frames):
        raise ValueError(f"{root}/seqinfo.ini: seqLength={info.length} but {img} holds {len(frames)} frames")
    items = _items(frames, info.name, rate)
    gt_path = os.path.join(root, "gt", "gt.txt")
    gt = None
    if os.path.isfile(gt_path):
        gt = read_mot(gt_path, frames=[(it.key, it.path, it.frame_index, it.timestamp) for it in items
                                       if it.frame_index is not None],  # every item of a sequence has one
                      image_size=_size(info, items[0].path), ground_truth=True)
    if every and every > 1:
        items = items[::every]
        keep = {it.key for it in items}
        gt = None if gt is None else Results([d for d in gt if d.image.key in keep], gt.class_names)
    return SequenceSource(items, f"MOT sequence {root}", info.name, rate, gt)


def _size(info: SeqInfo, first: str | None) -> tuple[int, int]:
    if info.width and info.height:
        return info.width, info.height
    from autolabel.io.images import image_size

    return image_size(str(first))


def open_sequence(spec: str | os.PathLike | Source, fps: float | None = None, every: int | None = None,
                  **video_options: object) -> SequenceSource:
    """A sequence from a MOT folder, a folder of numbered frames (``fps`` needed) or a video file.

    Args:
        spec: the folder or video file (a :class:`SequenceSource` is returned as is).
        fps: frames per second (overrides ``seqinfo.ini``; required for a frame folder).
        every: keep every ``every``-th frame.
        video_options: more options for :func:`autolabel.sources.from_video` (``every_seconds``).

    Raises:
        FileNotFoundError: nothing at ``spec``; ValueError: a folder that is neither kind.
    """
    if isinstance(spec, SequenceSource):
        return spec
    s = str(spec)
    if os.path.isdir(s) and is_sequence(s):
        return from_mot_folder(s, fps, every)
    if os.path.isdir(s):
        if fps is None:
            raise ValueError(f"{s}: a folder of frames needs fps= (or a seqinfo.ini with frameRate)")
        return from_frames(s, fps, every=every)
    if os.path.isfile(s) and s.lower().endswith(VIDEO_EXTENSIONS):
        return _video(s, every=every, **video_options)
    raise FileNotFoundError(f"no sequence folder, frame folder or video at {s}")


def _video(path: str, **options: Any) -> SequenceSource:
    import cv2

    src = from_video(path, **options)
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    cap.release()
    if fps <= 0:
        raise ValueError(f"{path}: the video reports no frame rate")
    # frames stay lazy: decoded one at a time as the tracker consumes them
    return SequenceSource(src.items, src.description, os.path.basename(path), fps, length=src.length)
