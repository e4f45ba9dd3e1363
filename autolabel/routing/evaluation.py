"""Measuring a routing against ground truth, and the split experiment (:func:`cross_validate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from autolabel.config import CostProfile, RoutingPolicy
from autolabel.core import Results
from autolabel.results import Record
from autolabel.routing.calibrators import detection_ece
from autolabel.routing.features import IMAGE_FEATURES
from autolabel.routing.fit import fit_tables, targets
from autolabel.routing.policy import image_loss
from autolabel.routing.routes import Routing, assign

__all__ = ["realized_seconds", "evaluate", "cross_validate", "RoutingEvaluation"]


# -- measuring a policy against ground truth -------------------------------------------------------------
def realized_seconds(
    truth: pd.DataFrame, file_names: Sequence[str], profile: CostProfile
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The true targets of ``file_names`` (in that order) and the human seconds to fix
    their pre-labels and to label them from scratch (from their true edits)."""
    from autolabel.matching import EDIT_KINDS
    from autolabel.savings.edits import edit_seconds, scratch_seconds

    t = truth.set_index("file_name").loc[file_names]
    fix_s = edit_seconds(t[list(EDIT_KINDS)].to_numpy(np.float64), profile)
    return t, fix_s, scratch_seconds(t["n_gt"].to_numpy(np.float64), profile)


