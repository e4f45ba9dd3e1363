"""Upper confidence bounds on a risk, and the tests that choose an auto-accept threshold.

Pure numpy/scipy. Every bound here is an upper bound, at confidence ``1 - delta``, on the mean
of a loss in [0, 1] over i.i.d. units (images):

* :func:`clopper_pearson_upper`: exact for 0/1 losses (binomial counts).
* :func:`hoeffding_bentkus_upper`: for bounded losses, from their sum alone.
* :func:`wsr_upper`: the Waudby-Smith–Ramdas betting bound (hedged capital process,
  as used by risk-controlling prediction sets, Bates et al. 2021), far tighter than
  Hoeffding–Bentkus when most losses are 0; it needs the losses themselves.

Threshold tests: :func:`ltt_threshold` (fixed sequence from strict to loose over every
distinct score, the original Learn-then-Test rule) and :func:`grid_threshold` (a small set
of candidate thresholds fixed before the bound images are seen, tested by Bonferroni or as a
fixed sequence; see :mod:`autolabel.routing` for why that keeps a learned scorer exact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "clopper_pearson_upper", "hoeffding_bentkus_upper", "wsr_upper", "BOUNDS", "VECTOR_BOUNDS", "START_RISK",
    "min_certifiable", "LTTResult", "ltt_threshold", "grid_threshold",
]


def clopper_pearson_upper(k: Any, n: Any, delta: float) -> Any:
    """One-sided Clopper–Pearson upper bound on a rate.

    Args:
        k: events (scalar or array).
        n: trials (broadcast with ``k``).
        delta: the bound fails with probability at most ``delta``.

    Returns:
        ``Beta.ppf(1 - delta, k + 1, n - k)``; 1 where ``n == 0`` or ``k >= n``. A float for
        scalar input, else an array.
    """
    from scipy.stats import beta

    k, n = np.asarray(k, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore"):
        u = beta.ppf(1 - delta, k + 1, np.maximum(n - k, 1))
    out = np.where((n <= 0) | (k >= n), 1.0, u)
    return float(out) if out.ndim == 0 else out


def hoeffding_bentkus_upper(loss_sum: Any, n: Any, delta: float) -> Any:
    """Hoeffding–Bentkus upper bound on the mean of a loss in [0, 1].

    The p-value of "mean > a" is ``min(exp(-n h(min(R, a), a)), e * P(Bin(n, a) <=
    ceil(n R)))`` with ``R = loss_sum / n`` and ``h`` the Bernoulli KL divergence (Bates et
    al. 2021); the bound is the smallest ``a`` whose p-value is ``<= delta`` (bisection,
    rounded up).

    Args:
        loss_sum: sum of the ``n`` losses (scalar or array).
        n: number of i.i.d. losses.
        delta: failure probability.

    Returns:
        The bound (1 where ``n == 0``), float or array as the input.
    """
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


def wsr_upper(losses: Sequence[float] | np.ndarray, delta: float) -> float:
    """Waudby-Smith–Ramdas betting upper bound on the mean of i.i.d. losses in [0, 1].

    For a candidate mean ``m`` the capital ``K_t(m) = prod_{i<=t} (1 - nu_i (x_i - m))`` is a
    non-negative martingale when the true mean is ``m`` (a supermartingale when it is larger),
    so by Ville's inequality ``P(max_t K_t(m) >= 1/delta) <= delta``. The bets ``nu_i =
    min(1, sqrt(2 log(1/delta) / (n sigma2_{i-1})))`` are predictable (they use the losses
    before ``i`` only): the running variance estimate with prior 1/4, as in the reference
    implementation of risk-controlling prediction sets. The bound is the smallest ``m`` not
    rejected (``max_t log K_t(m) < log(1/delta)``; ``K`` increases in ``m``, found by bisection).
    Hand-written because no maintained library ships it (it is ~15 lines).

    Args:
        losses: (n,) losses in [0, 1], in their (random) order.
        delta: failure probability.

    Returns:
        The bound in [0, 1]; 1 for no losses.

    Raises:
        ValueError: a loss outside [0, 1].
    """
    x = np.asarray(losses, np.float64)
    n = len(x)
    if not n:
        return 1.0
    if not ((x >= 0) & (x <= 1)).all():
        raise ValueError("wsr_upper needs losses in [0, 1]")
    t = np.arange(1, n + 1)
    mu = (np.cumsum(x) + 0.5) / (t + 1)
    var = (np.cumsum((x - mu) ** 2) + 0.25) / (t + 1)
    var = np.concatenate([[0.25], var[:-1]])
    nu = np.minimum(1.0, np.sqrt(2 * math.log(1 / delta) / (n * var)))

    def rejected(m: float) -> bool:
        with np.errstate(divide="ignore"):  # capital 0 (log -inf): never rejected from there
            return bool(np.max(np.cumsum(np.log1p(-nu * (x - m)))) >= math.log(1 / delta))

    if not rejected(1.0 - 1e-12):
        return 1.0
    lo, hi = 0.0, 1.0 - 1e-12  # not rejected at lo (or lo = 0), rejected at hi
    if rejected(lo):
        return 0.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejected(mid) else (mid, hi)
    return hi


#: Bounds from (loss_sum, n, delta), per risk of :class:`~autolabel.config.RoutingPolicy`.
BOUNDS: dict[str, Callable[[Any, Any, float], Any]] = {
    "image_any_edit": clopper_pearson_upper,
    "box_error_rate": hoeffding_bentkus_upper,
}
#: Bounds from the losses themselves (``bound(losses, delta)``), used by :func:`grid_threshold`.
VECTOR_BOUNDS: dict[str, Callable[[np.ndarray, float], float]] = {
    "clopper_pearson": lambda x, d: clopper_pearson_upper(float(np.sum(x)), len(x), d),
    "hoeffding_bentkus": lambda x, d: hoeffding_bentkus_upper(float(np.sum(x)), len(x), d),
    "wsr": wsr_upper,
}
#: Where the fixed sequence of :func:`ltt_threshold` starts, per risk (see :func:`min_certifiable`).
START_RISK: dict[str, float] = {"image_any_edit": 0.0, "box_error_rate": 0.1}
BOUND_NAMES: dict[Callable[..., Any], str] = {clopper_pearson_upper: "Clopper-Pearson", hoeffding_bentkus_upper: "Hoeffding-Bentkus"}


@lru_cache(maxsize=256)
def min_certifiable(
    alpha: float, delta: float, bound: Callable[[Any, Any, float], Any] = clopper_pearson_upper, risk: float = 0.0
) -> int:
    """Fewest accepted images whose ``bound`` is ``<= alpha`` at empirical risk ``risk``.

    Args:
        alpha: target risk. delta: failure probability. bound: one of :data:`BOUNDS`.
        risk: empirical risk in [0, alpha) (0: the fewest that can ever certify alpha).

    Returns:
        The image count.

    Raises:
        ValueError: ``risk`` outside [0, alpha).
    """
    if not 0 <= risk < alpha:
        raise ValueError(f"risk must be in [0, alpha={alpha}), got {risk}")
    n = max(1, math.ceil(math.log(delta) / math.log(1 - alpha)))
    while bound(risk * n, n, delta) > alpha:  # also guards the float rounding of the log ratio
        n += 1
    while n > 1 and bound(risk * (n - 1), n - 1, delta) <= alpha:
        n -= 1
    return n


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
    """Fixed-sequence Learn-then-Test over every distinct score, strict to loose.

    Args:
        scores: (n,) per-image scores (higher: safer).
        losses: (n,) per-image losses in [0, 1] (0/1 for Clopper–Pearson).
        alpha, delta: target risk and failure probability.
        bound: ``bound(loss_sum, n, delta)`` (:data:`BOUNDS`).
        score_name: how the reason names the score.
        start_risk: the sequence starts at the strictest threshold accepting
            ``min_certifiable(alpha, delta, bound, start_risk * alpha)`` images.

    Returns:
        :class:`LTTResult`.

    Raises:
        ValueError: no scores, mismatched lengths, losses outside [0, 1] (or not 0/1 for
            Clopper–Pearson).
    """
    s = np.asarray(scores, np.float64)
    e = np.asarray(losses, np.float64)
    _check_losses(s, e, bound is clopper_pearson_upper)
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


def _check_losses(s: np.ndarray, e: np.ndarray, binary: bool) -> None:
    if not len(s):
        raise ValueError("no calibration images: cannot choose a threshold")
    if len(e) != len(s) or not ((e >= 0) & (e <= 1)).all():
        raise ValueError("losses must be one value in [0, 1] per score")
    if binary and not np.isin(e, (0.0, 1.0)).all():
        raise ValueError("the Clopper-Pearson bound needs 0/1 losses; use hoeffding_bentkus_upper for bounded ones")


def grid_threshold(
    scores: np.ndarray, losses: np.ndarray, candidates: Sequence[float] | np.ndarray, alpha: float, delta: float,
    bound: str = "clopper_pearson", test: str = "bonferroni", score_name: str = "P(no edit)",
) -> LTTResult:
    """Test a few candidate thresholds, fixed before these images were seen, on bound images.

    Args:
        scores: (n,) scores of the bound images (from a scorer not fitted on them).
        losses: (n,) their losses in [0, 1].
        candidates: thresholds chosen without these images' labels (e.g. score quantiles of
            the fit images). ``bonferroni``: each is tested at ``delta / len(candidates)``
            and the loosest passing one is kept. ``fixed_sequence``: tested in the given order at
            ``delta`` until the first failure, the last passing one is kept.
        alpha, delta: target risk and failure probability.
        bound: a key of :data:`VECTOR_BOUNDS` (``clopper_pearson`` needs 0/1 losses).
        test: ``bonferroni`` or ``fixed_sequence``.
        score_name: how the reason names the score.

    Returns:
        :class:`LTTResult` (curve: one row per candidate, in the given order).

    Raises:
        ValueError: bad losses, an unknown bound or test, or no candidates.
    """
    s, e = np.asarray(scores, np.float64), np.asarray(losses, np.float64)
    _check_losses(s, e, bound == "clopper_pearson")
    if bound not in VECTOR_BOUNDS or test not in ("bonferroni", "fixed_sequence"):
        raise ValueError(f"unknown bound {bound!r} or test {test!r}")
    cands = np.asarray(candidates, np.float64)
    if not len(cands):
        raise ValueError("no candidate thresholds")
    level = delta / len(cands) if test == "bonferroni" else delta
    rows, stop = [], False
    for t in cands:
        acc = s >= t
        ucb = VECTOR_BOUNDS[bound](e[acc], level) if acc.any() else 1.0
        ok = not stop and ucb <= alpha
        rows.append({"threshold": t, "n_accepted": int(acc.sum()), "loss_sum": float(e[acc].sum()),
                     "coverage": float(acc.mean()), "risk": float(e[acc].mean()) if acc.any() else float("nan"),
                     "ucb": ucb, "tested": not stop, "passed": ok})
        if test == "fixed_sequence" and not ok:
            stop = True
    curve = pd.DataFrame(rows)
    ok = curve[curve["passed"]]
    how = f"{test} over {len(cands)} candidate thresholds, {bound} bound at level {level:.3g}"
    if not len(ok):
        best = curve.loc[curve["ucb"].idxmin()]
        return LTTResult(None, (
            f"nothing auto-accepted ({how}): the best candidate ({score_name} >= {best.threshold:.4g}, "
            f"{int(best.n_accepted)} of {len(s)} bound images, risk {best.risk:.3f}) has upper bound "
            f"{best.ucb:.3f} > alpha={alpha}"
        ), curve)
    b = ok.loc[ok["threshold"].idxmin()]  # the loosest passing threshold
    return LTTResult(float(b.threshold), (
        f"auto-accept {score_name} >= {b.threshold:.4g}: {int(b.n_accepted)} of {len(s)} bound images, risk "
        f"{b.risk:.3f}, upper bound {b.ucb:.3f} <= alpha={alpha} at delta={delta} ({how})"
    ), curve)
