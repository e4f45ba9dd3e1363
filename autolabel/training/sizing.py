"""Which input size to train at: from the objects' sizes, capped by the time budget.

A detector sees an object of relative side ``r`` (box side / the image's longer side; the
letterbox scales that side to ``imgsz``) as ``r * imgsz`` pixels. YOLO's finest head has
stride 8, and objects under about :data:`MIN_OBJECT_PX` pixels are found poorly, so the
size asked for is the smallest of :data:`SIZES` that shows the data's 10th-percentile
object at :data:`MIN_OBJECT_PX` (at least :data:`MIN_SIZE`, and never more than the
images' own longer side). A budget then caps it: training cost grows with the input
area, and :data:`MIN_EPOCHS` epochs over the training images must fit in the budget at
:data:`SECONDS_PER_IMAGE_320` seconds per image and epoch at 320 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autolabel.core import Results

__all__ = ["SizeChoice", "choose_imgsz", "estimate_epoch_seconds", "SIZES", "MIN_OBJECT_PX", "MIN_EPOCHS",
           "SECONDS_PER_IMAGE_320"]

SIZES = (160, 192, 224, 256, 288, 320, 384, 416, 480, 512, 576, 640, 768, 896, 1024)
MIN_SIZE = 320  #: smallest size chosen from object sizes alone (below it the pretrained features degrade)
MIN_OBJECT_PX = 16.0  #: pixels the 10th-percentile object should span at the chosen size
MIN_EPOCHS = 20  #: epochs a budget must allow at the chosen size
#: measured: yolo11n training (forward, backward, augmentation, validation share) on the 2-core CPU of
#: this project's machines (shared, so pessimistic); a GPU is about 50x faster
SECONDS_PER_IMAGE_320 = 0.25


@dataclass(frozen=True)
class SizeChoice:
    """The chosen input size and why."""

    imgsz: int
    reason: str
    object_p10: float  #: 10th-percentile relative object side (box side / image's longer side)
    object_median: float


def estimate_epoch_seconds(n_images: int, imgsz: int, gpu: bool = False) -> float:
    """Seconds one training epoch of ``n_images`` takes at ``imgsz`` (the model of this module)."""
    per_image = SECONDS_PER_IMAGE_320 * (imgsz / 320) ** 2 / (50.0 if gpu else 1.0)
    return n_images * per_image


def _relative_sides(results: Results) -> np.ndarray:
    sides = []
    for d in results.detections:
        if d.image is None or not len(d):
            continue
        wh = (d.xyxy[:, 2:] - d.xyxy[:, :2]).clip(0)
        sides.append(np.sqrt(wh[:, 0] * wh[:, 1]) / max(d.image.width, d.image.height))
    return np.concatenate(sides) if sides else np.zeros(0)


def choose_imgsz(results: Results, n_train: int, budget_minutes: float | None, gpu: bool = False) -> SizeChoice:
    """Choose the training input size for ``results`` (the labels) with this budget.

    Args:
        results: the labeled images (sizes and boxes in pixels).
        n_train: images trained on per epoch.
        budget_minutes: wall-clock budget, or ``None`` (no cap from time).
        gpu: training runs on a GPU (the time model is then 50x faster).

    Returns:
        A :class:`SizeChoice` whose ``reason`` says which rule decided.
    """
    rel = _relative_sides(results)
    p10, med = (float(np.percentile(rel, 10)), float(np.median(rel))) if len(rel) else (0.1, 0.1)
    longest = max((max(d.image.width, d.image.height) for d in results.detections if d.image), default=640)
    want = MIN_OBJECT_PX / max(p10, 1e-6)
    fits = [s for s in SIZES if s >= want] or [SIZES[-1]]
    size = max(MIN_SIZE, fits[0])
    reason = (f"10th-percentile object is {p10:.1%} of the image side (median {med:.1%}): {fits[0]} px shows it at "
              f"{p10 * fits[0]:.0f} px (>= {MIN_OBJECT_PX:.0f} wanted)" + (f", raised to the {MIN_SIZE} px floor"
                                                                             if size > fits[0] else ""))
    native = max([s for s in SIZES if s <= longest] or [SIZES[0]])
    if size > native:
        size = native
        reason += f"; capped at {native} px, the images' own size (longest side {longest} px)"
    if budget_minutes is not None:
        affordable = [s for s in SIZES if s <= size and
                      MIN_EPOCHS * estimate_epoch_seconds(n_train, s, gpu) <= 0.8 * budget_minutes * 60]
        capped = affordable[-1] if affordable else SIZES[0]
        if capped < size:
            reason += (f"; capped at {capped} px so that {MIN_EPOCHS} epochs of {n_train} images fit in "
                       f"{budget_minutes:g} min (about {estimate_epoch_seconds(n_train, capped, gpu):.0f} s an epoch)")
            size = capped
    return SizeChoice(int(size), reason, p10, med)