def _realized(
    manifest: pd.DataFrame, boxes: pd.DataFrame, truth: pd.DataFrame, profile: CostProfile,
    ece_bins: int, naive_min_score: float, risk: str,
) -> dict[str, Any]:
    from autolabel.matching import EDIT_KINDS

    t, fix_s, scratch_s = realized_seconds(truth, manifest["file_name"], profile)
    q = manifest["queue"].to_numpy()
    need = t["needs_edit"].to_numpy(bool)
    loss = image_loss(t, risk)
    auto = q == "auto_accept"
    pre = boxes[boxes["prelabel"] & boxes["correct"].notna()]
    low = boxes.loc[boxes["prelabel"]].groupby("file_name")["score"].min()
    naive = (low.reindex(manifest["file_name"]).fillna(1.0) >= naive_min_score).to_numpy()  # no boxes: vacuously all
    return {
        "images": len(manifest),
        "n_gt": int(t["n_gt"].sum()),
        "certified_boxes": int(manifest["n_certified"].sum()) if "n_certified" in manifest else 0,
        "coverage": float(auto.mean()),
        "auto_accepted": int(auto.sum()),
        "risk": float(loss[auto].mean()) if auto.any() else float("nan"),
        "share_needing_edit": float(need[auto].mean()) if auto.any() else float("nan"),
        "edits_left_in_auto_accepted": int(t.loc[auto, [k for k in EDIT_KINDS if k != "accept"]].to_numpy().sum()),
        "naive_coverage": float(naive.mean()),
        "naive_risk": float(loss[naive].mean()) if naive.any() else float("nan"),
        "auc_no_edit": _auc(manifest["p_no_edit"].to_numpy(), ~need),
        "ece_before": detection_ece(pre["score"], pre["correct"].to_numpy(bool), ece_bins),
        "ece_after": detection_ece(pre["p_correct"], pre["correct"].to_numpy(bool), ece_bins),
        "review_images": int((q == "review").sum()),
        "scratch_images": int((q == "scratch").sum()),
        "review_s": float(fix_s[q == "review"].sum()),
        "scratch_s": float(scratch_s[q == "scratch"].sum()),
        "routed_s": float(fix_s[q == "review"].sum() + scratch_s[q == "scratch"].sum()),
        "review_everything_s": float(fix_s.sum()),
        "scratch_everything_s": float(scratch_s.sum()),
        "expected_routed_s": float(
            np.select([q == "review", q == "scratch"], [manifest["expected_edit_s"], manifest["expected_scratch_s"]], 0).sum()
        ),
    }


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((rankdata(score)[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass(frozen=True, repr=False)
class RoutingEvaluation(Record):
    """What a routing really did against ground truth (:func:`evaluate`): images and
    objects, certified boxes; ``coverage`` (share auto-accepted), ``auto_accepted``,
    realized ``risk`` and ``share_needing_edit`` of them, the edits left in them; the naive
    rule's ``naive_coverage`` and ``naive_risk``; ``auc_no_edit``; ``ece_before`` and
    ``ece_after`` calibration; human seconds: ``review_s``, ``scratch_s``, ``routed_s``
    (their sum) against ``review_everything_s`` and ``scratch_everything_s``, and
    ``expected_routed_s`` (what the policy predicted)."""

    images: int
    n_gt: int
    certified_boxes: int
    coverage: float
    auto_accepted: int
    risk: float
    share_needing_edit: float
    edits_left_in_auto_accepted: int
    naive_coverage: float
    naive_risk: float
    auc_no_edit: float
    ece_before: float
    ece_after: float
    review_images: int
    scratch_images: int
    review_s: float
    scratch_s: float
    routed_s: float
    review_everything_s: float
    scratch_everything_s: float
    expected_routed_s: float
    _REPR = ("images", "coverage", "risk", "naive_coverage", "naive_risk", "routed_s", "review_everything_s")


def evaluate(routing: Routing, ground_truth: Results, naive_min_score: float = 0.5) -> RoutingEvaluation:
    """What a routing really did, against ground truth: ``coverage``, realized ``risk``
    (the policy's risk: mean :func:`image_loss` of the auto-accepted images; NaN when none
    is auto-accepted), ``share_needing_edit`` of them, the edits left in them, the naive
    rule (auto-accept when every pre-label scores >= ``naive_min_score``; an image without
    pre-labels qualifies) beside it, ``auc_no_edit`` (how well P(no edit) ranks the images needing no edit), detection ECE of the raw and
    calibrated pre-label scores, and human seconds routed vs reviewing everything vs
    labeling from scratch (realized: :func:`~autolabel.savings.edit_seconds` of the true
    edits, :func:`~autolabel.savings.scratch_seconds` of the true objects)."""
    cfg = routing.policy.config
    tb, truth = targets(routing.predictions, ground_truth, cfg)
    boxes = routing.boxes.merge(tb[["file_name", "box", "correct"]], on=["file_name", "box"], how="left")
    return RoutingEvaluation(**_realized(
        routing.manifest, boxes, truth, CostProfile.load(cfg.cost_profile), cfg.ece_bins, naive_min_score, cfg.risk
    ))


def cross_validate(
    predictions: Results,
    ground_truth: Results,
    config: RoutingPolicy | Mapping[str, Any] | str = "default",
    n_splits: int = 20,
    calibration_fraction: float = 0.5,
    seed: int = 0,
    naive_min_score: float = 0.5,
    agreement: Sequence[np.ndarray] | None = None,
) -> pd.DataFrame:
    """Fit on a random calibration part and measure on the rest, ``n_splits`` times.

    Args:
        predictions, ground_truth: the labeled images (predictions at ``evidence_conf``).
        config: the routing policy (object, dict, YAML path or preset name).
        n_splits: splits; split ``i`` uses ``numpy.random.default_rng(seed + i)``.
        calibration_fraction: share of the images that calibrate (the rest is the test).
        seed: first split's seed. naive_min_score: the naive rule's score bar.
        agreement: per image, per box signal (as for :func:`fit_policy`).

    Returns:
        DataFrame, one row per split: the threshold and the :func:`evaluate` measures on
        the test part (coverage, realized risk, naive rule, ECE, AUC, seconds).

    Raises:
        ValueError: a split that leaves one side empty, or as :func:`fit_policy`.
    """
    cfg = RoutingPolicy.load(config)
    boxes, truth = targets(predictions, ground_truth, cfg, agreement)
    profile = CostProfile.load(cfg.cost_profile)
    n = len(truth)
    n_cal = int(round(calibration_fraction * n))
    if not 0 < n_cal < n:
        raise ValueError(f"calibration_fraction={calibration_fraction} of {n} images leaves one side empty")
    rows = []
    for i in range(n_splits):
        perm = np.random.default_rng(seed + i).permutation(n)
        cal, test = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
        pol = fit_tables(
            boxes[boxes["image"].isin(cal)], truth[truth["image"].isin(cal)], cfg,
            predictions.model_id, predictions.class_names, agreement is not None,
        )
        tb, ti = pol.score_tables(boxes[boxes["image"].isin(test)], truth.loc[truth["image"].isin(test), ["image", "file_name", *IMAGE_FEATURES]])
        row = {"split": i, "seed": seed + i, "calibration_images": len(cal), "threshold": pol.threshold}
        row.update(_realized(assign(pol, ti), tb, truth, profile, cfg.ece_bins, naive_min_score, cfg.risk))
        rows.append(row)
    return pd.DataFrame(rows)
