"""Inspection plans: the consumer's-risk guarantee in simulation, and the audit-guided
plan inspecting fewer images to reject a batch with a known 12% failure rate."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import autolabel as al
from autolabel.audit import audit, corrupt_images
from autolabel.audit.ranker import fit_ranker
from autolabel.formats import read_coco
from autolabel.audit.inspection import guided_plan, plain_plan, rest_plan, run_plan, simulate

DELTA = 0.1


def test_plain_plan_against_iso_2859_scale():
    p = plain_plan(1000, bar=0.9, delta=DELTA)
    assert p.d_max == 100 and 0 < p.c < p.n < 1000
    # a batch at the acceptable quality level (5% failing) passes, one just over the bar rarely does
    ok = np.zeros(1000, bool)
    ok[:50] = True
    bad = np.zeros(1000, bool)
    bad[:101] = True
    assert simulate(p, ok, runs=400)["accept_rate"] >= 0.85
    assert simulate(p, bad, runs=400)["accept_rate"] <= DELTA + 0.045
    with pytest.raises(ValueError, match="bar"):
        plain_plan(100, bar=1.5)
    with pytest.raises(ValueError, match="risk must hold probabilities"):
        guided_plan(np.array([0.2, 1.7]))


@pytest.mark.parametrize("failing", [21, 24, 30])
@pytest.mark.parametrize("audit_kind", ["informative", "random", "adversarial"])
def test_never_accepts_a_bad_batch_more_often_than_delta(failing, audit_kind):
    rng = np.random.default_rng(failing)
    n = 200
    failed = np.zeros(n, bool)
    failed[rng.choice(n, failing, replace=False)] = True
    noise = rng.uniform(0, 1, n)
    risk = {"informative": np.clip(0.6 * failed + 0.5 * noise, 0, 1), "random": noise,
            "adversarial": np.where(failed, 0.3 * noise, 0.5 + 0.5 * noise)}[audit_kind]
    runs = 400
    margin = 3 * np.sqrt(DELTA * (1 - DELTA) / runs)
    for plan in (plain_plan(n, 0.9, DELTA), guided_plan(risk, 0.9, DELTA, risky_at=0.9)):
        rate = simulate(plan, failed, runs=runs, seed=1)["accept_rate"]
        assert rate <= DELTA + margin, (plan.kind, audit_kind, failing, rate)


def test_rest_plan_when_the_census_decides():
    plan = guided_plan(np.array([0.95] * 5 + [0.1] * 45), bar=0.9)
    assert plan.d_max == 5 and len(plan.risky) == 5
    assert rest_plan(plan, 6) is None  # 6 failures in the census: more than the bar allows
    assert rest_plan(plan, 0).n < 45
    f = np.zeros(50, bool)
    f[:5] = True  # the five riskiest images fail: the other 45 may hold no failure at all
    sub = rest_plan(plan, 5)
    assert sub.c == 0 and sub.n >= 0.9 * 45  # zero allowance: P(miss the one failure) <= delta
    f[20] = True  # ... and one of them does
    assert simulate(plan, f, runs=300)["accept_rate"] <= DELTA + 0.05
    seven = guided_plan(np.array([0.95] * 7 + [0.1] * 43), bar=0.9)
    f = np.zeros(50, bool)
    f[:6] = True  # six failures among the seven riskiest: rejected at the sixth, with certainty
    out = run_plan(seven, f, np.random.default_rng(0))
    assert (out.accept, out.inspected, out.found) == (False, 6, 6)


@pytest.fixture(scope="module")
def batch(coco150, yolov5n):
    """50 real COCO val images: labels, yolov5n predictions, and the ranker an audit of one
    12%-failing batch of them fits (self-corruption of those labels; reused for speed)."""
    gt = read_coco(coco150 / "instances.json")
    gt = replace(gt, detections=gt.detections[30:80])
    pred = al.prelabel([str(coco150 / "images" / d.image.file_name) for d in gt], yolov5n, conf=0.001, progress=False)
    info = {d.image.file_name: d.image for d in gt}
    pred = replace(pred, detections=[d.with_image(info[d.image.key.rsplit("/", 1)[-1]]) for d in pred])
    labeled = np.flatnonzero([(~d.crowd).any() for d in gt])
    first = corrupt_images(gt, np.random.default_rng(1).choice(labeled, 6, replace=False), 1)
    return gt, pred, fit_ranker(pred, first, seeds=(5,))


def test_guided_plan_rejects_a_12_percent_batch_with_fewer_images(batch):
    gt, pred, rk = batch
    n = len(gt)
    rng = np.random.default_rng(20261201)
    plain = plain_plan(n, 0.9, DELTA)
    inspected = {"plain": [], "guided": []}
    rejected = {"plain": 0, "guided": 0}
    labeled = np.flatnonzero([(~d.crowd).any() for d in gt])  # an error needs a box to go wrong
    for _ in range(50):
        failed = np.zeros(n, bool)
        failed[rng.choice(labeled, int(round(0.12 * n)), replace=False)] = True  # 6 of 50 images fail
        a = audit(corrupt_images(gt, np.flatnonzero(failed), int(rng.integers(1 << 30))), pred, ranker=rk)
        risk = a.images.set_index("file_name").loc[[d.image.file_name for d in gt], "top_score"].to_numpy()
        for name, plan in (("plain", plain), ("guided", guided_plan(risk, 0.9, DELTA))):
            out = run_plan(plan, failed, rng)
            inspected[name].append(out.inspected)
            rejected[name] += not out.accept
    print({k: (np.mean(v), rejected[k]) for k, v in inspected.items()})  # mean inspected, batches rejected
    assert np.mean(inspected["guided"]) < np.mean(inspected["plain"]), inspected
    assert rejected["guided"] >= 0.7 * 50, rejected  # and it does reject such batches
