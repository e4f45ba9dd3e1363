"""Temporal consistency of video pre-labels: how much the detections change between
neighbouring sampled frames. Flickering boxes are a cheap signal that a frame needs a
human look, so the routing stage can use the score next to model confidence.

Definitions (``A`` and ``B`` are the detections of two frames):

* **frame similarity** ``sim(A, B)``: every box of ``A`` gets its best IoU with a box
  of the *same class* in ``B`` (0 when there is none), and every box of ``B`` likewise
  with ``A``; ``sim`` is the mean of these ``|A| + |B|`` values. Two empty frames have
  ``sim = 1``; one empty and one not, ``sim = 0``. Symmetric, in ``[0, 1]``; identical
  detections give exactly 1.
* **temporal consistency** of a sampled frame: the mean of ``sim`` with the previous
  and with the next *sampled* frame of the same video (one neighbour at either end;
  ``NaN`` for a video with a single sampled frame). 1 = nothing changed, 0 = every
  box appeared, vanished or changed class. The change score is ``1 - consistency``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from autolabel.core import Detections
from autolabel.boxes import best_same_class_iou

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["frame_similarity", "frame_table"]


def frame_similarity(a: Detections, b: Detections) -> float:
    """``sim(A, B)`` as defined in the module docs."""
    if not len(a) and not len(b):
        return 1.0
    if not len(a) or not len(b):
        return 0.0
    forward = best_same_class_iou(a.xyxy, a.class_ids, b.xyxy, b.class_ids)
    backward = best_same_class_iou(b.xyxy, b.class_ids, a.xyxy, a.class_ids)
    return float((forward.sum() + backward.sum()) / (len(a) + len(b)))


def frame_table(results: Iterable[Detections]) -> pd.DataFrame:
    """One row per video frame in ``results``: ``key``, ``video`` (the video file, or the
    sequence name for frames stored as images), ``frame_index``, ``timestamp``, ``boxes``
    and ``temporal_consistency``, sorted by video and frame.

    Images that are not video frames (no ``frame_index``) are left out.
    """
    import pandas as pd

    frames = [d for d in results if d.image is not None and d.image.frame_index is not None]
    frames.sort(key=lambda d: (d.info.sequence, d.info.frame))
    videos = [d.info.sequence for d in frames]
    scores = np.full(len(frames), np.nan)
    start = 0
    for i in range(1, len(frames) + 1):
        if i < len(frames) and videos[i] == videos[start]:
            continue
        sims = [frame_similarity(frames[j], frames[j + 1]) for j in range(start, i - 1)]
        for j in range(start, i):
            near = sims[max(j - start - 1, 0): j - start + 1]
            scores[j] = np.mean(near) if near else np.nan
        start = i
    return pd.DataFrame({
        "key": [d.info.key for d in frames],
        "video": videos,
        "frame_index": [d.info.frame for d in frames],
        "timestamp": [d.info.timestamp for d in frames],
        "boxes": [len(d) for d in frames],
        "temporal_consistency": scores,
    })
