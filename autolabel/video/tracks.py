"""Tracks as a view of per-frame :class:`~autolabel.core.Results`, and back.

A track is every box of one ``track_id`` (and class) in one sequence, in frame order.
Sequences are told apart by :attr:`ImageInfo.sequence <autolabel.core.ImageInfo.sequence>`
(the video file's path, or the key prefix before ``#``: ``"TUD-Campus#12"`` is frame 12
of ``TUD-Campus``); frames are ordered by ``ImageInfo.frame``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from autolabel.core import Detections, ImageInfo, Results

__all__ = ["Track", "sequences", "tracks_of", "from_tracks"]


@dataclass(eq=False)
class Track:
    """One object's boxes over time.

    Attributes:
        track_id: the id (unique per sequence and class).
        label: class name.
        frames: (n,) int64 frame indices, strictly increasing (gaps allowed).
        xyxy: (n, 4) float64 boxes in pixels.
        scores: (n,) float64 box scores (1.0 for ground truth).
        data: optional per-frame (n,) arrays (e.g. ``occluded``, ``detected``).
    """

    track_id: int
    label: str
    frames: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, np.int64)
        self.xyxy = np.asarray(self.xyxy, np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float64)
        if not (len(self.frames) == len(self.xyxy) == len(self.scores)):
            raise ValueError(f"track {self.track_id}: frames, boxes and scores differ in length")
        if len(self.frames) > 1 and (np.diff(self.frames) <= 0).any():
            raise ValueError(f"track {self.track_id}: frame indices must be strictly increasing")

    def __len__(self) -> int:
        return len(self.frames)

    def __repr__(self) -> str:
        span = f"frames {self.frames[0]}-{self.frames[-1]}" if len(self) else "empty"
        return f"Track({self.track_id}, {self.label!r}, {len(self)} boxes, {span})"


def sequences(results: Iterable[Detections]) -> dict[str, list[Detections]]:
    """Frames grouped by sequence, each group sorted by frame index.

    Raises:
        ValueError: a frame without ``ImageInfo`` or ``frame_index``.
    """
    out: dict[str, list[Detections]] = {}
    for d in results:
        out.setdefault(d.info.sequence, []).append(d)
    for frames in out.values():
        frames.sort(key=lambda d: d.info.frame)  # raises on an image that is not a video frame
    return out


def tracks_of(frames: Sequence[Detections], data_keys: Sequence[str] = ()) -> list[Track]:
    """The tracks of one sequence's frames (boxes without a ``track_id`` are skipped).

    Args:
        frames: one sequence's detections, each with a ``track_id`` array.
        data_keys: per-box ``Detections.data`` arrays to carry into ``Track.data``.

    Returns:
        Tracks sorted by (class, track id).

    Raises:
        ValueError: detections without ``track_id``, or one id twice in a frame.
    """
    rows: dict[tuple[int, int], list[tuple[int, np.ndarray, float, list]]] = {}
    names: tuple[str, ...] = ()
    for d in frames:
        if d.track_id is None:
            raise ValueError(f"image {d.image.key if d.image else '?'!r}: detections have no track_id")
        names = names or d.class_names
        f = d.info.frame
        for i in range(len(d)):
            if d.track_id[i] < 0:
                continue
            key = (int(d.class_ids[i]), int(d.track_id[i]))
            if rows.get(key) and rows[key][-1][0] == f:
                raise ValueError(f"frame {f}: track {key[1]} has two boxes")
            rows.setdefault(key, []).append((f, d.xyxy[i], float(d.scores[i]), [d.data[k][i] for k in data_keys]))
    out = []
    for (c, t), r in sorted(rows.items()):
        label = names[c] if c < len(names) else str(c)
        data = {k: np.array([x[3][j] for x in r]) for j, k in enumerate(data_keys)}
        out.append(Track(t, label, np.array([x[0] for x in r]), np.array([x[1] for x in r]),
                         np.array([x[2] for x in r]), data))
    return out


def from_tracks(tracks: Sequence[Track], images: Sequence[ImageInfo], class_names: Sequence[str],
                model_id: str = "") -> Results:
    """Per-frame :class:`Results` (with ``track_id``) of one sequence's tracks.

    Args:
        tracks: the tracks; their frames must be among ``images``' frame indices.
        images: every frame of the sequence (frames without boxes stay, empty).
        class_names: the label set; every track's label must be in it.

    Raises:
        ValueError: a track on a frame not in ``images``, or a label not in ``class_names``.
    """
    names = tuple(class_names)
    by_frame = {im.frame: i for i, im in enumerate(images)}
    parts: list[list[tuple[np.ndarray, float, int, int, dict]]] = [[] for _ in images]
    keys = sorted({k for t in tracks for k in t.data})
    dtypes = {k: next(t.data[k].dtype for t in tracks if k in t.data) for k in keys}
    for t in tracks:
        if t.label not in names:
            raise ValueError(f"track {t.track_id}: label {t.label!r} is not one of {list(names)}")
        for j, f in enumerate(t.frames.tolist()):
            if f not in by_frame:
                raise ValueError(f"track {t.track_id}: frame {f} is not in the sequence")
            parts[by_frame[f]].append((t.xyxy[j], t.scores[j], names.index(t.label), t.track_id,
                                       {k: t.data[k][j] for k in keys if k in t.data}))
    dets = []
    for im, p in zip(images, parts):
        p.sort(key=lambda x: x[3])
        data = {k: np.array([x[4].get(k) for x in p], dtypes[k]) for k in keys}
        dets.append(Detections(np.array([x[0] for x in p]).reshape(-1, 4), np.array([x[1] for x in p]),
                               np.array([x[2] for x in p]), names, im, track_id=np.array([x[3] for x in p]), data=data))
    return Results(dets, names, model_id)
