"""Sliced inference for large frames (SAHI-style): tiles with overlap plus the full frame.

A 1920x1080 frame letterboxed to a 640x640 model input shrinks 3x: a person 60 px tall
becomes 20 px, below what small detectors find reliably. :class:`SlicedDetector` runs
the model on tiles of the model's own input size (so the tiles are seen at full
resolution) that overlap by ``overlap``, and on the whole frame (which keeps the objects
larger than a tile), then merges:

* a tile box that touches an inner tile edge (not the frame's border) is dropped: it is
  a cut-off part of an object that the neighbouring tile (objects smaller than the
  overlap) or the full frame (larger ones) sees whole;
* the rest are merged by class-wise NMS at the detector's ``iou``
  (:func:`autolabel.boxes.batched_nms`).

This is what supervision's ``InferenceSlicer`` does (tiles + NMS); it is written here
rather than reused because ``InferenceSlicer`` runs a callback one tile at a time,
while the tiles here are prepared in the engine's decode threads and inferred in
batches, and because it has no full-frame pass or cut-box rule.

**Auto mode** (the default, ``mode="auto"``): slice only where objects would be too
small at the model's input size, i.e. where the frame is shrunk by at least
``min_scale`` (1.5: frames larger than 960 px on a side for a 640 model). Small frames
go through unchanged. ``mode="on"`` slices every frame, ``"off"`` none.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from autolabel.boxes import batched_nms
from autolabel.core import Detections
from autolabel.detectors.base import Detector

__all__ = ["SlicedDetector", "with_slicing", "tiles"]

MODES = ("auto", "on", "off")


def tiles(height: int, width: int, size: tuple[int, int], overlap: float = 0.2) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering a ``height`` x ``width`` frame with tiles of
    ``size`` (h, w) overlapping by at least ``overlap`` of a tile; the last row / column is
    aligned to the frame's edge."""

    def starts(total: int, tile: int) -> list[int]:
        if total <= tile:
            return [0]
        step = max(1, int(tile * (1 - overlap)))
        n = int(np.ceil((total - tile) / step)) + 1
        return np.linspace(0, total - tile, n).round().astype(int).tolist()

    th, tw = size
    return [(x, y, min(x + tw, width), min(y + th, height)) for y in starts(height, th) for x in starts(width, tw)]


class SlicedDetector(Detector):
    """A detector run on tiles plus the full frame (see the module docs).

    Args:
        inner: the detector (needs an ``input_size``; a backend that resizes itself uses 640).
        mode: ``"auto"``, ``"on"`` or ``"off"``.
        overlap: tile overlap, a share of the tile size.
        min_scale: auto mode slices frames shrunk at least this much at the model input.
        tile: tile (height, width) in frame pixels (default: the model's input size).
    """

    def __init__(self, inner: Detector, mode: str = "auto", overlap: float = 0.2, min_scale: float = 1.5,
                 tile: tuple[int, int] | None = None):
        if mode not in MODES:
            raise ValueError(f"slice mode must be one of {MODES}, got {mode!r}")
        super().__init__(inner.name, inner.class_names, inner.weights_sha256, inner.input_size, inner.batch_size,
                         inner.conf, inner.iou, inner.max_det)
        self.inner, self.mode, self.overlap, self.min_scale = inner, mode, overlap, min_scale
        self.tile_size = tuple(tile or inner.input_size or (640, 640))
        self.thread_safe = inner.thread_safe  # type: ignore[misc]
        self.auto_streams = getattr(inner, "auto_streams", 1)

    @property
    def model_id(self) -> str:
        """The inner model's id; forced slicing adds ``+sliced`` (other boxes, another log)."""
        tile = "x".join(map(str, self.tile_size))
        return self.inner.model_id + (f"+sliced{tile}" if self.mode == "on" else "")

    def slices(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """The tile windows of a frame this size (none when it is not sliced)."""
        scale = max(height / self.tile_size[0], width / self.tile_size[1])
        if self.mode == "off" or (self.mode == "auto" and scale < self.min_scale):
            return []
        return tiles(height, width, self.tile_size, self.overlap)  # type: ignore[arg-type]

    def prepare_item(self, item: Any) -> tuple[Any, Any]:
        arr, info = item.load()  # full resolution: tiles need every pixel
        return self.prepare(arr), info

    def prepare(self, image: np.ndarray) -> Any:
        """The full frame and every tile, each prepared for the inner model (decode threads)."""
        h, w = image.shape[:2]
        parts = [(self.inner.prepare(image), (0, 0, w, h))]
        parts += [(self.inner.prepare(np.ascontiguousarray(image[y0:y1, x0:x1])), (x0, y0, x1, y1))
                  for x0, y0, x1, y1 in self.slices(h, w)]
        return parts, (h, w)

    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        flat = [(i, p, win) for i, (parts, _) in enumerate(batch) for p, win in parts]
        found: list[Detections] = []
        bs = max(1, self.inner.batch_size)
        for s in range(0, len(flat), bs):
            found += self.inner.predict_prepared([p for _, p, _ in flat[s:s + bs]], conf, iou, max_det)
        per: list[list[Detections]] = [[] for _ in batch]
        for (i, _, win), d in zip(flat, found):
            per[i].append(_place(d, win, batch[i][1]))
        return [self._merge(p, iou, max_det) for p in per]

    def _merge(self, parts: list[Detections], iou: float, max_det: int) -> Detections:
        if len(parts) == 1:
            return parts[0]
        d = Detections.concat(parts)
        keep = batched_nms(d.xyxy, d.scores, d.class_ids, iou, max_det)
        return d[np.sort(keep)]


def _place(d: Detections, win: tuple[int, int, int, int], frame: tuple[int, int]) -> Detections:
    """Tile boxes in frame pixels, without those cut by an inner tile edge."""
    x0, y0, x1, y1 = win
    h, w = frame
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return d
    b = d.xyxy.astype(np.float64) + [x0, y0, x0, y0]
    m = 2.0  # px: a box this close to an inner edge is cut by it
    cut = (((b[:, 0] <= x0 + m) & (x0 > 0)) | ((b[:, 1] <= y0 + m) & (y0 > 0))
           | ((b[:, 2] >= x1 - m) & (x1 < w)) | ((b[:, 3] >= y1 - m) & (y1 < h)))
    keep = np.flatnonzero(~cut)
    return replace(d[keep], xyxy=b[keep])


def with_slicing(detector: Detector, slice: bool | None = None, tile: tuple[int, int] | None = None) -> Detector:
    """``detector`` with sliced inference: ``None`` auto (large frames only), True every
    frame, False none (the detector itself); ``tile`` as :class:`SlicedDetector`.

    Tiles are merged box by box, so pose and segmentation models (keypoints, masks) are
    not sliced: auto mode leaves them as they are.

    Raises:
        ValueError: ``slice=True`` for a pose or segmentation model.
    """
    if slice is False or isinstance(detector, SlicedDetector):
        return detector
    layout = getattr(detector, "layout", None)
    if detector.keypoint_spec is not None or getattr(layout, "n_masks", False):
        if slice:
            raise ValueError(f"{detector.name}: sliced inference merges boxes only; it does not take a pose or "
                             "segmentation model (leave out --slice)")
        return detector
    return SlicedDetector(detector, "auto" if slice is None else "on", tile=tile)
