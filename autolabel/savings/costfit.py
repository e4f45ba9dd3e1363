"""Fit a cost profile to your own team's measured time.

Given one row per finished image (or per annotation) with its edit counts
(:data:`autolabel.matching.EDIT_KINDS`, from :mod:`autolabel.matching`) and the seconds a person
spent on it, fit the linear model the savings module prices with

    seconds = image_overhead_s + verify_s * accept + adjust_s * (adjust + adjust_relabel)
              + relabel_s * (relabel + adjust_relabel) + delete_s * delete + draw_s * draw

by non-negative least squares (``scipy.optimize.nnls``: no action takes negative time).
Images labeled without pre-labels are rows with only ``draw`` counts: they pin
``draw_s`` and ``image_overhead_s`` (the from-scratch baseline). Each constant gets a
95% percentile-bootstrap interval over rows; ``r2`` says how much of the variation in
measured time the model explains. A constant no row exercises (e.g. no relabels) is
not estimated: the base profile's value is kept and marked. Review passes, currency and
prices are taken from the base profile (a task's measured time does not include review).

:func:`autolabel.savings.measure.measure` builds those rows from pairs of (pre-labels,
final boxes) and fits; :func:`autolabel.labelstudio.pull` feeds it from a Label Studio
project, :func:`~autolabel.savings.measure.measure_cvat` from a CVAT export.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pydantic import ValidationError

from autolabel.config import DEFAULT_PROFILE, CostProfile
from autolabel.matching import EDIT_KINDS

__all__ = ["FIT_PARAMS", "CostFit", "design_matrix", "fit_costs"]

FIT_PARAMS = ("image_overhead_s", "verify_s", "adjust_s", "relabel_s", "delete_s", "draw_s")
# rows: 1 (the image) followed by EDIT_KINDS; columns: FIT_PARAMS
_DESIGN = np.array(
    [
        [1, 0, 0, 0, 0, 0],  # image
        [0, 1, 0, 0, 0, 0],  # accept
        [0, 0, 1, 0, 0, 0],  # adjust
        [0, 0, 0, 1, 0, 0],  # relabel
        [0, 0, 1, 1, 0, 0],  # adjust_relabel
        [0, 0, 0, 0, 1, 0],  # delete
        [0, 0, 0, 0, 0, 1],  # draw
    ],
    np.float64,
)


def design_matrix(counts: np.ndarray) -> np.ndarray:
    """The fit's regressors.

    Args:
        counts: (rows, 6) edit counts in :data:`EDIT_KINDS` order.

    Returns:
        (rows, 6) float64 regressors in :data:`FIT_PARAMS` order (1 for the image,
        ``adjust_relabel`` counted under both ``adjust_s`` and ``relabel_s``).
    """
    c = np.asarray(counts, np.float64).reshape(-1, len(EDIT_KINDS))
    return np.hstack([np.ones((len(c), 1)), c]) @ _DESIGN


@dataclass(eq=False)
class CostFit:
    """A fitted cost profile and how well it explains the measured time.

    ``table``: one row per constant in :data:`FIT_PARAMS` with ``estimate``,
    ``ci_low``/``ci_high`` (95% bootstrap), ``base`` (the base profile's value),
    ``rows`` (rows that exercise it) and ``status`` (``fitted``, ``fixed`` or
    ``not observed``); ``profile``: the base profile with the estimates in place.
    """

    profile: CostProfile
    table: Any
    r2: float
    rmse_s: float
    n_rows: int
    total_seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the constants with intervals, ``r2``, ``rmse_s`` and ``rows``."""
        return {
            "rows": self.n_rows,
            "measured_seconds": self.total_seconds,
            "r2": self.r2,
            "rmse_s": self.rmse_s,
            "constants": {
                p: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for p, r in self.table.to_dict(orient="index").items()
            },
        }

    def to_yaml(self, path: str | os.PathLike) -> str:
        """Write the profile as a cost profile YAML (``CostProfile.load(path)`` reads it back)."""
        import yaml

        lines = [
            f"# Fitted by autolabel from {self.n_rows} measured rows: R^2 = {self.r2:.3f}, RMSE = {self.rmse_s:.2f} s."
        ]
        for p, r in self.table.iterrows():
            if r["status"] == "fitted":
                lines.append(
                    f"# {p}: {r['estimate']:.3f} s, 95% interval {r['ci_low']:.3f}-{r['ci_high']:.3f} ({r['rows']} rows)"
                )
            else:
                lines.append(f"# {p}: {r['status']}, kept at {r['estimate']:.3f} s")
        values = {
            k: round(v, 4) if k in FIT_PARAMS else v for k, v in self.profile.model_dump(exclude_none=True).items()
        }
        body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True, width=120)
        path = str(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n" + body)
        return path

    def __repr__(self) -> str:
        est = ", ".join(f"{p}={v:.2f}" for p, v in self.table["estimate"].items())
        return f"CostFit({self.n_rows} rows, R^2={self.r2:.3f}, RMSE={self.rmse_s:.2f} s; {est})"


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    if a.shape[1] == 0:
        return np.zeros(0)
    return nnls(a, y)[0]


def fit_costs(
    rows: Any,
    base: str | CostProfile = DEFAULT_PROFILE,
    seconds: str = "seconds",
    fixed: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> CostFit:
    """Fit the cost constants to measured seconds by non-negative least squares.

    Args:
        rows: a DataFrame (or anything ``pandas.DataFrame`` accepts) with one column per
            edit kind in :data:`EDIT_KINDS` (counts per row) and a ``seconds`` column;
            rows without a finite time are left out.
        base: the profile that supplies review passes, money and unobserved constants.
        seconds: the name of the time column (seconds).
        fixed: constants pinned to known values in seconds (their share is subtracted
            before fitting).
        n_boot: bootstrap resamples for the 95% intervals (0: none).
        seed: the bootstrap's random seed.

    Returns:
        A :class:`CostFit`.

    Raises:
        ValueError: missing columns, no usable rows, negative counts, unknown fixed
            names, or estimates that break the profile's rules (e.g. ``verify_s``
            above ``relabel_s`` with few relabels: pin one with ``fixed``).
    """
    import pandas as pd

    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(FIT_PARAMS))
    if unknown:
        raise ValueError(f"cannot fix {unknown}: not fitted constants {FIT_PARAMS}")
    x, y = _regressors(pd.DataFrame(rows), seconds)
    pin = np.array([fixed.get(p, np.nan) for p in FIT_PARAMS])
    pinned = np.isfinite(pin)
    used = (x != 0).sum(0)
    free = ~pinned & (used > 0)
    est, lo, hi = _solve(x, y, pin, free, n_boot, seed)
    base_p = CostProfile.load(base)
    base_v = np.array([getattr(base_p, p) for p in FIT_PARAMS], np.float64)
    status = np.where(pinned, "fixed", np.where(free, "fitted", "not observed"))
    final = np.where(free | pinned, est, base_v)
    pred = x @ np.where(free | pinned, est, 0.0)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    table = pd.DataFrame(
        {"estimate": final, "ci_low": lo, "ci_high": hi, "base": base_v, "rows": used.astype(int), "status": status},
        index=pd.Index(FIT_PARAMS, name="constant"),
    )
    desc = f"fitted to {len(y)} measured rows (R^2 {r2:.3f}) on top of: {base_p.description or 'custom profile'}"
    profile = _profile(base_p, {p: float(v) for p, v in zip(FIT_PARAMS, final)}, desc)
    return CostFit(profile, table, r2, math.sqrt(ss_res / len(y)), len(y), float(y.sum()))


def _regressors(df: Any, seconds: str) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix and the measured seconds of the rows with a finite time."""
    import pandas as pd

    missing = [c for c in (*EDIT_KINDS, seconds) if c not in df.columns]
    if missing:
        raise ValueError(f"cost fit needs columns {missing}; got {list(df.columns)}")
    y_all = pd.to_numeric(df[seconds], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(y_all)
    if not ok.any():
        raise ValueError(f"no row has a measured time in column {seconds!r}: nothing to fit")
    counts = df.loc[ok, list(EDIT_KINDS)].to_numpy(np.float64)
    if (counts < 0).any():
        raise ValueError("edit counts must not be negative")
    return design_matrix(counts), y_all[ok]


def _solve(x: np.ndarray, y: np.ndarray, pin: np.ndarray, free: np.ndarray, n_boot: int,
           seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates (the ``free`` constants by NNLS on what the pinned ones leave) and their
    95% bootstrap intervals (NaN where not fitted)."""
    pinned = np.isfinite(pin)
    target = y - x[:, pinned] @ pin[pinned]
    est = np.zeros(len(FIT_PARAMS))
    xf = x[:, free]
    est[free] = _nnls(xf, target)
    est[pinned] = pin[pinned]
    lo = np.full(len(FIT_PARAMS), np.nan)
    hi = np.full(len(FIT_PARAMS), np.nan)
    if n_boot > 0 and free.any():
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, int(free.sum())))
        for b in range(n_boot):
            i = rng.integers(0, len(y), len(y))
            boots[b] = _nnls(xf[i], target[i])
        lo[free], hi[free] = np.percentile(boots, [2.5, 97.5], axis=0)
    return est, lo, hi


def _profile(base: CostProfile, values: dict[str, float], description: str) -> CostProfile:
    try:
        return CostProfile.model_validate({**base.model_dump(), **values, "description": description})
    except ValidationError as e:
        shown = ", ".join(f"{p}={v:.3f}" for p, v in values.items())
        why = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        raise ValueError(
            f"the fitted constants ({shown}) do not make a valid cost profile: {why}. "
            "Constants backed by few rows are unreliable: pin them with fixed={...}"
        ) from e
