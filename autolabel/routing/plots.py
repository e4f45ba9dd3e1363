"""The risk-coverage plot of a fitted policy."""

from __future__ import annotations

import os
from typing import Any

from autolabel.routing.bounds import BOUND_NAMES, BOUNDS
from autolabel.routing.policy import FittedPolicy, sequence_start

__all__ = ["plot_risk_coverage", "RISK_LABEL"]

RISK_LABEL = {"image_any_edit": "share needing an edit", "box_error_rate": "mean box error rate"}


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
        name = BOUND_NAMES.get(bound, policy.summary.get('bound', 'upper'))
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
    ax.set(xlabel="coverage (share auto-accepted)", ylabel=RISK_LABEL[cfg.risk], xlim=(0, 1), ylim=(0, 1))
    ax.set_title(f"risk-coverage, {policy.model_id or 'model ?'}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if path is None:
        return ax
    fig = fig or ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
