"""Fitting a :class:`~autolabel.routing.policy.FittedPolicy` on labeled calibration images:
box calibrators, the miss model, the image scorer (product model or learned), the
auto-accept threshold with its bound, and the certified box threshold."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from autolabel.config import RoutingPolicy
from autolabel.core import Results
from autolabel.routing.bounds import (
    START_RISK, LTTResult, clopper_pearson_upper, grid_threshold, hoeffding_bentkus_upper, ltt_threshold,
)
from autolabel.routing.calibrators import ClassCalibrator, PlattCalibrator, detection_ece
from autolabel.routing.features import image_features, match_targets
from autolabel.routing.policy import LEARNED_INPUTS, SCORE_LABEL, FittedPolicy, _bound_name, _feature, image_loss, sequence_start
from autolabel.routing.scorers import constant_ensemble, cross_fitted, fit_tree_ensemble

__all__ = ["targets", "fit_policy", "fit_tables", "candidate_thresholds", "certify_boxes"]

_TARGETS = ("located", "correct", "exact")
_BOX_LEVELS = (0.7, 0.8, 0.9, 0.95)  # candidate p_correct thresholds of box certification


def targets(
    predictions: Results, ground_truth: Results, cfg: RoutingPolicy, agreement: Sequence[np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Calibration tables of a policy: :func:`match_targets` and, per image (ground-truth
    order), the :func:`image_features` of the predictions."""
    boxes, images = match_targets(predictions, ground_truth, cfg.prelabel_conf, cfg.iou_accept, cfg.iou_min,
                                  agreement, cfg.evidence_conf, cfg.min_gt_area)
    by_name = {d.image.file_name: i for i, d in enumerate(predictions)}
    order = [by_name[f] for f in images["file_name"]]
    agr = None if agreement is None else [agreement[i] for i in order]
    feats = image_features(Results([predictions[i] for i in order], predictions.class_names), cfg.prelabel_conf,
                           cfg.evidence_conf, agr)
    return boxes, pd.concat([images, feats], axis=1)


def candidate_thresholds(scores: np.ndarray, coverage: Sequence[float]) -> np.ndarray:
    """Thresholds accepting about each ``coverage`` share of ``scores`` (strict to loose,
    distinct): the ``ceil(q n)``-th largest score."""
    s = np.sort(np.asarray(scores, np.float64))[::-1]
    if not len(s):
        return np.zeros(0)
    idx = np.clip(np.ceil(np.asarray(sorted(coverage)) * len(s)).astype(int) - 1, 0, len(s) - 1)
    return np.unique(s[idx])[::-1]


def _fixed_sequence_order(
    cands: np.ndarray, fit_scores: np.ndarray, fit_loss: np.ndarray, n_bound: int, cfg: RoutingPolicy
) -> np.ndarray:
    """Fixed-sequence order chosen on the fit images only: start at the candidate whose
    bound, predicted from its fit-image risk and expected bound-image count, is lowest;
    then every looser candidate."""
    pred = []
    for t in cands:
        acc = fit_scores >= t
        n = max(1.0, acc.mean() * n_bound)
        r = float(fit_loss[acc].mean()) if acc.any() else 1.0
        pred.append(clopper_pearson_upper(r * n, n, cfg.delta) if cfg.risk == "image_any_edit"
                    else hoeffding_bentkus_upper(r * n, n, cfg.delta))
    return cands[int(np.argmin(pred)):]


def certify_boxes(boxes: pd.DataFrame, alpha: float, delta: float, levels: Sequence[float]) -> tuple[float | None, pd.DataFrame]:
    """Certified ``p_correct`` threshold for box-level certification, images as the units.

    For a threshold ``tau``, an image with at least one pre-label at ``p_correct >= tau`` has
    loss ``W_i / C_i``: the share of its ``C_i`` such boxes that are wrong (not the right class
    at IoU >= iou_min). Whether an image has one depends on its scores only, so these images
    are i.i.d. draws of that subpopulation, and a Waudby-Smith–Ramdas bound <= alpha on their
    mean loss certifies a per-image certified-box precision >= 1 - alpha at ``1 - delta``.
    ``levels`` (fixed before the bound images are seen) are tested by Bonferroni; the loosest
    passing one is kept.

    Args:
        boxes: scored pre-labels of images the calibrators were not fitted on: ``image``,
            ``p_correct`` and ``correct`` (NaN on crowd regions: not counted).
        alpha, delta: error-share target and failure probability. levels: candidate thresholds.

    Returns:
        ``(threshold or None, table)``: one row per level with certified boxes, images,
        pooled precision, mean per-image error share and its bound.
    """
    from autolabel.routing.bounds import wsr_upper

    b = boxes[boxes["correct"].notna()]
    rows, best = [], None
    for t in sorted(levels, reverse=True):
        cert = b[b["p_correct"].to_numpy() >= t]
        per = cert.groupby("image")["correct"].agg(["size", "sum"])
        loss = ((per["size"] - per["sum"]) / per["size"]).to_numpy(np.float64)
        ucb = wsr_upper(loss, delta / len(levels)) if len(loss) else 1.0
        ok = bool(len(loss)) and ucb <= alpha
        rows.append({"p_correct_threshold": float(t), "certified_boxes": int(per["size"].sum()), "images": len(per),
                     "precision": float(per["sum"].sum() / per["size"].sum()) if len(per) else float("nan"),
                     "mean_error_share": float(loss.mean()) if len(loss) else float("nan"), "ucb": ucb, "passed": ok})
        if ok:
            best = float(t)
    return best, pd.DataFrame(rows)


