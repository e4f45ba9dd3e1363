"""Calibration planner: how much coverage the labeled images certify now, and how much more
labeling would buy (``autolabel calibrate --plan``).

Method (subsampling curve): for each share ``f`` of the labeled images, fit the policy
``n_repeats`` times on a random ``f``-subsample (a different holdout split each time) and
record the certified coverage (share of the policy's bound images at or above the
threshold; 0 when nothing is certified). The mean coverage is fitted by least squares as
``a + b log(m)`` in the number of labeled images ``m``, and extrapolated to 2x and 4x the
images; the interval comes from refitting on bootstrap resamples of the repeats (10th to
90th percentile). An extrapolation, not a guarantee: the planner says how much to label,
the bound of the policy fitted afterwards says what is certified.

Where nothing is certified yet (a flat curve cannot be extrapolated), the planner also reads the
risk curve: every image is scored out of sample (two halves, each scored by the policy fitted
on the other); for each coverage level ``q >= target_coverage`` of ``coverage_grid`` whose
empirical risk ``r_q`` is below alpha, the Clopper–Pearson bound at ``r_q`` certifies alpha
from some number of accepted bound images on; divided by ``q`` and by the holdout share, that
is the labeled images needed (``images_needed_by_risk_curve``, the fewest over the levels,
with a 10–90% interval from 200 bootstrap resamples of the images). It assumes the risk
curve stays as measured with more images (a learned scorer usually improves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from autolabel.config import RoutingPolicy
from autolabel.core import Results

__all__ = ["CalibrationPlan", "plan"]


@dataclass(frozen=True)
class CalibrationPlan:
    """``curve``: one row per (images, repeat) with the certified coverage; ``summary``:
    coverage now, projected at 2x and 4x (mean and 10–90% interval) and the labeled images
    a target coverage needs (None where the curve does not rise)."""

    curve: pd.DataFrame
    summary: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"CalibrationPlan({dict(self.summary)})"


def _fit_log(m: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    b, a = np.polyfit(np.log(m), cov, 1)
    return float(a), float(b)


def _coverage_curve(boxes: pd.DataFrame, images: pd.DataFrame, cfg: RoutingPolicy, sizes: Sequence[int],
                    n_repeats: int, rng: np.random.Generator, predictions: Results) -> pd.DataFrame:
    """Certified coverage of policies fitted on ``n_repeats`` random subsamples of each size."""
    from autolabel.routing.fit import fit_tables

    n = len(images)
    rows = []
    for m in sizes:
        for r in range(n_repeats if m < n or cfg.holdout > 0 else 1):
            ids = np.sort(rng.permutation(n)[:m])
            c = cfg.model_copy(update={"seed": cfg.seed + r})
            pol = fit_tables(boxes[boxes["image"].isin(ids)], images[images["image"].isin(ids)], c,
                             predictions.model_id, predictions.class_names, False)
            cov = 0.0
            if pol.threshold is not None:
                hit = pol.curve[pol.curve["threshold"] == pol.threshold]
                cov = float(hit["coverage"].iloc[0]) if len(hit) else 0.0
            rows.append({"images": m, "repeat": r, "coverage": cov})
    return pd.DataFrame(rows)


def plan(
    predictions: Results,
    ground_truth: Results,
    config: RoutingPolicy | Mapping[str, Any] | str = "default",
    target_coverage: float | None = None,
    fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    n_repeats: int = 8,
    seed: int = 0,
) -> CalibrationPlan:
    """Certified coverage against labeled images, projected to 2x and 4x (module docs).

    Args:
        predictions, ground_truth: the labeled calibration images (as for ``fit_policy``).
        config: the routing policy.
        target_coverage: a coverage to reach (e.g. 0.1): the summary says how many labeled
            images it needs.
        fractions: shares of the images the curve is measured at.
        n_repeats: subsamples per share.
        seed: seed of the subsamples.

    Returns:
        :class:`CalibrationPlan`.

    Raises:
        ValueError: as ``fit_policy``, or fewer than two distinct subsample sizes.
    """
    from autolabel.routing.fit import targets

    cfg = RoutingPolicy.load(config)
    boxes, images = targets(predictions, ground_truth, cfg)
    n = len(images)
    sizes = sorted({max(4, int(round(f * n))) for f in fractions if f * n >= 4})
    if len(sizes) < 2:
        raise ValueError(f"{n} labeled images are too few for a subsampling curve")
    curve = _coverage_curve(boxes, images, cfg, sizes, n_repeats, np.random.default_rng(seed), predictions)
    means = curve.groupby("images")["coverage"].mean()
    a, b = _fit_log(means.index.to_numpy(np.float64), means.to_numpy())
    boot_rng = np.random.default_rng(seed + 1)
    groups = [g["coverage"].to_numpy() for _, g in curve.groupby("images")]
    boot = []
    for _ in range(200):
        mb = np.array([boot_rng.choice(g, len(g)).mean() for g in groups])
        boot.append(_fit_log(means.index.to_numpy(np.float64), mb))
    boot_a, boot_b = np.array(boot).T

    def project(m: float) -> dict[str, float]:
        v = np.clip(boot_a + boot_b * np.log(m), 0, 1)
        return {"mean": float(np.clip(a + b * np.log(m), 0, 1)), "lo": float(np.quantile(v, 0.1)),
                "hi": float(np.quantile(v, 0.9))}

    now = curve[curve["images"] == n]["coverage"]
    summary: dict[str, Any] = {
        "labeled_images": n, "alpha": cfg.alpha, "delta": cfg.delta,
        "coverage_now": float(now.mean()), "coverage_now_sd": float(now.std(ddof=0)),
        "projected_2x": project(2 * n), "projected_4x": project(4 * n),
    }
    if target_coverage is not None:
        def need(aa: np.ndarray, bb: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return np.where(bb > 1e-9, np.exp((target_coverage - aa) / np.where(bb > 1e-9, bb, 1)), np.inf)

        est, draws = float(need(np.array(a), np.array(b))), need(boot_a, boot_b)
        summary["target_coverage"] = target_coverage
        summary["images_for_target"] = None if not np.isfinite(est) else int(np.ceil(est))
        summary["images_for_target_lo_hi"] = _interval(draws)
        summary.update(_by_risk_curve(boxes, images, cfg, predictions, target_coverage, seed))
    return CalibrationPlan(curve, summary)


def _interval(draws: np.ndarray) -> list[float | None]:
    """10th and 90th percentile of bootstrap draws; an unreachable draw (inf) counts as
    larger than any number, so a bound is None when more than that share is unreachable."""
    d = np.sort(np.asarray(draws, np.float64))
    out: list[float | None] = []
    for q in (0.1, 0.9):
        v = d[min(len(d) - 1, int(np.floor(q * (len(d) - 1))))] if len(d) else np.inf
        out.append(float(v) if np.isfinite(v) else None)
    return out


def _needed(loss_sorted: np.ndarray, cfg: RoutingPolicy, target: float) -> float:
    """Labeled images for the best coverage level >= target, from losses sorted by score (best first)."""
    from autolabel.routing.bounds import clopper_pearson_upper

    n = len(loss_sorted)
    best = np.inf
    grid = np.unique(np.round(np.logspace(1, 5, 400)))
    for q in sorted(cfg.coverage_grid):
        if q < target:
            continue
        k = max(1, int(np.ceil(q * n)))
        r = float(loss_sorted[:k].mean())
        if r >= cfg.alpha:
            continue
        ok = clopper_pearson_upper(r * grid, grid, cfg.delta) <= cfg.alpha
        if ok.any():
            best = min(best, float(grid[np.argmax(ok)]) / q / (cfg.holdout if cfg.holdout > 0 else 1.0))
    return best


def _by_risk_curve(
    boxes: pd.DataFrame, images: pd.DataFrame, cfg: RoutingPolicy, predictions: Results, target: float, seed: int
) -> dict[str, Any]:
    from autolabel.routing.fit import fit_tables
    from autolabel.routing.features import IMAGE_FEATURES
    from autolabel.routing.policy import image_loss

    n = len(images)
    perm = np.random.default_rng(seed).permutation(n)
    halves = [np.sort(perm[: n // 2]), np.sort(perm[n // 2:])]
    score = np.full(n, np.nan)
    for a, b in (halves, halves[::-1]):
        pol = fit_tables(boxes[boxes["image"].isin(a)], images[images["image"].isin(a)], cfg,
                         predictions.model_id, predictions.class_names, False)
        rows = images[images["image"].isin(b)]
        _, s = pol.score_tables(boxes[boxes["image"].isin(b)], rows[["image", "file_name", *IMAGE_FEATURES]])
        score[rows["image"].to_numpy()] = s[pol.accept_score].to_numpy()
    loss = image_loss(images, cfg.risk)[np.argsort(-score, kind="stable")]
    est = _needed(loss, cfg, target)
    rng = np.random.default_rng(seed + 2)
    boot = np.array([_needed(loss[np.sort(rng.integers(0, n, n))], cfg, target)  # resamples, kept in score order
                     for _ in range(200)])
    return {
        "images_needed_by_risk_curve": None if not np.isfinite(est) else int(np.ceil(est)),
        "images_needed_by_risk_curve_lo_hi": _interval(boot),
        "risk_curve_oof_at_target": float(loss[: max(1, int(np.ceil(target * n)))].mean()),
    }
