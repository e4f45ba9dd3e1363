"""Per-class pre-label thresholds: fitted from the savings sweep, applied at pre-labeling.

**Fit** (:func:`fit_class_thresholds`): from one :class:`~autolabel.matching.Matching`
per threshold of the sweep, the human seconds saved per class at each threshold
(:meth:`EditCounts.per_class`: a paired edit counts under the ground-truth class, a
delete under the predicted class). Each class's raw optimum ``t_c`` is the threshold
that saves it the most; the global optimum ``t_g`` the one that saves the most overall.

**Shrinkage**: a class with few boxes has a noisy optimum (a handful of boxes decide
it), so its threshold is pulled toward the global one in proportion to how little
evidence it has::

    w_c = n_c / (n_c + prior_boxes)        n_c: the class's ground-truth boxes
    threshold_c = w_c * t_c + (1 - w_c) * t_g

``prior_boxes`` (default 20) is the number of boxes at which a class's own optimum and
the global one weigh the same; a class with no boxes keeps ``t_g``. This is the usual
empirical-Bayes weighting of a group mean toward the pooled mean.

**Apply** (:class:`ClassThresholds`): the detector runs at the lowest threshold of
the set and every box is then kept when ``score >= threshold[its class]`` (classes not
listed: ``default``). Saved as YAML::

    default: 0.35
    classes: {person: 0.5, car: 0.3}

**Out of sample** (:func:`per_class_gain`): images are split in two halves at random;
thresholds fitted on one half are measured on the other, and the other way round.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, DEFAULT_THRESHOLDS, IOU_ACCEPT, IOU_MIN, CostProfile
from autolabel.core import Results
from autolabel.matching import Matching, match, match_sweep
from autolabel.detectors.thresholds import ClassThresholds
from autolabel.savings.edits import EditCounts, summarize

__all__ = ["ClassThresholds", "fit_class_thresholds", "per_class_gain", "PRIOR_BOXES"]

PRIOR_BOXES = 20


def fit_class_thresholds(
    matchings: Sequence[Matching], profile: str | CostProfile = DEFAULT_PROFILE, prior_boxes: float = PRIOR_BOXES
) -> ClassThresholds:
    """Per-class thresholds from one :class:`Matching` per threshold of a sweep (see the
    module docs for the rule).

    Args:
        matchings: the sweep, e.g. ``match_sweep(pred, gt, grid)``; at least one.
        profile: cost profile that prices the edits.
        prior_boxes: ground-truth boxes at which a class's optimum weighs as much as
            the global one.

    Returns:
        The thresholds, ``fit`` a DataFrame per class (``gt_boxes``, ``raw``, ``weight``,
        ``threshold``, ``saved_s_at_global``, ``saved_s_at_threshold``).
    """
    import pandas as pd

    if not matchings:
        raise ValueError("fit_class_thresholds needs at least one Matching")
    grid = np.array([m.conf for m in matchings], np.float64)
    tables = [EditCounts.of(m).per_class(profile) for m in matchings]
    saved = np.stack([t["saved_s"].to_numpy() for t in tables])  # (thresholds, classes), no image overhead
    t_global = float(grid[int(np.argmax(saved.sum(1)))])
    n_gt = tables[0]["gt_boxes"].to_numpy()
    raw = grid[np.argmax(saved, 0)]
    w = n_gt / (n_gt + prior_boxes)
    thr = w * raw + (1 - w) * t_global
    names = list(matchings[0].class_names)
    fit = pd.DataFrame({
        "class": names, "gt_boxes": n_gt, "raw": raw, "weight": w, "threshold": thr,
        "saved_s_at_global": saved[int(np.argmax(grid == t_global))], "saved_s_at_raw": saved.max(0),
    })
    classes = {n: float(t) for n, t, k in zip(names, thr, n_gt) if k > 0}
    return ClassThresholds(t_global, classes, fit)


def _filtered(pred: Results, thresholds: ClassThresholds | float) -> Results:
    ct = thresholds if isinstance(thresholds, ClassThresholds) else ClassThresholds(float(thresholds))
    return Results([ct.apply(d) for d in pred], pred.class_names, pred.model_id)


def per_class_gain(
    pred: Results,
    gt: Results,
    profile: str | CostProfile = DEFAULT_PROFILE,
    thresholds: Sequence[float] | None = None,
    prior_boxes: float = PRIOR_BOXES,
    seed: int = 0,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
) -> dict[str, Any]:
    """What per-class thresholds add over one global threshold, out of sample: fit on a
    random half of the images, measure on the other half, and the other way round.

    Args:
        pred: predictions at a low threshold (below every threshold of the grid).
        gt: ground truth.
        profile: cost profile.
        thresholds: the grid (default :data:`autolabel.config.DEFAULT_THRESHOLDS`).
        prior_boxes: shrinkage strength (see the module docs).
        seed: the random split.
        iou_accept: IoU from which a box is accepted as is.
        iou_min: IoU from which a box counts as finding its object.

    Returns:
        ``global_saved_fraction`` and ``per_class_saved_fraction`` (held-out halves
        pooled), ``gain_fraction`` (their difference, in points of human time), the
        ``folds`` (per fold: fitted global threshold, saved seconds both ways), and
        ``thresholds`` fitted on all images.
    """
    grid = list(thresholds if thresholds is not None else DEFAULT_THRESHOLDS)
    names = sorted(d.image.file_name for d in gt)
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(names)[: len(names) // 2].tolist())

    def part(r: Results, inside: bool) -> Results:
        return Results([d for d in r if (d.image.file_name in half) == inside], r.class_names, r.model_id)

    folds, totals = [], {"scratch": 0.0, "global": 0.0, "per_class": 0.0}
    for fit_half in (True, False):
        ct = fit_class_thresholds(match_sweep(part(pred, fit_half), part(gt, fit_half), grid, iou_accept, iou_min),
                                  profile, prior_boxes)
        p_test, g_test = part(pred, not fit_half), part(gt, not fit_half)
        row: dict[str, Any] = {"fit_on": "A" if fit_half else "B", "global_threshold": ct.default}
        for key, t in (("global", ct.default), ("per_class", ct)):
            s = summarize(EditCounts.of(match(_filtered(p_test, t), g_test, None, iou_accept, iou_min)), profile, n_boot=0)
            row[f"{key}_saved_seconds"] = s.saved_seconds
            totals[key] += s.saved_seconds
        totals["scratch"] += s.scratch_seconds
        folds.append(row)
    g, c = totals["global"] / totals["scratch"], totals["per_class"] / totals["scratch"]
    full = fit_class_thresholds(match_sweep(pred, gt, grid, iou_accept, iou_min), profile, prior_boxes)
    return {"global_saved_fraction": g, "per_class_saved_fraction": c, "gain_fraction": c - g,
            "folds": folds, "thresholds": full}
