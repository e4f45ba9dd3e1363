"""Keypoint savings: the clicks a pose model's pre-labels save, per keypoint and per person.

Predicted persons are paired with ground-truth persons by the one box
:class:`~autolabel.matching.Matching` (at a box threshold ``conf``); the person's box is
priced by the box edits of that matching under the profile's ``box_profile``. Each
keypoint of a paired person then gets one human action, at a visibility threshold ``t``
(a predicted keypoint is *shown* when its visibility score >= ``t``):

=========  ================================================================================
action     when
=========  ================================================================================
accept     shown, labeled in the ground truth, within ``accept_tolerance x k_i x s`` of it
           (``k_i = 2 sigma_i``, COCO's per-keypoint constant, ``s^2`` the person's area)
move       shown and labeled, farther than that
add        labeled (visible or occluded, COCO ``v > 0``) but not shown; also every labeled
           keypoint of a person no prediction found
delete     shown on a point the ground truth leaves unlabeled (invisible or absent)
=========  ================================================================================

Labeling from scratch is every person's box drawn and every labeled keypoint placed. A
deleted person (unpaired prediction) costs its box delete only. Ground-truth persons without
keypoints (``num_keypoints`` 0: COCO's keypoint evaluation ignores them) and crowd regions
count for their boxes only. OKS needs the person's area: COCO's ``area`` when the ground truth
has it (``Detections.data["area"]``), else the box area x 0.53 (Ultralytics' convention).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from autolabel.config import DEFAULT_THRESHOLDS, IOU_ACCEPT, IOU_MIN, CostProfile, KeypointCostProfile
from autolabel.core import Results
from autolabel.matching import DELETE, EDIT_KINDS, Matching, match_sweep
from autolabel.savings.edits import EditCounts, edit_seconds, scratch_seconds

__all__ = ["KEYPOINT_ACTIONS", "KeypointSavings", "keypoint_actions", "keypoint_savings"]

KEYPOINT_ACTIONS = ("accept", "move", "add", "delete")
_BOX_AREA_FACTOR = 0.53  # Ultralytics' person area estimate from a box (as the shared data's caveat says)


@dataclass(eq=False)
class _Pairs:
    """The keypoints of one Matching: paired persons (P, K, 3) and the missed persons' labeled points."""

    pred: np.ndarray  # (P, K, 3) predicted keypoints of paired persons
    gt: np.ndarray  # (P, K, 3) their ground truth
    close: np.ndarray  # (P, K) bool: within the accept tolerance
    image: np.ndarray  # (P,) image position
    missed: np.ndarray  # (images, K) labeled keypoints of persons no prediction found
    labeled: np.ndarray  # (images, K) labeled keypoints of every counted person (scratch work)