def fit_tables(
    boxes: pd.DataFrame, images: pd.DataFrame, cfg: RoutingPolicy, model_id: str,
    class_names: Sequence[str], use_agreement: bool,
) -> FittedPolicy:
    """Fit on the tables of :func:`targets` (a subset of images is fine)."""
    if not len(images):
        raise ValueError("the calibration set has no labeled images")
    fit_ids, bound_ids = _split(images["image"].to_numpy(), cfg)
    fb, fi = boxes[boxes["image"].isin(fit_ids)], images[images["image"].isin(fit_ids)]
    policy = _fit_product(fb, fi, cfg, model_id, class_names, use_agreement)
    fit_boxes, s = policy.score_tables(fb, fi)
    col = policy.accept_score
    fit_scores = s[col].to_numpy()
    if cfg.scorer == "learned":
        policy, fit_scores = _fit_learned(policy, s, fi, cfg)
    bb, bi = boxes[boxes["image"].isin(bound_ids)], images[images["image"].isin(bound_ids)]
    bound_boxes, sb = policy.score_tables(bb, bi)
    ltt = _threshold(sb[col], image_loss(bi, cfg.risk), fit_scores, image_loss(fi, cfg.risk), len(bound_ids), cfg,
                     SCORE_LABEL[col])
    box_thr, box_table_ = None, pd.DataFrame()
    if cfg.holdout > 0:  # box certification needs calibrators not fitted on the bound images
        bp = bound_boxes[bound_boxes["prelabel"]]
        if len(bp):
            box_thr, box_table_ = certify_boxes(bp, cfg.box_alpha or cfg.alpha, cfg.delta, _BOX_LEVELS)
    pre, sub = _prelabels(fb, cfg), fb[~fb["prelabel"]]
    summary = {
        "images": int(len(images)), "fit_images": int(len(fit_ids)), "bound_images": int(len(bound_ids)),
        "images_needing_edit": int(images["needs_edit"].sum()), "prelabels": int(len(pre)),
        "below_prelabel_conf": int(len(sub)), "scorer": cfg.scorer, "test": cfg.test, "bound": _bound_name(cfg),
        "miss_model": "constant + pre-label count + sum of P(found) over boxes below prelabel_conf" if len(sub) else
        f"constant + pre-label count only: no predictions between evidence_conf {cfg.evidence_conf} and "
        f"prelabel_conf {cfg.prelabel_conf} (predict at a lower conf for a stronger miss model)",
        "risk": cfg.risk, "min_certifiable": sequence_start(cfg),
        "classes_with_own_calibrator": sorted(policy.correct.per_class),
        "classes_on_global_fallback": sorted(set(class_names) - set(policy.correct.per_class)),
        "ece_before_in_sample": detection_ece(pre["score"], pre["correct"].to_numpy(bool), cfg.ece_bins),
        "ece_after_in_sample": detection_ece(fit_boxes.loc[pre.index, "p_correct"], pre["correct"].to_numpy(bool),
                                             cfg.ece_bins),
        "box_certification": box_table_.to_dict(orient="list"),
    }
    return replace(policy, threshold=ltt.threshold, reason=ltt.reason, curve=ltt.curve, summary=summary,
                   box_threshold=box_thr)


def _split(ids: np.ndarray, cfg: RoutingPolicy) -> tuple[np.ndarray, np.ndarray]:
    """The fit images and the bound images (the same with ``holdout == 0``)."""
    if cfg.holdout <= 0:
        return ids, ids
    n_hold = int(round(cfg.holdout * len(ids)))
    if n_hold == 0 or n_hold == len(ids):
        raise ValueError(f"holdout={cfg.holdout} of {len(ids)} calibration images leaves one side empty")
    hold = np.random.default_rng(cfg.seed).permutation(ids)[:n_hold]
    return np.setdiff1d(ids, hold), np.sort(hold)


def _prelabels(fb: pd.DataFrame, cfg: RoutingPolicy) -> pd.DataFrame:
    pre = fb[fb["prelabel"] & fb["located"].notna()]
    if not len(pre):
        raise ValueError(
            f"the calibration set has no pre-labels (score >= {cfg.prelabel_conf}) outside crowd regions: "
            "nothing to calibrate the boxes on"
        )
    return pre


