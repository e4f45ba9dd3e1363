"""Route every image to one queue, with a stated guarantee for what is auto-accepted.

Queues (:data:`QUEUES`): ``auto_accept`` (the pre-labels become labels, no person looks),
``review`` (a person checks and corrects the pre-labels) and ``scratch`` (fixing the
pre-labels is expected to cost more than drawing from nothing).

Definitions
-----------
* **Needs an edit**: an image whose pre-labels (boxes with ``score >= prelabel_conf``),
  matched to its ground truth by :func:`autolabel.savings.match_image`, produce any
  ``adjust``, ``relabel``, ``adjust_relabel``, ``delete`` or ``draw`` (a missed object).
  Boxes on crowd regions need nothing.
* **Risk** (``RoutingPolicy.risk``): the mean per-image loss (:func:`image_loss`) over
  the auto-accepted images. ``image_any_edit`` (default): the loss is 1 when the image
  needs an edit, so the risk is the fraction of auto-accepted images needing one.
  ``box_error_rate``: the loss is the image's share of wrong boxes, (delete + relabel +
  adjust_relabel + draw) / max(1, pre-labels + draws), in [0, 1]; an adjust counts as
  correct. Images are the i.i.d. units (boxes within an image are dependent), so a bound
  on the mean of a per-image loss stays valid. **Coverage**: the fraction of images
  auto-accepted.
* **Per-box probabilities** (:mod:`autolabel.scoring`, per class with a global
  fallback, fitted on the calibration images): ``p_located`` (the box found an object,
  IoU >= ``iou_min``), ``p_correct`` (right class too), ``p_exact`` (needs no edit:
  right class, IoU >= ``iou_accept``), forced to ``p_exact <= p_correct <= p_located``;
  for boxes below ``prelabel_conf`` (down to ``evidence_conf``; lower ones are ignored,
  so predict at that conf: ``autolabel prelabel --conf 0.05``), ``p_found`` (it found
  an object no pre-label found). Routing predictions with no box below
  ``prelabel_conf`` through a policy that uses them is an error (they were thresholded). The feature is the detector score, or score x agreement when agreement
  signals (:func:`autolabel.scoring.tta_agreement`, ``detector_agreement``) are given.
* **Expected misses**: ``E[draw] = c0 + c1 * n_prelabels + c2 * sum(p_found)``, the
  coefficients by non-negative least squares on the calibration images.
* **P(no edit)** of an image: ``raw = prod(p_exact) * exp(-E[draw])`` (independent
  boxes, Poisson misses), then Platt-scaled on the calibration images; the scaling is
  strictly increasing, so it changes the values, never the order.
* **Expected seconds** (cost model of :mod:`autolabel.savings`): expected edit counts
  accept ``sum p_exact``, adjust ``sum(p_correct - p_exact)``, relabel
  ``sum(p_located - p_correct)``, delete ``sum(1 - p_located)``, draw ``E[draw]``,
  priced by :func:`~autolabel.savings.edit_seconds`; from scratch:
  :func:`~autolabel.savings.scratch_seconds` of ``sum p_located + E[draw]`` objects.

* **Box score** of an image: ``1 - E[box error rate]``, with ``E[box error rate] =
  (sum(1 - p_correct) + E[draw]) / max(1, n_prelabels + E[draw])``; the threshold of the
  ``box_error_rate`` risk applies to it (``image_any_edit``: to P(no edit)).

Threshold (Learn then Test)
---------------------------
Candidate thresholds are the distinct calibration scores, from strict to loose. At
each, the ``n`` calibration images at or above it have losses summing to ``k``. For
``image_any_edit`` (0/1 losses) the upper bound at confidence ``1 - delta`` is
Clopper-Pearson, ``Beta.ppf(1 - delta, k + 1, n - k)``; for ``box_error_rate`` (losses
in [0, 1]) it is Hoeffding-Bentkus (:func:`hoeffding_bentkus_upper`). Thresholds are
tested in that fixed sequence and the loosest one reached with every bound so far
``<= alpha`` is kept; testing stops at the first failure, so no multiplicity correction
is needed and P(true risk > alpha) <= delta. The sequence starts at the strictest
threshold that accepts ``n_min = ceil(ln delta / ln(1 - alpha))`` images: fewer can
never certify ``alpha`` (even with no error); for ``box_error_rate`` at the strictest
one whose bound would certify ``alpha`` at an empirical risk of ``alpha / 10``
(:data:`START_RISK`). Which threshold that is depends on the scores only, never on the
labels. If none passes, nothing is auto-accepted and :attr:`FittedPolicy.reason` says why.

With ``holdout = 0`` (default) the score models and the bound use the same calibration
images; the box models are one-dimensional and monotone, so the optimism is small, but
the bound is then an approximation: :func:`cross_validate` measures how it holds.
``holdout > 0`` keeps that share of the images out of the score fit and computes the
bound on them alone (exact, needs more images).

Queue: ``auto_accept`` when the score (P(no edit) or the box score) >= the threshold; else ``scratch`` when expected
seconds to fix > ``scratch_margin`` x expected seconds from scratch; else ``review``.
The review queue is ordered by expected seconds saved per second of review,
``(scratch_s - edit_s) / edit_s``; budget mode keeps it in that order up to the budget
and reports what is left unreviewed.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from autolabel.config import CostProfile, RoutingPolicy
from autolabel.core import Results
from autolabel.scoring import (
    ClassCalibrator, PlattCalibrator, box_table, detection_ece, match_targets,
)

__all__ = [
    "QUEUES",
    "realized_seconds",
    "sequence_start",
    "task_data",
    "FittedPolicy",
    "Routing",
    "clopper_pearson_upper",
    "hoeffding_bentkus_upper",
    "BOUNDS",
    "START_RISK",
    "image_loss",
    "min_certifiable",
    "ltt_threshold",
    "fit_policy",
    "route",
    "evaluate",
    "cross_validate",
    "plot_risk_coverage",
]

QUEUES = ("auto_accept", "review", "scratch")
POLICY_FORMAT = "autolabel-routing-policy/1"
_TARGETS = ("located", "correct", "exact")
_EPS = 1e-6


# -- the bound -------------------------------------------------------------------------------
def clopper_pearson_upper(k: Any, n: Any, delta: float) -> Any:
    """One-sided Clopper-Pearson upper bound, at confidence ``1 - delta``, on a rate
    with ``k`` events in ``n`` trials (1 where ``n == 0`` or ``k >= n``)."""
    from scipy.stats import beta

    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore"):
        u = beta.ppf(1 - delta, k + 1, np.maximum(n - k, 1))
    out = np.where((n <= 0) | (k >= n), 1.0, u)
    return float(out) if out.ndim == 0 else out


def hoeffding_bentkus_upper(loss_sum: Any, n: Any, delta: float) -> Any:
    """Hoeffding-Bentkus upper bound, at confidence ``1 - delta``, on the mean of a loss
    in [0, 1] whose ``n`` i.i.d. draws sum to ``loss_sum`` (1 where ``n == 0``).

    The p-value of "mean > a" is ``min(exp(-n h(min(R, a), a)), e * P(Bin(n, a) <=
    ceil(n R)))`` with ``R = loss_sum / n`` and ``h`` the Bernoulli KL divergence (Bates
    et al. 2021, Angelopoulos et al. 2021 "Learn then Test"); it decreases in ``a``, and
    the bound is the smallest ``a`` (found by bisection, rounded up) whose p-value is ``<= delta``."""
    from scipy.special import rel_entr
    from scipy.stats import binom

    s, n = np.broadcast_arrays(np.asarray(loss_sum, np.float64), np.asarray(n, np.float64))
    nn = np.maximum(n, 1)
    r = np.clip(s / nn, 0, 1)
    k = np.ceil(s - 1e-9)

    def pvalue(a: np.ndarray) -> np.ndarray:
        m = np.minimum(r, a)
        h = rel_entr(m, a) + rel_entr(1 - m, 1 - a)
        return np.minimum(np.exp(-nn * h), np.e * binom.cdf(k, nn, a))

    lo, hi = r.copy(), np.ones_like(r)  # p(lo) > delta (or lo = r, the trivial floor); p(hi) <= delta
    for _ in range(50):
        mid = (lo + hi) / 2
        ok = pvalue(mid) <= delta
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    out = np.where((n <= 0) | (r >= 1), 1.0, hi)
    return float(out) if out.ndim == 0 else out


#: The upper confidence bound used for each risk of :class:`~autolabel.config.RoutingPolicy`.
BOUNDS: dict[str, Callable[[Any, Any, float], Any]] = {
    "image_any_edit": clopper_pearson_upper,
    "box_error_rate": hoeffding_bentkus_upper,
}
#: Where the fixed sequence starts, per risk: the strictest threshold whose bound could
#: certify alpha at an empirical risk of ``START_RISK * alpha``. For 0/1 losses 0 (the
#: fewest images that can ever certify alpha). For bounded losses a start at zero loss is
#: a knife edge (any loss fails there and ends the sequence), so it starts where a risk of
#: alpha / 10 would pass (33 images at alpha = delta = 0.1). Either depends on no label.
START_RISK: dict[str, float] = {"image_any_edit": 0.0, "box_error_rate": 0.1}
_BOUND_NAMES = {clopper_pearson_upper: "Clopper-Pearson", hoeffding_bentkus_upper: "Hoeffding-Bentkus"}


def image_loss(images: pd.DataFrame, risk: str) -> np.ndarray:
    """Per-image loss in [0, 1] from the edit counts of :func:`~autolabel.scoring.match_targets`:
    ``image_any_edit``: 1 when the image needs any edit; ``box_error_rate``: (wrong
    pre-labels, i.e. delete, relabel or adjust_relabel, + missed objects, i.e. draw) /
    max(1, pre-labels + draws), crowd-matched pre-labels counted in neither. Images are the
    i.i.d. units, so a bound on the mean of this loss is valid although the boxes within
    an image are dependent; an ``adjust`` (right class, IoU in [iou_min, iou_accept)) counts
    as a correct box."""
    if risk == "image_any_edit":
        return images["needs_edit"].to_numpy(np.float64)
    if risk == "box_error_rate":
        from autolabel.matching import EDIT_KINDS

        wrong = images[["delete", "relabel", "adjust_relabel", "draw"]].to_numpy(np.float64).sum(1)
        return wrong / np.maximum(1.0, images[list(EDIT_KINDS)].to_numpy(np.float64).sum(1))
    raise ValueError(f"unknown risk {risk!r}; choose from {', '.join(BOUNDS)}")


@lru_cache(maxsize=256)
def min_certifiable(
    alpha: float, delta: float, bound: Callable[[Any, Any, float], Any] = clopper_pearson_upper, risk: float = 0.0
) -> int:
    """Fewest accepted images whose ``bound`` is ``<= alpha`` at empirical risk ``risk``
    (``0``: the fewest that can ever certify ``alpha``; the Clopper-Pearson and
    Hoeffding-Bentkus bounds agree there: ``(1 - alpha) ** n <= delta``)."""
    if not 0 <= risk < alpha:
        raise ValueError(f"risk must be in [0, alpha={alpha}), got {risk}")
    n = max(1, math.ceil(math.log(delta) / math.log(1 - alpha)))
    while bound(risk * n, n, delta) > alpha:  # also guards the float rounding of the log ratio
        n += 1
    while n > 1 and bound(risk * (n - 1), n - 1, delta) <= alpha:
        n -= 1
    return n


def sequence_start(cfg: RoutingPolicy) -> int:
    """Auto-accepted calibration images at which a policy's fixed sequence starts (see
    :func:`ltt_threshold`): ``min_certifiable`` for its risk, bound, alpha and delta."""
    return min_certifiable(cfg.alpha, cfg.delta, BOUNDS[cfg.risk], START_RISK[cfg.risk] * cfg.alpha)


@dataclass(frozen=True)
class LTTResult:
    """The chosen threshold (None: nothing auto-accepted), why, and the risk-coverage
    curve: one row per candidate threshold with ``n_accepted``, ``loss_sum``,
    ``coverage``, ``risk``, ``ucb``, ``tested`` and ``passed``."""

    threshold: float | None
    reason: str
    curve: pd.DataFrame


def ltt_threshold(
    scores: np.ndarray, losses: np.ndarray, alpha: float, delta: float,
    bound: Callable[[Any, Any, float], Any] = clopper_pearson_upper, score_name: str = "P(no edit)",
    start_risk: float = 0.0,
) -> LTTResult:
    """Learn-then-Test fixed-sequence choice of the auto-accept threshold (module docs):
    ``losses`` per calibration image in [0, 1] (0/1 for the Clopper-Pearson bound), the
    risk of a threshold is their mean over the images scoring at or above it, and
    ``bound(loss_sum, n, delta)`` is its upper confidence bound (:data:`BOUNDS`). The
    sequence starts at the strictest threshold accepting ``min_certifiable(alpha, delta,
    bound, start_risk * alpha)`` images (:data:`START_RISK`)."""
    s = np.asarray(scores, np.float64)
    e = np.asarray(losses, np.float64)
    if not len(s):
        raise ValueError("no calibration images: cannot choose a threshold")
    if len(e) != len(s) or not ((e >= 0) & (e <= 1)).all():
        raise ValueError("losses must be one value in [0, 1] per score")
    if bound is clopper_pearson_upper and not np.isin(e, (0.0, 1.0)).all():
        raise ValueError("the Clopper-Pearson bound needs 0/1 losses; use hoeffding_bentkus_upper for bounded ones")
    order = np.argsort(-s, kind="stable")
    ss, ee = s[order], e[order]
    last = np.append(ss[1:] != ss[:-1], True)  # last image of each group of tied scores
    n = np.arange(1, len(s) + 1)[last]
    k = np.cumsum(ee)[last]
    ucb = bound(k, n, delta)
    n_min = min_certifiable(alpha, delta, bound, start_risk * alpha)
    tested = np.zeros(len(n), bool)
    passed = np.zeros(len(n), bool)
    start = int(np.searchsorted(n, n_min))  # n is increasing
    j = start
    while j < len(n):
        tested[j] = True
        if ucb[j] > alpha:
            break
        passed[j] = True
        j += 1
    curve = pd.DataFrame({
        "threshold": ss[last], "n_accepted": n, "loss_sum": k, "coverage": n / len(s),
        "risk": k / n, "ucb": ucb, "tested": tested, "passed": passed,
    })
    if start >= len(n):
        return LTTResult(None, (
            f"nothing auto-accepted: certifying alpha={alpha} at delta={delta} needs at least {n_min} "
            f"auto-accepted calibration images, and there are only {len(s)}"
        ), curve)
    if not passed.any():
        return LTTResult(None, (
            f"nothing auto-accepted: the strictest testable threshold ({ss[last][start]:.4g}, accepting "
            f"{n[start]} of {len(s)} calibration images) has risk {k[start] / n[start]:.3f}, upper bound "
            f"{ucb[start]:.3f} > alpha={alpha}"
        ), curve)
    b = int(np.flatnonzero(passed)[-1])
    nxt = "" if b + 1 >= len(n) else f"; the next looser one fails (bound {ucb[b + 1]:.3f})"
    return LTTResult(float(ss[last][b]), (
        f"auto-accept {score_name} >= {ss[last][b]:.4g}: {n[b]} of {len(s)} calibration images, risk "
        f"{k[b] / n[b]:.3f}, upper bound {ucb[b]:.3f} <= alpha={alpha} at delta={delta}{nxt}"
    ), curve)


# -- the fitted policy -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FittedPolicy:
    """Score models and auto-accept threshold fitted on a calibration sample.

    :meth:`save` / :meth:`load` as JSON; :meth:`score` gives per-box and per-image
    scores for new predictions of the same model (``model_id``)."""

    config: RoutingPolicy
    model_id: str
    class_names: tuple[str, ...]
    use_agreement: bool
    located: ClassCalibrator
    correct: ClassCalibrator
    exact: ClassCalibrator
    found: ClassCalibrator | None
    miss: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image: PlattCalibrator = PlattCalibrator(1.0, 0.0)
    threshold: float | None = None
    reason: str = ""
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: Mapping[str, Any] = field(default_factory=dict)

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT,
            "model_id": self.model_id,
            "class_names": list(self.class_names),
            "config": self.config.model_dump(mode="json"),
            "use_agreement": self.use_agreement,
            "calibrators": {
                **{t: getattr(self, t).to_dict() for t in _TARGETS},
                "found": None if self.found is None else self.found.to_dict(),
            },
            "miss": list(self.miss),
            "image": self.image.to_dict(),
            "threshold": self.threshold,
            "reason": self.reason,
            "curve": self.curve.to_dict(orient="list"),
            "summary": dict(self.summary),
        }

    def save(self, path: str | os.PathLike) -> str:
        """Write the policy as JSON; returns the path."""
        from autolabel.formats._common import atomic_write

        return atomic_write(path, json.dumps(self.to_dict(), indent=1, allow_nan=True))

    @classmethod
    def load(cls, source: str | os.PathLike | Mapping[str, Any]) -> FittedPolicy:
        """From a JSON file written by :meth:`save` (or its dict); errors name the file."""
        where = "<dict>"
        if not isinstance(source, Mapping):
            where = str(source)
            try:
                with open(source, encoding="utf-8") as f:
                    source = json.load(f)
            except FileNotFoundError:
                raise FileNotFoundError(f"policy file not found: {where}") from None
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not a JSON policy file ({e})") from None
        if not isinstance(source, Mapping) or source.get("format") != POLICY_FORMAT:
            raise ValueError(f"{where}: not a routing policy (expected format {POLICY_FORMAT!r})")
        try:
            cal = source["calibrators"]
            return cls(
                RoutingPolicy.load(dict(source["config"])),
                str(source["model_id"]),
                tuple(source["class_names"]),
                bool(source["use_agreement"]),
                *(ClassCalibrator.from_dict(cal[t]) for t in _TARGETS),
                None if cal["found"] is None else ClassCalibrator.from_dict(cal["found"]),
                tuple(float(c) for c in source["miss"]),  # type: ignore[arg-type]
                PlattCalibrator(float(source["image"]["a"]), float(source["image"]["b"])),
                None if source["threshold"] is None else float(source["threshold"]),
                str(source["reason"]),
                pd.DataFrame(source["curve"]),
                dict(source["summary"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: invalid routing policy: {type(e).__name__}: {e}") from None

    def __repr__(self) -> str:
        thr = "none" if self.threshold is None else f"{self.threshold:.4g}"
        return (
            f"FittedPolicy(model={self.model_id or '?'}, alpha={self.config.alpha}, delta={self.config.delta}, "
            f"threshold={thr}, calibration images={self.summary.get('images', '?')})"
        )

    # -- scoring -----------------------------------------------------------------------------------
    @cached_property
    def cost_profile(self) -> CostProfile:
        """The cost profile the expected seconds use (read once per policy)."""
        return CostProfile.load(self.config.cost_profile)

    @property
    def accept_score(self) -> str:
        """The per-image score the threshold applies to: ``p_no_edit`` for the
        ``image_any_edit`` risk, ``box_score`` (1 - expected box error rate) for ``box_error_rate``."""
        return _ACCEPT_SCORE[self.config.risk]

    def check_model(self, model_id: str) -> None:
        """Raise ``ValueError`` unless predictions of ``model_id`` may use this policy."""
        if not self.model_id:
            return  # fitted on predictions without a model id: nothing to compare
        if not model_id:
            raise ValueError(
                f"the predictions carry no model id (COCO info.model_id) but the policy was fitted on "
                f"{self.model_id!r}; pass check_model=False (CLI: --any-model) if they come from that model"
            )
        if model_id != self.model_id:
            raise ValueError(
                f"the policy was calibrated on model {self.model_id!r}, the predictions come from "
                f"{model_id!r}: calibrate again on that model's predictions"
            )

    def score(self, results: Results, agreement: Sequence[np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-box and per-image scores of ``results`` (DataFrames, see module docs)."""
        boxes = box_table(results, self.config.prelabel_conf, agreement)
        boxes = boxes[boxes["score"] >= self.config.evidence_conf].reset_index(drop=True)
        images = pd.DataFrame({
            "image": np.arange(len(results)),
            "file_name": [d.image.file_name if d.image else str(i) for i, d in enumerate(results)],
        })
        return self.score_tables(boxes, images)

    def score_tables(self, boxes: pd.DataFrame, images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Score a :func:`~autolabel.scoring.box_table` (``image`` refers to ``images.image``)."""
        boxes = boxes.copy()
        x = _feature(boxes, self.use_agreement)
        labels = boxes["label"].to_numpy(object)
        pre = boxes["prelabel"].to_numpy(bool)
        probs = {t: np.full(len(boxes), np.nan) for t in (*_TARGETS, "found")}
        cap = np.ones(int(pre.sum()))
        for t in _TARGETS:  # located >= correct >= exact
            cap = np.minimum(getattr(self, t)(x[pre], labels[pre]), cap)
            probs[t][pre] = cap
        probs["found"][~pre] = self.found(x[~pre], labels[~pre]) if self.found is not None else 0.0
        for t in (*_TARGETS, "found"):
            boxes[f"p_{t}"] = probs[t]
        boxes["uncertainty"] = 1 - probs["correct"]

        size = int(max(images["image"].max() + 1 if len(images) else 0, boxes["image"].max() + 1 if len(boxes) else 0))
        img = boxes["image"].to_numpy(np.int64)

        def total(w: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
            return np.bincount(img[mask], None if w is None else w[mask], minlength=size)[images["image"]]

        s = boxes["score"].to_numpy(np.float64)
        lo, hi = self.config.band
        out = images.copy()
        out["n_prelabels"] = total(None, pre).astype(np.int64)
        out["n_band"] = total(None, (s >= lo) & (s < hi)).astype(np.int64)
        unc = boxes.loc[pre].groupby("image")["uncertainty"].agg(["max", "mean"])
        out["max_uncertainty"] = unc["max"].reindex(images["image"]).to_numpy()
        out["mean_uncertainty"] = unc["mean"].reindex(images["image"]).to_numpy()
        p_loc, p_cor, p_ex = (np.nan_to_num(probs[t]) for t in _TARGETS)
        c0, c1, c2 = self.miss
        sum_found = total(np.nan_to_num(probs["found"]), ~pre)
        expected = {
            "accept": total(p_ex, pre),
            "adjust": total(p_cor - p_ex, pre),
            "relabel": total(p_loc - p_cor, pre),
            "adjust_relabel": np.zeros(len(out)),
            "delete": total(1 - p_loc, pre),
            "draw": c0 + c1 * out["n_prelabels"].to_numpy() + c2 * sum_found,
        }
        for k, v in expected.items():
            out[f"e_{k}"] = v
        out["sum_p_found"] = sum_found
        out["raw_score"] = np.exp(total(np.log(np.clip(p_ex, _EPS, 1)), pre) - expected["draw"])
        out["p_no_edit"] = self.image(out["raw_score"].to_numpy())
        wrong = total(1 - p_cor, pre) + expected["draw"]
        out["expected_box_error"] = wrong / np.maximum(1.0, out["n_prelabels"].to_numpy() + expected["draw"])
        out["box_score"] = 1 - out["expected_box_error"]
        profile = self.cost_profile
        from autolabel.matching import EDIT_KINDS
        from autolabel.savings import edit_seconds, scratch_seconds

        out["expected_edit_s"] = edit_seconds(np.stack([expected[k] for k in EDIT_KINDS], 1), profile)
        out["expected_scratch_s"] = scratch_seconds(total(p_loc, pre) + expected["draw"], profile)
        return boxes, out

    def assign(self, images: pd.DataFrame, budget_hours: float | None = None) -> pd.DataFrame:
        """Queue, reason, review priority and budget status for scored images (a manifest)."""
        m = images.copy()
        col, label = self.accept_score, _SCORE_LABEL[self.accept_score]
        p = m[col].to_numpy()
        edit_s, scratch_s = m["expected_edit_s"].to_numpy(), m["expected_scratch_s"].to_numpy()
        margin = self.config.scratch_margin
        auto = p >= self.threshold if self.threshold is not None else np.zeros(len(m), bool)
        scratch = ~auto & (edit_s > margin * scratch_s)
        m["queue"] = np.where(auto, "auto_accept", np.where(scratch, "scratch", "review"))
        thr = "none certified" if self.threshold is None else f"{self.threshold:.4g}"
        m["reason"] = [
            f"{label} {pi:.3f} >= threshold {thr}" if a
            else f"expected {e:.1f} s to fix > {margin:g} x {sc:.1f} s from scratch" if sr
            else f"{label} {pi:.3f} < threshold {thr}; fixing ({e:.1f} s) beats scratch ({sc:.1f} s)"
            for pi, a, sr, e, sc in zip(p, auto, scratch, edit_s, scratch_s)
        ]
        m["priority"] = np.where(m["queue"] == "review", (scratch_s - edit_s) / np.maximum(edit_s, _EPS), np.nan)
        review = m.index[m["queue"] == "review"][np.argsort(-m.loc[m["queue"] == "review", "priority"].to_numpy(), kind="stable")]
        m["review_rank"] = pd.Series(np.arange(1, len(review) + 1), index=review).reindex(m.index).astype("Int64")
        if budget_hours is not None:
            if budget_hours < 0:
                raise ValueError(f"budget_hours must be >= 0, got {budget_hours}")
            cum = m.loc[review, "expected_edit_s"].cumsum()
            m["in_budget"] = pd.Series(cum <= budget_hours * 3600, index=review).reindex(m.index)
        first = ["image", "file_name", "queue", "reason", *dict.fromkeys(["p_no_edit", col]), "expected_edit_s",
                 "expected_scratch_s", "priority", "review_rank", *(["in_budget"] if budget_hours is not None else [])]
        return m[first + [c for c in m.columns if c not in first]]


_ACCEPT_SCORE = {"image_any_edit": "p_no_edit", "box_error_rate": "box_score"}
_RISK_LABEL = {"image_any_edit": "share needing an edit", "box_error_rate": "mean box error rate"}
_SCORE_LABEL = {"p_no_edit": "P(no edit)", "box_score": "1 - E[box error rate]"}


def _feature(boxes: pd.DataFrame, use_agreement: bool) -> np.ndarray:
    """The calibrators' input: the detector score, times the agreement signal if used."""
    x = boxes["score"].to_numpy(np.float64)
    if not use_agreement:
        return x
    if "agreement" not in boxes:
        raise ValueError("this policy was fitted with agreement signals: pass agreement= for the predictions")
    return x * boxes["agreement"].to_numpy(np.float64)


def _fit(
    boxes: pd.DataFrame, images: pd.DataFrame, cfg: RoutingPolicy, model_id: str,
    class_names: Sequence[str], use_agreement: bool,
) -> FittedPolicy:
    """Fit on target tables from :func:`~autolabel.scoring.match_targets` (a subset of images is fine)."""
    if not len(images):
        raise ValueError("the calibration set has no labeled images")
    ids = images["image"].to_numpy()
    if cfg.holdout > 0:
        rng = np.random.default_rng(cfg.seed)
        n_hold = int(round(cfg.holdout * len(ids)))
        hold = rng.permutation(ids)[:n_hold]
        if n_hold == 0 or n_hold == len(ids):
            raise ValueError(f"holdout={cfg.holdout} of {len(ids)} calibration images leaves one side empty")
        fit_ids, bound_ids = np.setdiff1d(ids, hold), np.sort(hold)
    else:
        fit_ids = bound_ids = ids
    fb = boxes[boxes["image"].isin(fit_ids)]
    fi = images[images["image"].isin(fit_ids)]
    pre = fb[fb["prelabel"] & fb["located"].notna()]
    if not len(pre):
        raise ValueError(
            f"the calibration set has no pre-labels (score >= {cfg.prelabel_conf}) outside crowd regions: "
            "nothing to calibrate the boxes on"
        )
    x = _feature(pre, use_agreement)
    fit: dict[str, Any] = {"method": cfg.method, "min_class_boxes": cfg.min_class_boxes}
    cals = {t: ClassCalibrator.fit(x, pre[t].to_numpy(bool), pre["label"], what="pre-labels", **fit) for t in _TARGETS}
    sub = fb[~fb["prelabel"]]
    found = ClassCalibrator.fit(_feature(sub, use_agreement), sub["found"], sub["label"], **fit) if len(sub) else None
    policy = FittedPolicy(cfg, model_id, tuple(class_names), use_agreement, found=found, **cals)
    # expected misses, then the image-level Platt scaling, each on the fit images
    fit_boxes, s = policy.score_tables(fb, fi[["image", "file_name"]])  # p_correct: final from here on
    from scipy.optimize import nnls

    design = np.stack([np.ones(len(s)), s["n_prelabels"], s["sum_p_found"]], 1).astype(np.float64)
    coef, _ = nnls(design, fi["draw"].to_numpy(np.float64))
    policy = replace(policy, miss=tuple(float(c) for c in coef))
    _, s = policy.score_tables(fb, fi[["image", "file_name"]])
    policy = replace(policy, image=PlattCalibrator.fit(s["raw_score"], ~fi["needs_edit"].to_numpy(bool)))
    bi = images[images["image"].isin(bound_ids)]
    if cfg.holdout > 0:
        _, s = policy.score_tables(boxes[boxes["image"].isin(bound_ids)], bi[["image", "file_name"]])
    else:  # the bound images are the fit images: only the image-level scaling changed
        s = s.assign(p_no_edit=policy.image(s["raw_score"].to_numpy()))
    ltt = ltt_threshold(s[policy.accept_score], image_loss(bi, cfg.risk), cfg.alpha, cfg.delta, BOUNDS[cfg.risk],
                        _SCORE_LABEL[policy.accept_score], START_RISK[cfg.risk])
    summary = {
        "images": int(len(images)),
        "fit_images": int(len(fit_ids)),
        "bound_images": int(len(bound_ids)),
        "images_needing_edit": int(images["needs_edit"].sum()),
        "prelabels": int(len(pre)),
        "below_prelabel_conf": int(len(sub)),
        "miss_model": "constant + pre-label count + sum of P(found) over boxes below prelabel_conf" if len(sub) else
        f"constant + pre-label count only: no predictions between evidence_conf {cfg.evidence_conf} and "
        f"prelabel_conf {cfg.prelabel_conf} (predict at a lower conf for a stronger miss model)",
        "risk": cfg.risk,
        "min_certifiable": sequence_start(cfg),
        "classes_with_own_calibrator": sorted(cals["correct"].per_class),
        "classes_on_global_fallback": sorted(set(class_names) - set(cals["correct"].per_class)),
        "ece_before_in_sample": detection_ece(pre["score"], pre["correct"].to_numpy(bool), cfg.ece_bins),
        "ece_after_in_sample": detection_ece(fit_boxes.loc[pre.index, "p_correct"], pre["correct"].to_numpy(bool), cfg.ece_bins),
    }
    return replace(policy, threshold=ltt.threshold, reason=ltt.reason, curve=ltt.curve, summary=summary)


def _targets(
    predictions: Results, ground_truth: Results, cfg: RoutingPolicy, agreement: Sequence[np.ndarray] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return match_targets(
        predictions, ground_truth, cfg.prelabel_conf, cfg.iou_accept, cfg.iou_min, agreement, cfg.evidence_conf
    )


def fit_policy(
    predictions: Results,
    ground_truth: Results,
    config: RoutingPolicy | Mapping[str, Any] | str = "default",
    agreement: Sequence[np.ndarray] | None = None,
) -> FittedPolicy:
    """Fit box calibrators, the miss model, P(no edit) and the auto-accept threshold on
    a labeled calibration sample. ``predictions`` and ``ground_truth`` must hold the
    same images; ``config`` is a :class:`~autolabel.config.RoutingPolicy`, a dict, a
    YAML path or a name under ``configs/routing/``. With ``agreement`` (per image, per
    box) the box feature is score x agreement, and routing needs it too."""
    cfg = RoutingPolicy.load(config)
    if not len(ground_truth):
        raise ValueError("the ground truth has no images: a calibration set needs labeled images")
    boxes, images = _targets(predictions, ground_truth, cfg, agreement)
    return _fit(boxes, images, cfg, predictions.model_id, predictions.class_names, agreement is not None)


# -- routing -------------------------------------------------------------------------------------------
@dataclass(eq=False)
class Routing:
    """Where every image goes: ``manifest`` (one row per image, in input order: queue,
    reason, scores, review rank, budget status), ``boxes`` (per-box scores) and the
    exports (:meth:`save`)."""

    predictions: Results
    policy: FittedPolicy
    manifest: pd.DataFrame
    boxes: pd.DataFrame
    budget_hours: float | None = None

    def queue(self, name: str) -> list[str]:
        """File names in one queue; the review queue in priority order."""
        if name not in QUEUES:
            raise ValueError(f"unknown queue {name!r}; choose from {', '.join(QUEUES)}")
        m = self.manifest[self.manifest["queue"] == name]
        if name == "review":
            m = m.sort_values("review_rank")
        return m["file_name"].tolist()

    def _subset(self, names: Sequence[str], prelabels_only: bool) -> Results:
        by_name = {d.image.file_name: d for d in self.predictions if d.image}
        conf = self.policy.config.prelabel_conf
        dets = [by_name[n].filter(conf) if prelabels_only else by_name[n] for n in names]
        return replace(self.predictions, detections=dets, failures=[])

    def auto_accepted(self) -> Results:
        """The final labels of the auto-accepted images: their pre-labels (score >= prelabel_conf)."""
        return self._subset(self.queue("auto_accept"), True)

    def seconds(self) -> pd.DataFrame:
        """Expected human seconds per queue, routed in total, reviewing everything and
        labeling everything from scratch (images, seconds, hours)."""
        m = self.manifest
        cost = np.select(
            [m["queue"] == "review", m["queue"] == "scratch"], [m["expected_edit_s"], m["expected_scratch_s"]], 0.0
        )
        rows = [(q, int((m["queue"] == q).sum()), float(cost[m["queue"] == q].sum())) for q in QUEUES]
        rows += [
            ("routed total", len(m), float(cost.sum())),
            ("review everything", len(m), float(m["expected_edit_s"].sum())),
            ("scratch everything", len(m), float(m["expected_scratch_s"].sum())),
        ]
        df = pd.DataFrame(rows, columns=["plan", "images", "seconds"])
        df["hours"] = df["seconds"] / 3600
        return df

    def summary(self) -> dict[str, Any]:
        """Counts per queue, the policy's threshold and reason, seconds and budget status."""
        m = self.manifest
        out: dict[str, Any] = {
            "images": len(m),
            "model_id": self.predictions.model_id,
            "queues": {q: int((m["queue"] == q).sum()) for q in QUEUES},
            "threshold": self.policy.threshold,
            "risk": self.policy.config.risk,
            "alpha": self.policy.config.alpha,
            "delta": self.policy.config.delta,
            "reason": self.policy.reason,
            "expected_seconds": {r.plan: r.seconds for r in self.seconds().itertuples()},
        }
        if self.budget_hours is not None:
            review = m[m["queue"] == "review"]
            left = review[~review["in_budget"].astype(bool)]
            out["budget"] = {
                "hours": self.budget_hours,
                "reviewed_images": int(len(review) - len(left)),
                "reviewed_expected_s": float(review["expected_edit_s"].sum() - left["expected_edit_s"].sum()),
                "unreviewed_images": int(len(left)),
                "unreviewed_expected_s": float(left["expected_edit_s"].sum()),
                "unreviewed_expected_images_needing_edit": float((1 - left["p_no_edit"]).sum()),
                "unreviewed": left["file_name"].tolist(),
                "scratch_queue_s_not_in_budget": float(m.loc[m["queue"] == "scratch", "expected_scratch_s"].sum()),
            }
        return out

    def save(self, out_dir: str | os.PathLike, image_root_url: str = "") -> list[str]:
        """Write into ``out_dir``: ``manifest.csv``, ``auto_accepted.json`` (COCO),
        ``review_queue.json`` (Label Studio tasks in priority order, routing scores in each
        task's data; ``label_config.xml`` beside it), ``review_queue.txt`` and
        ``scratch_queue.txt`` (file names, one a line), ``seconds.csv``,
        ``summary.json`` and ``risk_coverage.png``. Returns the written paths."""
        from autolabel.formats import write_coco, write_labelstudio
        from autolabel.formats._common import atomic_write

        os.makedirs(out_dir, exist_ok=True)

        def path(name: str) -> str:  # fixed names only, never names taken from the input
            return os.path.join(str(out_dir), name)

        m = self.manifest
        written = [atomic_write(path("manifest.csv"), m.drop(columns=["image"]).to_csv(index=False))]
        written += write_coco(self.auto_accepted(), path("auto_accepted.json"))
        review = self.queue("review")
        cols = ["queue", "review_rank", "priority", "p_no_edit", "expected_edit_s", "expected_scratch_s", "reason"]
        key = {d.image.file_name: d.image.key for d in self.predictions if d.image}
        extra = task_data(m.set_index("file_name").loc[review, cols], [key[f] for f in review])
        written += write_labelstudio(self._subset(review, True), path("review_queue.json"), image_root_url, extra)
        written.append(atomic_write(path("review_queue.txt"), "".join(f"{f}\n" for f in review)))
        written.append(atomic_write(path("scratch_queue.txt"), "".join(f"{f}\n" for f in self.queue("scratch"))))
        written.append(atomic_write(path("seconds.csv"), self.seconds().to_csv(index=False)))
        written.append(atomic_write(path("summary.json"), json.dumps(self.summary(), indent=1)))
        written.append(plot_risk_coverage(self.policy, path("risk_coverage.png")))
        return written


def task_data(rows: pd.DataFrame, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Manifest rows as annotation-tool task data: ``{key: {"routing_<column>": value}}``
    (JSON scalars; NaN becomes ``None``), one row per key in order."""
    return {
        k: {f"routing_{c}": _json_scalar(v) for c, v in zip(rows.columns, row)}
        for k, row in zip(keys, rows.itertuples(index=False))
    }


def _json_scalar(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def route(
    predictions: Results,
    policy: FittedPolicy | str | os.PathLike,
    budget_hours: float | None = None,
    agreement: Sequence[np.ndarray] | None = None,
    check_model: bool = True,
) -> Routing:
    """Send every image of ``predictions`` to one queue with a fitted ``policy`` (or its
    JSON path). Predictions from a model other than the policy's raise ``ValueError``
    unless ``check_model=False``. ``budget_hours``: review budget (see module docs)."""
    pol = policy if isinstance(policy, FittedPolicy) else FittedPolicy.load(policy)
    if check_model:
        pol.check_model(predictions.model_id)
    boxes, images = pol.score(predictions, agreement)
    if pol.found is not None and boxes["prelabel"].any() and boxes["prelabel"].all():
        raise ValueError(
            f"the predictions hold no box scoring below the pre-label threshold {pol.config.prelabel_conf}, but the "
            f"policy counts such boxes (down to {pol.config.evidence_conf}) as evidence of missed objects: predict "
            f"at conf {pol.config.evidence_conf} as for calibration (autolabel prelabel --conf {pol.config.evidence_conf})"
        )
    return Routing(predictions, pol, pol.assign(images, budget_hours), boxes, budget_hours)


# -- measuring a policy against ground truth -------------------------------------------------------------
def realized_seconds(
    truth: pd.DataFrame, file_names: Sequence[str], profile: CostProfile
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The true targets of ``file_names`` (in that order) and the human seconds to fix
    their pre-labels and to label them from scratch (from their true edits)."""
    from autolabel.matching import EDIT_KINDS
    from autolabel.savings import edit_seconds, scratch_seconds

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


def evaluate(routing: Routing, ground_truth: Results, naive_min_score: float = 0.5) -> dict[str, Any]:
    """What a routing really did, against ground truth: ``coverage``, realized ``risk``
    (the policy's risk: mean :func:`image_loss` of the auto-accepted images; NaN when none
    is auto-accepted), ``share_needing_edit`` of them, the edits left in them, the naive
    rule (auto-accept when every pre-label scores >= ``naive_min_score``; an image without
    pre-labels qualifies) beside it, ``auc_no_edit`` (how well P(no edit) ranks the images needing no edit), detection ECE of the raw and
    calibrated pre-label scores, and human seconds routed vs reviewing everything vs
    labeling from scratch (realized: :func:`~autolabel.savings.edit_seconds` of the true
    edits, :func:`~autolabel.savings.scratch_seconds` of the true objects)."""
    cfg = routing.policy.config
    targets, truth = _targets(routing.predictions, ground_truth, cfg)
    boxes = routing.boxes.merge(targets[["file_name", "box", "correct"]], on=["file_name", "box"], how="left")
    return _realized(
        routing.manifest, boxes, truth, CostProfile.load(cfg.cost_profile), cfg.ece_bins, naive_min_score, cfg.risk
    )


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
    """Fit on a random calibration part and measure on the rest, ``n_splits`` times
    (split ``i`` uses ``numpy.random.default_rng(seed + i)``). One row per split: the
    threshold, calibration-side bound and the :func:`evaluate` measures on the test part."""
    cfg = RoutingPolicy.load(config)
    boxes, truth = _targets(predictions, ground_truth, cfg, agreement)
    profile = CostProfile.load(cfg.cost_profile)
    n = len(truth)
    n_cal = int(round(calibration_fraction * n))
    if not 0 < n_cal < n:
        raise ValueError(f"calibration_fraction={calibration_fraction} of {n} images leaves one side empty")
    rows = []
    for i in range(n_splits):
        perm = np.random.default_rng(seed + i).permutation(n)
        cal, test = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
        pol = _fit(
            boxes[boxes["image"].isin(cal)], truth[truth["image"].isin(cal)], cfg,
            predictions.model_id, predictions.class_names, agreement is not None,
        )
        tb, ti = pol.score_tables(boxes[boxes["image"].isin(test)], truth.loc[truth["image"].isin(test), ["image", "file_name"]])
        row = {"split": i, "seed": seed + i, "calibration_images": len(cal), "threshold": pol.threshold}
        row.update(_realized(pol.assign(ti), tb, truth, profile, cfg.ece_bins, naive_min_score, cfg.risk))
        rows.append(row)
    return pd.DataFrame(rows)


# -- plot ------------------------------------------------------------------------------------------------
def plot_risk_coverage(policy: FittedPolicy, path: str | os.PathLike | None = None, ax: Any = None) -> Any:
    """Risk (mean :func:`image_loss` of the auto-accepted calibration images) and its
    upper bound (:data:`BOUNDS`) against coverage, with ``alpha`` and the chosen threshold.
    Returns the axes, or writes a PNG to ``path`` and returns the path."""
    import matplotlib

    if path is not None and ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    c, cfg = policy.curve, policy.config
    bound = BOUNDS[cfg.risk]
    if len(c):
        ax.step(c["coverage"], c["risk"], where="post", label="empirical risk (calibration)")
        name = _BOUND_NAMES[bound]
        ax.step(c["coverage"], c["ucb"], where="post", ls="--", label=f"{name} bound, 1-delta={1 - cfg.delta:g}")
        ok = c[c["passed"]]
        if len(ok):
            last = ok.iloc[-1]
            ax.plot([last["coverage"]], [last["ucb"]], "o", color="C2", label=f"chosen: coverage {last['coverage']:.2f}")
    ax.axhline(cfg.alpha, color="C3", lw=1, label=f"alpha = {cfg.alpha:g}")
    n_min = sequence_start(cfg)
    n_cal = policy.summary.get("bound_images")
    if n_cal:
        ax.axvline(min(n_min / n_cal, 1), color="grey", ls=":", lw=1, label=f"sequence starts: {n_min} images")
    ax.set(xlabel="coverage (share auto-accepted)", ylabel=_RISK_LABEL[cfg.risk], xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"risk-coverage, {policy.model_id or 'model ?'}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if path is None:
        return ax
    fig = fig or ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