def _gt_arrays(gt: Results, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ground-truth person's keypoints (G, K, 3) and area (G,), in the Matching's row order."""
    kps, areas = [], []
    for d in gt:
        kps.append(d.keypoints if d.keypoints is not None else np.zeros((len(d), k, 3), np.float32))
        areas.append(d.data["area"] if "area" in d.data else d.area * _BOX_AREA_FACTOR)
    return (np.concatenate(kps) if kps else np.zeros((0, k, 3), np.float32),
            np.concatenate(areas) if areas else np.zeros(0))


def _pairs(m: Matching, tolerance: float) -> _Pairs:
    from autolabel.keypoints import keypoint_similarity

    spec = m.gt.keypoint_spec or m.pred.keypoint_spec
    if spec is None:
        raise ValueError("keypoint savings need keypoints in the ground truth (a COCO person_keypoints file)")
    k = len(spec)
    gkp, garea = _gt_arrays(m.gt, k)
    counted = ~m.gt_crowd & ((gkp[:, :, 2] > 0).sum(1) > 0)  # persons whose keypoints are labeled
    pk = [d.keypoints if d.keypoints is not None else np.zeros((len(d), k, 3), np.float32) for d in m.pred]
    if any(p.shape[1] != k for p in pk):
        raise ValueError(f"predicted keypoints have {pk[0].shape[1]} points, the ground truth {k}")
    start = np.cumsum([len(d) for d in m.pred]) - [len(d) for d in m.pred]
    pall = np.concatenate(pk) if pk else np.zeros((0, k, 3), np.float32)
    paired = (m.pred_gt >= 0) & (m.pred_edit < DELETE)
    paired[paired] = counted[m.pred_gt[paired]]
    g = m.pred_gt[paired]
    pred = pall[start[m.pred_image[paired]] + m.pred_box[paired]] if len(pall) else np.zeros((0, k, 3), np.float32)
    sim = keypoint_similarity(pred, gkp[g], garea[g], spec.sigmas)
    n_img = len(m.gt)
    lab = (gkp[:, :, 2] > 0) & counted[:, None]

    def per_image(rows: np.ndarray) -> np.ndarray:
        out = np.zeros((n_img, k))
        np.add.at(out, m.gt_image[rows], lab[rows])
        return out

    return _Pairs(pred, gkp[g], sim >= np.exp(-tolerance**2 / 2), m.pred_image[paired],
                  per_image(np.flatnonzero(m.gt_drawn)), per_image(np.arange(len(gkp))))


def keypoint_actions(pairs: _Pairs, t: float, n_images: int) -> np.ndarray:
    """(images, K, 4) counts of each of :data:`KEYPOINT_ACTIONS` at visibility threshold ``t``."""
    shown = pairs.pred[:, :, 2] >= t
    labeled = pairs.gt[:, :, 2] > 0
    acts = np.stack([shown & labeled & pairs.close, shown & labeled & ~pairs.close, ~shown & labeled,
                     shown & ~labeled], axis=2).astype(np.float64)
    out = np.zeros((n_images, *acts.shape[1:]))
    np.add.at(out, pairs.image, acts)
    out[:, :, 2] += pairs.missed
    return out


def _seconds(acts: np.ndarray, p: KeypointCostProfile) -> np.ndarray:
    return acts.sum(1) @ np.array([p.verify_s, p.move_s, p.add_s, p.delete_s])


@dataclass(eq=False)
class KeypointSavings:
    """Keypoint savings at the best (box threshold, visibility threshold): ``summary``
    (JSON-ready), ``per_keypoint`` (which joints people fix most), ``sweep`` and ``per_image``
    (keypoint actions and seconds of every image, in the ground truth's order) DataFrames."""

    summary: dict[str, Any]
    per_keypoint: Any
    sweep: Any
    per_image: Any = field(default=None, repr=False)
    matching: Matching | None = field(default=None, repr=False)

    @property
    def saved_fraction(self) -> float:
        return float(self.summary["saved_fraction"])

    def to_dict(self) -> dict[str, Any]:
        tables = {k: json.loads(getattr(self, k).to_json(orient="records")) for k in ("per_keypoint", "sweep")}
        return {**self.summary, **tables}

    def __repr__(self) -> str:
        s = self.summary
        lo, hi = s["saved_fraction_ci95"]
        return (f"KeypointSavings(saved {s['saved_fraction']:.1%} (95% CI {lo:.1%}-{hi:.1%}) at box threshold "
                f"{s['conf']}, visibility threshold {s['visibility_threshold']})")


def _bootstrap(scratch: np.ndarray, assisted: np.ndarray, n_boot: int, seed: int = 0) -> list[float]:
    """95% percentile interval of the saved fraction, images resampled with replacement."""
    n = len(scratch)
    if not n_boot or not n:
        f = 1 - assisted.sum() / scratch.sum() if scratch.sum() > 0 else 0.0
        return [float(f), float(f)]
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    sb, ab = scratch[idx].sum(1), assisted[idx].sum(1)
    return np.percentile(np.where(sb > 0, 1 - ab / np.where(sb > 0, sb, 1), 0), [2.5, 97.5]).tolist()


def _totals(acts: np.ndarray, scratch: np.ndarray, assisted: np.ndarray, n_boot: int) -> dict[str, Any]:
    """Action counts, seconds, the saved fraction with its 95% interval, hours saved per 1,000 images."""
    s, a = float(scratch.sum()), float(assisted.sum())
    return {"actions": dict(zip(KEYPOINT_ACTIONS, acts.sum((0, 1)).astype(int).tolist())),
            "scratch_seconds": s, "assisted_seconds": a, "saved_fraction": 1 - a / s if s > 0 else 0.0,
            "saved_fraction_ci95": _bootstrap(scratch, assisted, n_boot),
            "saved_hours_per_1000_images": (s - a) / max(len(scratch), 1) * 1000 / 3600}


def _per_keypoint(acts: np.ndarray, names: Sequence[str]) -> Any:
    import pandas as pd

    a = acts.sum(0)
    df = pd.DataFrame(a.astype(np.int64), columns=list(KEYPOINT_ACTIONS))
    df.insert(0, "keypoint", list(names))
    labeled = a[:, :3].sum(1)
    df["labeled"] = labeled.astype(np.int64)
    df["accept_rate"] = np.where(labeled > 0, a[:, 0] / np.maximum(labeled, 1), np.nan)
    df["fix_rate"] = (a[:, 1:].sum(1)) / np.maximum(a.sum(1), 1)  # share of this joint's actions that are fixes
    return df.sort_values("fix_rate", ascending=False, ignore_index=True)


def keypoint_savings(
    pred: Results,
    gt: Results,
    profile: str | KeypointCostProfile = "keypoints",
    thresholds: Sequence[float] | None = None,
    visibility_thresholds: Sequence[float] | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    n_boot: int = 1000,
) -> KeypointSavings:
    """Price a pose model's pre-labels against keypoint ground truth at the best thresholds.

    Args:
        pred: predictions with ``keypoints`` (a pose model's file, any scores).
        gt: ground truth with ``keypoints`` (COCO ``v`` flags) and, ideally, ``data["area"]``.
        profile: :class:`~autolabel.config.KeypointCostProfile` name, YAML or object.
        thresholds: box thresholds swept (default :data:`~autolabel.config.DEFAULT_THRESHOLDS`).
        visibility_thresholds: per-keypoint visibility thresholds swept (default the same grid).
        iou_accept: box IoU from which a person box needs no edit.
        iou_min: box IoU from which a person is found (and its keypoints paired).
        n_boot: bootstrap resamples (over images) of the 95% interval.

    Returns:
        The :class:`KeypointSavings` at the (box, visibility) thresholds that save the most seconds.

    Raises:
        ValueError: no keypoints in the ground truth, keypoint counts that differ, or
            predictions and ground truth that do not line up.
    """
    p = KeypointCostProfile.load(profile)
    box = CostProfile.load(p.box_profile)
    grid = list(thresholds if thresholds is not None else DEFAULT_THRESHOLDS)
    vgrid = list(visibility_thresholds if visibility_thresholds is not None else DEFAULT_THRESHOLDS)
    rows, best = [], None
    for m in match_sweep(pred, gt, grid, iou_accept, iou_min):
        pairs = _pairs(m, p.accept_tolerance)
        counts = EditCounts.of(m).per_image_counts.astype(np.float64)
        n_gt = counts[:, [i for i, k in enumerate(EDIT_KINDS) if k != "delete"]].sum(1)  # boxes in the final labels
        scratch = scratch_seconds(n_gt, box) + pairs.labeled.sum(1) * p.keypoint_s
        box_s = edit_seconds(counts, box)
        for t in vgrid:
            acts = keypoint_actions(pairs, t, len(m.gt))
            assisted = box_s + _seconds(acts, p)
            saved = float(scratch.sum() - assisted.sum())
            rows.append({"conf": m.conf, "visibility_threshold": t, "saved_fraction": saved / max(scratch.sum(), 1e-9),
                         **dict(zip(KEYPOINT_ACTIONS, acts.sum((0, 1)).astype(int).tolist()))})
            if best is None or saved > best[0]:
                best = (saved, m, t, acts, scratch, assisted, pairs)
    if best is None:
        raise ValueError("no thresholds to sweep")
    import pandas as pd

    _, m, t, acts, scratch, assisted, pairs = best
    names = (m.gt.keypoint_spec or m.pred.keypoint_spec).names  # type: ignore[union-attr]
    summary = {"images": len(m.gt), "conf": m.conf, "visibility_threshold": t, "paired_persons": len(pairs.gt),
               "labeled_keypoints": int(pairs.labeled.sum()), **_totals(acts, scratch, assisted, n_boot),
               "profile": profile if isinstance(profile, str) else (p.description or "custom"),
               "box_profile": p.box_profile}
    per_image = pd.DataFrame(acts.sum(1).astype(np.int64), columns=list(KEYPOINT_ACTIONS))
    per_image.insert(0, "file_name", list(m.images))
    per_image["scratch_s"], per_image["assisted_s"] = scratch, assisted
    return KeypointSavings(summary, _per_keypoint(acts, names), pd.DataFrame(rows), per_image, m)
