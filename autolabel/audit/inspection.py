"""Inspection plans for a labeled batch: how many images to inspect, how many failures
to allow, with an exact guarantee, plain or guided by the label audit.

An image *fails* when any of its boxes is wrong or missing. A batch of ``N`` images
passes the bar when at most ``d_max = floor((1 - bar) * N)`` of them fail. Both plans
guarantee the consumer's risk: a batch with more than ``d_max`` failing images is
accepted with probability at most ``delta`` (exact, hypergeometric: the images are a
finite batch, sampled without replacement, as in ISO 2859-2's plans for isolated lots).

**Plain plan** (:func:`plain_plan`): a single sampling plan ``(n, c)``: inspect ``n``
images drawn at random, accept when at most ``c`` fail. ``n`` is the smallest size with a
``c`` such that ``P(X <= c | D = d_max + 1) <= delta`` (consumer) and
``P(X <= c | D = floor(aql * N)) >= 1 - producer_risk`` (a batch at the acceptable
quality level passes). Inspection stops as soon as ``c + 1`` failures are seen
(curtailment: the decision is the same).

**Guided plan** (:func:`guided_plan`): the audit's per-image error probability splits
the batch into a *risky* stratum R (risk >= ``risky_at``), inspected in full, highest risk
first, and the rest S. The census gives R's failure count ``D_R`` exactly, so the batch
passes iff ``D_S <= d_max - D_R``: S gets the plain plan for that allowance
(:func:`rest_plan`; ``D_R > d_max`` rejects at once, an allowance covering all of S
accepts). The estimator of S is the plain plan's exact hypergeometric one; combining it
with an exact count needs no Bonferroni split. *Guarantee*: ``D_R`` is a fixed number
once R is chosen (the strata depend on the audit, never on the inspection), so
P(accept | D_R + D_S > d_max) = P(S-plan accepts | D_S > d_max - D_R) <= delta. The
S sample is drawn at random and only then inspected highest risk first: the order
changes when inspection stops (at the S-plan's (c + 1)th failure), never the decision,
and a good audit brings the failures first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["Plan", "Outcome", "plain_plan", "guided_plan", "rest_plan", "run_plan", "simulate"]


def _check(batch: int, bar: float, delta: float) -> None:
    if batch < 1:
        raise ValueError(f"batch must hold at least one image, got {batch}")
    if not 0 < bar < 1:
        raise ValueError(f"bar (the pass rate to certify) must be in (0, 1), got {bar}")
    if not 0 < delta < 1:
        raise ValueError(f"delta (the consumer's risk) must be in (0, 1), got {delta}")


@dataclass(frozen=True)
class Plan:
    """An inspection plan for a batch of ``batch`` images.

    ``kind`` "plain": inspect ``n`` random images, accept with at most ``c`` failures.
    ``kind`` "guided": inspect the ``risky`` images (positions into the batch, highest
    risk first) in full, then the rest by :func:`rest_plan`; ``order`` ranks the whole
    batch by risk (the order sampled images are inspected in)."""

    kind: str
    batch: int
    bar: float
    delta: float
    d_max: int
    n: int
    c: int = -1
    risky: tuple[int, ...] = ()
    order: tuple[int, ...] = ()
    aql: float | None = None
    producer_risk: float = 0.1

    def describe(self) -> str:
        if self.kind == "plain":
            return (f"plain: inspect {self.n} of {self.batch} images at random; accept if at most {self.c} fail "
                    f"(stop at failure number {self.c + 1}); P(accept | > {self.d_max} failing) <= {self.delta}")
        return (f"guided: inspect the {len(self.risky)} riskiest images in full (D_R failures; reject once "
                f"D_R > {self.d_max}); then a random sample of the other {self.batch - len(self.risky)} by the plain "
                f"plan for allowance {self.d_max} - D_R, inspected highest risk first, stopping at its failure number "
                f"c + 1; P(accept | > {self.d_max} failing) <= {self.delta}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "batch": self.batch, "bar": self.bar, "delta": self.delta, "d_max": self.d_max,
                "n": self.n, "c": self.c, "risky": len(self.risky), "rule": self.describe()}


def plain_plan(batch: int, bar: float = 0.9, delta: float = 0.1, aql: float | None = None,
               producer_risk: float = 0.1) -> Plan:
    """The smallest single sampling plan with the consumer's and producer's risks.

    Args:
        batch: images in the batch (N).
        bar: pass rate to certify (0.9: at most 10% of images fail).
        delta: consumer's risk: P(accept | more than floor((1 - bar) N) fail) <= delta.
        aql: acceptable failure rate (default (1 - bar) / 2).
        producer_risk: P(reject | failure rate aql) <= this.

    Returns:
        A plain :class:`Plan` (``n == batch`` and ``c == d_max`` when no smaller plan works).

    Raises:
        ValueError: arguments out of range.
    """
    _check(batch, bar, delta)
    d_max = math.floor((1 - bar) * batch + 1e-9)
    good = math.floor((aql if aql is not None else (1 - bar) / 2) * batch + 1e-9)
    return _plain(batch, d_max, min(good, d_max), delta, producer_risk, bar)


@lru_cache(maxsize=1024)
def _plain(batch: int, d_max: int, good: int, delta: float, producer_risk: float, bar: float) -> Plan:
    """The smallest ``(n, c)`` with P(X <= c | d_max + 1 failing) <= delta and
    P(X <= c | good failing) >= 1 - producer_risk; the census when none is smaller."""
    from scipy.stats import hypergeom

    bad = min(d_max + 1, batch)
    for n in range(1, batch + 1):
        c = np.arange(n + 1)
        consumer = hypergeom.cdf(c, batch, bad, n) <= delta
        if not consumer.any():
            continue
        cmax = int(c[consumer].max())
        if hypergeom.cdf(cmax, batch, good, n) >= 1 - producer_risk:
            return Plan("plain", batch, bar, delta, d_max, n, cmax)
    return Plan("plain", batch, bar, delta, d_max, batch, d_max)


def guided_plan(risk: np.ndarray, bar: float = 0.9, delta: float = 0.1, risky_at: float = 0.9,
                aql: float | None = None, producer_risk: float = 0.1) -> Plan:
    """A plan stratified by the audit.

    Args:
        risk: (N,) each image's audit risk of failing, in batch order (e.g. ``top_score``
            of :attr:`autolabel.audit.Audit.images`: its likeliest error's score).
        bar: pass rate to certify.
        delta: consumer's risk (the guarantee holds whatever ``risk`` is).
        risky_at: images at ``risk >= risky_at`` form the risky stratum (inspected in full).
        aql, producer_risk: as :func:`plain_plan`, for the rest's plan.

    Returns:
        A guided :class:`Plan`; its rest plan is fixed once the risky stratum's failures
        are counted (:func:`rest_plan`).

    Raises:
        ValueError: arguments out of range or risks outside [0, 1].
    """
    r = np.asarray(risk, np.float64)
    _check(len(r), bar, delta)
    if not np.isfinite(r).all() or (r < 0).any() or (r > 1).any():
        raise ValueError("risk must hold probabilities in [0, 1]")
    d_max = math.floor((1 - bar) * len(r) + 1e-9)
    order = np.argsort(-r, kind="stable")
    risky = order[r[order] >= risky_at]
    return Plan("guided", len(r), bar, delta, d_max, len(risky), risky=tuple(int(i) for i in risky),
                order=tuple(int(i) for i in order), aql=aql, producer_risk=producer_risk)


@lru_cache(maxsize=4096)
def rest_plan(plan: Plan, failed_in_risky: int) -> Plan | None:
    """The plain plan for the rest of a guided plan once its risky stratum holds
    ``failed_in_risky`` failures: allowance ``d_max - failed_in_risky`` among the
    ``batch - len(risky)`` others. ``None`` when the decision is already certain (reject:
    the allowance is negative; accept: it covers every other image)."""
    n_rest = plan.batch - len(plan.risky)
    allow = plan.d_max - failed_in_risky
    if allow < 0 or allow >= n_rest:
        return None
    aql = plan.aql if plan.aql is not None else (1 - plan.bar) / 2
    good = math.floor(min(aql * plan.batch, allow / 2))  # the rest's share of an acceptable batch
    return _plain(n_rest, allow, good, plan.delta, plan.producer_risk, 1 - allow / n_rest)


@dataclass(frozen=True)
class Outcome:
    """One inspection: ``accept``, images ``inspected``, failures ``found``."""

    accept: bool
    inspected: int
    found: int


def run_plan(plan: Plan, failed: np.ndarray, rng: np.random.Generator) -> Outcome:
    """Carry out ``plan`` on a batch whose images fail as ``failed`` ((N,) bool, what an
    inspector would find), drawing the random samples from ``rng``."""
    f = np.asarray(failed, bool)
    if len(f) != plan.batch:
        raise ValueError(f"plan is for {plan.batch} images, got {len(f)}")
    if plan.kind == "plain":
        seen = f[rng.permutation(plan.batch)[:plan.n]]
        cum = np.cumsum(seen)
        over = np.flatnonzero(cum > plan.c)
        if len(over):
            return Outcome(False, int(over[0]) + 1, plan.c + 1)
        return Outcome(True, plan.n, int(cum[-1]) if len(cum) else 0)
    d_r = 0
    for k, i in enumerate(plan.risky):  # highest risk first; a certain rejection stops at once
        d_r += int(f[i])
        if d_r > plan.d_max:
            return Outcome(False, k + 1, d_r)
    sub = rest_plan(plan, d_r)
    if sub is None:  # the allowance covers every other image
        return Outcome(True, len(plan.risky), d_r)
    in_risky = np.zeros(plan.batch, bool)
    in_risky[list(plan.risky)] = True
    rest = np.flatnonzero(~in_risky)
    chosen = np.zeros(plan.batch, bool)
    chosen[rest[rng.permutation(len(rest))[:sub.n]]] = True  # the random sample decides ...
    ranked = np.asarray(plan.order, np.int64)
    seen = f[ranked[chosen[ranked]]]  # ... its order of inspection only changes when we stop
    cum = np.cumsum(seen)
    over = np.flatnonzero(cum > sub.c)
    if len(over):
        return Outcome(False, len(plan.risky) + int(over[0]) + 1, d_r + sub.c + 1)
    return Outcome(True, len(plan.risky) + sub.n, d_r + (int(cum[-1]) if len(cum) else 0))


def simulate(plan: Plan, failed: np.ndarray, runs: int = 200, seed: int = 0) -> dict[str, float]:
    """Run ``plan`` ``runs`` times on one batch: ``accept_rate`` and ``mean_inspected``."""
    rng = np.random.default_rng(seed)
    out = [run_plan(plan, failed, rng) for _ in range(runs)]
    return {"accept_rate": float(np.mean([o.accept for o in out])),
            "mean_inspected": float(np.mean([o.inspected for o in out]))}
