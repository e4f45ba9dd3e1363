"""When does training on your own labels pay? The learning curve and what follows from it.

:func:`fit_curve` fits the saved fraction against labeled images, measured by the loop
(:mod:`autolabel.training.loop`), with an inverse power law ``s(n) = a - b * n**-c``
(``scipy.optimize.curve_fit``; ``a`` <= 1 is the saving the model approaches, ``c`` how
fast), and bootstraps it: every draw resamples the points (runs, i.e. seeds) at each labeled-image count
and shifts each point by noise of its own measurement sd (the held-back bootstrap interval read as
+-1.96 sd) combined with the fit's residual sd (how far the points stray from the curve: misfit
and run-to-run spread, so a curve that does not fit gets wide intervals), then refits.
Percentiles of the draws' predictions are the intervals.

:func:`plan` reads the curve: the labeled images a target saving needs, and the break-even
point, the fewest labeled images ``n`` at which the hours the model saves on the rest of the
pool repay the hours spent labeling ``n`` images from scratch plus the training machine's
cost (at the cost profile's wage):

    s(n) * h * (N - n)  >=  n * h + machine_price * train_hours(n) / wage

``h``: human hours to label one image from scratch; ``N``: the pool; ``train_hours(n)``:
cumulative training hours, a straight line fitted to the loop's rounds.

:func:`honesty_check` fits on the early rounds only and sets the prediction beside what the
later rounds measured.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, CostProfile

__all__ = ["power_law", "CurveFit", "fit_curve", "plan", "Plan", "plan_rounds", "honesty_check"]

_BOUNDS = ([-1.0, 0.0, 0.05], [1.0, 50.0, 3.0])  # a (asymptote), b (scale), c (rate)


def power_law(n: Any, a: float, b: float, c: float) -> Any:
    """``a - b * n**-c``: the saved fraction after ``n`` labeled images."""
    return a - b * np.power(np.asarray(n, np.float64), -c)


def _fit(n: np.ndarray, s: np.ndarray) -> np.ndarray | None:
    from scipy.optimize import curve_fit

    p0 = (min(float(s.max()) + 0.05, 1.0), max(float(s.max() - s.min()), 0.05) * float(n.min()) ** 0.5, 0.5)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # covariance not estimable on exact fits: the bootstrap measures it
            p, _ = curve_fit(power_law, n, s, p0=p0, bounds=_BOUNDS, maxfev=5000)
    except (RuntimeError, ValueError):
        return None
    return np.asarray(p, np.float64)


@dataclass(frozen=True)
class CurveFit:
    """A fitted learning curve with its bootstrap draws.

    Attributes:
        params: ``(a, b, c)`` fitted to every point.
        draws: (B, 3) parameters of the bootstrap refits.
        n_fit: the distinct labeled-image counts fitted. level: interval coverage.
        residual_sd: root mean square residual of the fit (divided by points - 3, at least 1).
    """

    params: tuple[float, float, float]
    draws: np.ndarray
    n_fit: tuple[int, ...]
    level: float = 0.95
    residual_sd: float = 0.0

    def __repr__(self) -> str:
        a, b, c = self.params
        return (f"CurveFit(s(n) = {a:.3f} - {b:.3f} n^-{c:.3f}, fitted on n = {list(self.n_fit)}, "
                f"{len(self.draws)} bootstrap draws)")

    def predict(self, n: Any) -> Any:
        """The fitted saved fraction at ``n`` labeled images."""
        return power_law(n, *self.params)

    def interval(self, n: Any) -> tuple[Any, Any]:
        """``(low, high)`` of the saved fraction at ``n`` over the bootstrap draws."""
        n = np.atleast_1d(np.asarray(n, np.float64))
        pred = np.stack([power_law(n, *d) for d in self.draws]) if len(self.draws) else np.full((1, len(n)), np.nan)
        q = 50 * (1 - self.level)
        lo, hi = np.percentile(pred, [q, 100 - q], axis=0)
        return (lo, hi) if len(n) > 1 else (float(lo[0]), float(hi[0]))

    def images_for(self, target: float) -> tuple[float, float, float]:
        """Labeled images to reach ``target`` saved fraction: ``(fit, low, high)``; ``inf``
        where the curve levels off below the target."""
        def need(p: np.ndarray) -> float:
            a, b, c = p
            return float((b / (a - target)) ** (1 / c)) if a > target and b > 0 else (1.0 if a > target else np.inf)

        point = need(np.asarray(self.params))
        d = np.array([need(p) for p in self.draws]) if len(self.draws) else np.array([point])
        q = 50 * (1 - self.level)  # order statistics, not interpolation: a draw that never gets there stays inf
        return point, float(np.percentile(d, q, method="lower")), float(np.percentile(d, 100 - q, method="higher"))


def fit_curve(
    labeled: Sequence[float], saved: Sequence[float],
    noise_sd: Sequence[float] | None = None, n_boot: int = 500, seed: int = 0, level: float = 0.95,
) -> CurveFit:
    """Fit ``s(n) = a - b n^-c`` to measured points, with bootstrap draws.

    Args:
        labeled: labeled images of each point. saved: its saved fraction.
        noise_sd: each point's measurement sd (e.g. (ci95 high - low) / 3.92); drawn into
            every bootstrap point with the residual sd (default: the residual sd only).
        n_boot: bootstrap refits. seed: their random state. level: interval coverage.

    Returns:
        The :class:`CurveFit`.

    Raises:
        ValueError: fewer than 3 distinct labeled-image counts (3 parameters), or no fit.
    """
    n, s = np.asarray(labeled, np.float64), np.asarray(saved, np.float64)
    if len(n) != len(s) or not len(n):
        raise ValueError(f"labeled and saved must be equally long and non-empty ({len(n)} vs {len(s)})")
    counts = np.unique(n)
    if len(counts) < 3:
        raise ValueError(f"the curve has 3 parameters: fit it on at least 3 distinct labeled-image counts, got {counts}")
    params = _fit(n, s)
    if params is None:
        raise ValueError("the inverse power law did not converge on these points")
    resid = s - power_law(n, *params)
    rsd = float(np.sqrt(np.sum(resid ** 2) / max(len(n) - 3, 1)))
    sd = np.hypot(np.zeros(len(n)) if noise_sd is None else np.asarray(noise_sd, np.float64), rsd)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(n == c) for c in counts]
    draws = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(g, len(g)) for g in groups])
        p = _fit(n[idx], s[idx] + rng.normal(0.0, 1.0, len(idx)) * sd[idx])
        if p is not None:
            draws.append(p)
    a, b, c = (float(x) for x in params)
    return CurveFit((a, b, c), np.array(draws).reshape(-1, 3), tuple(int(k) for k in counts), level, rsd)


@dataclass(frozen=True)
class Plan:
    """What the curve says about one project (see :func:`plan`); ``(fit, low, high)`` triples."""

    target: float
    images_for_target: tuple[float, float, float]
    break_even: tuple[float | None, float | None, float | None]
    pool_images: int
    hours_per_image: float
    machine_price_per_hour: float
    wage: float

    def __repr__(self) -> str:
        t = self.images_for_target
        b = self.break_even
        be = "never" if b[0] is None else f"{b[0]:.0f} images ({_num(b[1])}-{_num(b[2])})"
        return (f"Plan({self.target:.0%} saved needs {t[0]:.0f} labeled images ({t[1]:.0f}-{t[2]:.0f}); "
                f"break-even on a {self.pool_images}-image pool: {be})")


def _num(x: float | None) -> str:
    return "never" if x is None else f"{x:.0f}"


def plan(
    curve: CurveFit, pool_images: int, hours_per_image: float, train_minutes: tuple[Sequence[float], Sequence[float]],
    target: float = 0.5, profile: str | CostProfile = DEFAULT_PROFILE, machine_price_per_hour: float | None = None,
) -> Plan:
    """Labeled images for a target saving, and the break-even point (module docs).

    Args:
        curve: :func:`fit_curve`'s result.
        pool_images: images the project must label in all (``N``).
        hours_per_image: human hours to label one image from scratch (the loop's
            ``labeling_hours / labeled_images``).
        train_minutes: ``(labeled images, cumulative training minutes)`` of measured rounds;
            a straight line through them prices training at any ``n``.
        target: the saved fraction wanted.
        profile: wage (``hourly_wage``; piece rates: their implied rate per hour of drawing)
            and ``machine_price_per_hour``.
        machine_price_per_hour: overrides the profile's (e.g. a GPU-hour price).

    Returns:
        The :class:`Plan`.
    """
    p = CostProfile.load(profile)
    wage = p.hourly_wage if p.hourly_wage is not None else (p.price_per_box or 0.0) * 3600 / p.draw_s
    price = p.machine_price_per_hour if machine_price_per_hour is None else machine_price_per_hour
    tn, tm = np.asarray(train_minutes[0], np.float64), np.asarray(train_minutes[1], np.float64)
    slope, icpt = np.polyfit(tn, tm, 1) if len(np.unique(tn)) > 1 else (float(tm.mean() / max(tn.mean(), 1)), 0.0)
    n = np.arange(1, pool_images, dtype=np.float64)
    machine_h = price * np.maximum(icpt + slope * n, 0.0) / 60 / max(wage, 1e-12)

    def first(params: Sequence[float]) -> float | None:
        net = power_law(n, *params) * hours_per_image * (pool_images - n) - n * hours_per_image - machine_h
        ok = np.flatnonzero(net >= 0)
        return float(n[ok[0]]) if len(ok) else None

    point = first(curve.params)
    found = [first(d) for d in curve.draws]
    vals = np.array([np.inf if v is None else v for v in found]) if found else np.array([np.inf])
    q = 50 * (1 - curve.level)
    lo, hi = (float(v) for v in np.percentile(vals, [q, 100 - q]))
    return Plan(target, curve.images_for(target), (point, None if np.isinf(lo) else lo, None if np.isinf(hi) else hi),
                int(pool_images), float(hours_per_image), float(price), float(wage))


def plan_rounds(
    df: Any, project_images: int, target: float | None = None, profile: str | CostProfile = DEFAULT_PROFILE,
    machine_price_per_hour: float | None = None, n_boot: int = 500,
) -> tuple[CurveFit, Plan]:
    """:func:`fit_curve` and :func:`plan` from the loop's rounds (:meth:`LoopResult.to_pandas`
    of one strategy, runs concatenated): hours per image and training minutes as measured.

    Args:
        df: the rounds. project_images: images the project must label in all.
        target: saved fraction wanted (default: the mean measured at the last round).
        profile, machine_price_per_hour: see :func:`plan`. n_boot: bootstrap refits.
    """
    sd = (df["saved_fraction_ci95_high"] - df["saved_fraction_ci95_low"]) / 3.92
    curve = fit_curve(df["labeled_images"], df["saved_fraction"], sd, n_boot)
    cum = df.sort_values("round").groupby("seed")["train_minutes"].cumsum()
    if target is None:
        target = round(float(df.loc[df["labeled_images"] == df["labeled_images"].max(), "saved_fraction"].mean()), 2)
    hours = float((df["labeling_hours"] / df["labeled_images"]).mean())
    return curve, plan(curve, project_images, hours, (df.loc[cum.index, "labeled_images"], cum), target, profile,
                       machine_price_per_hour)


def honesty_check(df: Any, early_max: int = 50, n_boot: int = 500, seed: int = 0) -> tuple[CurveFit, Any]:
    """Fit on the rounds with ``labeled_images <= early_max``, predict every later count.

    Args:
        df: rounds of one strategy (:meth:`LoopResult.to_pandas`, runs concatenated).

    Returns:
        ``(curve, table)``: the early fit, and a DataFrame per later count: measured mean
        over runs, the prediction and its interval, and whether the interval holds the measurement.
    """
    import pandas as pd

    early = df[df["labeled_images"] <= early_max]
    sd = (early["saved_fraction_ci95_high"] - early["saved_fraction_ci95_low"]) / 3.92
    curve = fit_curve(early["labeled_images"], early["saved_fraction"], sd, n_boot, seed)
    later = df[df["labeled_images"] > early_max].groupby("labeled_images")["saved_fraction"].agg(["mean", "size"])
    rows = []
    for n, r in later.iterrows():
        lo, hi = curve.interval(n)
        rows.append({"labeled_images": int(n), "runs": int(r["size"]), "measured_saved_fraction": float(r["mean"]),
                     "predicted_saved_fraction": float(curve.predict(n)), "ci95_low": lo, "ci95_high": hi,
                     "inside": bool(lo <= r["mean"] <= hi)})
    return curve, pd.DataFrame(rows)