def _fit_product(fb: pd.DataFrame, fi: pd.DataFrame, cfg: RoutingPolicy, model_id: str,
                 class_names: Sequence[str], use_agreement: bool) -> FittedPolicy:
    """The product model on the fit images: box calibrators, then the expected misses,
    then the image-level Platt scaling."""
    from scipy.optimize import nnls

    pre = _prelabels(fb, cfg)
    x = _feature(pre, use_agreement)
    kw: dict[str, Any] = {"method": cfg.method, "min_class_boxes": cfg.min_class_boxes}
    located, correct, exact = (ClassCalibrator.fit(x, pre[t].to_numpy(bool), pre["label"], what="pre-labels", **kw)
                               for t in _TARGETS)
    sub = fb[~fb["prelabel"]]
    found = ClassCalibrator.fit(_feature(sub, use_agreement), sub["found"], sub["label"], **kw) if len(sub) else None
    policy = FittedPolicy(cfg, model_id, tuple(class_names), use_agreement, located, correct, exact, found)
    _, s = policy.score_tables(fb, fi)
    design = np.stack([np.ones(len(s)), s["n_prelabels"], s["sum_p_found"]], 1).astype(np.float64)
    coef, _ = nnls(design, fi["draw"].to_numpy(np.float64))
    policy = replace(policy, miss=(float(coef[0]), float(coef[1]), float(coef[2])))
    _, s = policy.score_tables(fb, fi)
    return replace(policy, image=PlattCalibrator.fit(s["raw_score"], ~fi["needs_edit"].to_numpy(bool)))


def _fit_learned(policy: FittedPolicy, s: pd.DataFrame, fi: pd.DataFrame,
                 cfg: RoutingPolicy) -> tuple[FittedPolicy, np.ndarray]:
    """The learned scorer's ensembles, and the fit images' accept scores out of fold."""
    from autolabel.matching import EDIT_KINDS
    from autolabel.savings.edits import edit_seconds

    xin = s[list(LEARNED_INPUTS)].to_numpy(np.float64)
    ys: dict[str, tuple[Literal["classifier", "regressor"], np.ndarray]] = {
        "no_edit": ("classifier", (~fi["needs_edit"]).to_numpy(np.float64)),
        "box_error": ("regressor", image_loss(fi, "box_error_rate")),
        "edit_s": ("regressor", edit_seconds(fi[list(EDIT_KINDS)].to_numpy(np.float64), policy.cost_profile)),
    }
    learned = {  # one outcome on every fit image (e.g. all need an edit): a constant, nothing is learned
        k: constant_ensemble(kind, LEARNED_INPUTS, float(y[0])) if kind == "classifier" and len(np.unique(y)) < 2
        else fit_tree_ensemble(xin, y, kind, LEARNED_INPUTS, cfg.seed) for k, (kind, y) in ys.items()
    }
    kind, y = ys["no_edit" if cfg.risk == "image_any_edit" else "box_error"]
    oof = cross_fitted(xin, y, kind, LEARNED_INPUTS, seed=cfg.seed)  # fit-image scores out of fold
    return replace(policy, learned=learned), oof if cfg.risk == "image_any_edit" else 1 - oof


def _threshold(scores: pd.Series, losses: np.ndarray, fit_scores: np.ndarray, fit_loss: np.ndarray, n_bound: int,
               cfg: RoutingPolicy, score_name: str) -> LTTResult:
    """The auto-accept threshold tested on the bound images (``scores``, ``losses``)."""
    bound = _bound_name(cfg)
    if cfg.test == "ltt_sequence":
        return ltt_threshold(scores, losses, cfg.alpha, cfg.delta,
                             clopper_pearson_upper if bound == "clopper_pearson" else hoeffding_bentkus_upper,
                             score_name, START_RISK[cfg.risk])
    cands = candidate_thresholds(fit_scores, cfg.coverage_grid)
    if cfg.test == "fixed_sequence":
        cands = _fixed_sequence_order(cands, fit_scores, fit_loss, n_bound, cfg)
    return grid_threshold(scores, losses, cands, cfg.alpha, cfg.delta, bound, cfg.test, score_name)


def fit_policy(
    predictions: Results,
    ground_truth: Results,
    config: RoutingPolicy | Mapping[str, Any] | str = "default",
    agreement: Sequence[np.ndarray] | None = None,
) -> FittedPolicy:
    """Fit a routing policy on a labeled calibration sample.

    Args:
        predictions: the model's predictions at ``evidence_conf`` (e.g. 0.05).
        ground_truth: the same images' labels.
        config: a :class:`~autolabel.config.RoutingPolicy`, a dict, a YAML path or a name
            under ``configs/routing/``.
        agreement: per image, per box signal in [0, 1]: the box feature becomes score x
            agreement (routing then needs it too).

    Returns:
        The :class:`~autolabel.routing.policy.FittedPolicy`; its ``reason`` says what was
        certified, or why nothing was.

    Raises:
        ValueError: no images, images or classes that do not line up, no pre-labels.
    """
    cfg = RoutingPolicy.load(config)
    if not len(ground_truth):
        raise ValueError("the ground truth has no images: a calibration set needs labeled images")
    boxes, images = targets(predictions, ground_truth, cfg, agreement)
    return fit_tables(boxes, images, cfg, predictions.model_id, predictions.class_names, agreement is not None)
