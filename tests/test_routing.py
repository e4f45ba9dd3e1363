"""Routing: Learn-then-Test threshold, queues, exports, CLI, and the split experiment's guarantee
on real predictions (coco-val-150 with yolov5n.onnx, BCCD val with yolov8n-bccd.pt)."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import autolabel as al
from autolabel.cli import main
from autolabel.config import ConfigError, RoutingPolicy
from autolabel.core import Detections, Results
from autolabel.formats import read_coco, write_coco
from autolabel.routing import (
    QUEUES, START_RISK, FittedPolicy, clopper_pearson_upper, cross_validate, evaluate, fit_policy,
    hoeffding_bentkus_upper, image_loss, ltt_threshold, min_certifiable, plot_risk_coverage, route,
)
from autolabel.scoring import match_targets

ALPHA = DELTA = 0.1


@pytest.fixture(scope="module")
def coco(coco150, yolov5n):
    """Predictions computed once; every routing test below reuses them (the routing math is cheap)."""
    gt = read_coco(coco150 / "instances.json")
    preds = al.prelabel(str(coco150 / "images"), yolov5n, conf=0.05, progress=False)
    return preds, gt


@pytest.fixture(scope="module")
def bccd_val(bccd):
    names = (bccd / "ImageSets" / "Main" / "val.txt").read_text().split()
    preds = al.prelabel([str(bccd / "JPEGImages" / f"{n}.jpg") for n in names],
                        al.load_detector("yolov8n-bccd.pt"), conf=0.05, progress=False)
    gt = read_coco(bccd / "instances.json")
    keep = {f"{n}.jpg" for n in names}
    return preds, Results([d for d in gt if d.image.file_name in keep], gt.class_names)


@pytest.fixture(scope="module")
def loose_policy(coco):
    """alpha = 0.6 on all 150 images: loose enough that some images are auto-accepted."""
    return fit_policy(*coco, {"alpha": 0.6})


# -- the bound and the fixed sequence ---------------------------------------------------------------------
def test_clopper_pearson_known_values_and_coverage():
    assert clopper_pearson_upper(0, 22, 0.1) == pytest.approx(1 - 0.1 ** (1 / 22))
    assert clopper_pearson_upper(0, 0, 0.1) == 1.0 and clopper_pearson_upper(5, 5, 0.1) == 1.0
    assert (np.diff(clopper_pearson_upper(np.arange(10), 10, 0.1)) > 0).all()
    # the bound is below the true rate in at most delta of the draws
    rng = np.random.default_rng(0)
    for p, n in ((0.05, 40), (0.3, 50), (0.1, 200)):
        k = rng.binomial(n, p, 20000)
        assert (clopper_pearson_upper(k, n, 0.1) < p).mean() <= 0.1 + 0.01
    assert min_certifiable(0.1, 0.1) == 22 and clopper_pearson_upper(0, 21, 0.1) > 0.1


def test_ltt_controls_risk_when_auto_accept_is_feasible():
    """Simulated scores with a known error curve: P(edit | s) = (1 - s) ** 2, s uniform.
    The true risk of threshold t is E[(1-s)^2 | s >= t] = (1 - t)^2 / 3."""
    rng = np.random.default_rng(1)
    true_risk, coverage = [], []
    for _ in range(400):
        s = rng.random(300)
        edit = rng.random(300) < (1 - s) ** 2
        r = ltt_threshold(s, edit, ALPHA, DELTA)
        t = 1.0 if r.threshold is None else r.threshold
        true_risk.append((1 - t) ** 2 / 3)
        coverage.append(1 - t)
    true_risk = np.array(true_risk)
    assert (true_risk > ALPHA).mean() <= DELTA
    assert np.mean(coverage) > 0.25  # the loosest safe threshold (t = 0.45) covers 55%


def test_hoeffding_bentkus_bound_values_and_coverage():
    hb = hoeffding_bentkus_upper
    # zero loss: the p-value is (1 - a) ** n, so 22 images certify 0.1 and 21 do not (as Clopper-Pearson)
    assert hb(0, 22, 0.1) == pytest.approx(1 - 0.1 ** (1 / 22), abs=1e-9) and hb(0, 21, 0.1) > 0.1
    assert min_certifiable(0.1, 0.1, hb) == 22 and hb(3, 0, 0.1) == 1.0 and hb(10, 10, 0.1) == 1.0
    k = np.arange(0, 40, 3)
    assert (hb(k, 40, 0.1) >= clopper_pearson_upper(k, 40, 0.1) - 1e-9).all()  # no tighter than the exact binomial
    assert (np.diff(hb(k, 40, 0.1)) > 0).all() and (hb(k, 40, 0.1) >= k / 40).all()
    # bounded, non-binary losses: the bound is below the true mean in at most delta of the draws
    rng = np.random.default_rng(0)
    for a, b, n in ((1, 9, 30), (2, 3, 60), (0.3, 0.3, 100)):
        losses = rng.beta(a, b, (3000, n))
        assert (hb(losses.sum(1), n, 0.1) < a / (a + b)).mean() <= 0.1


def test_box_error_rate_ltt_controls_risk_in_simulation():
    """Bounded losses with a known risk curve: s uniform, loss = (1 - s)^2 * V with V uniform,
    so the true risk of threshold t is E[(1 - s)^2 / 2 | s >= t] = (1 - t)^2 / 6 (safe from t = 0.225)."""
    rng = np.random.default_rng(2)
    true_risk, coverage = [], []
    for _ in range(300):
        s = rng.random(300)
        r = ltt_threshold(s, (1 - s) ** 2 * rng.random(300), ALPHA, DELTA, hoeffding_bentkus_upper,
                          start_risk=START_RISK["box_error_rate"])
        t = 1.0 if r.threshold is None else r.threshold
        true_risk.append((1 - t) ** 2 / 6)
        coverage.append(1 - t)
    assert (np.array(true_risk) > ALPHA).mean() <= DELTA
    assert np.mean(coverage) > 0.45  # the loosest safe threshold covers 77.5%
    # started at zero loss (22 images) instead, the first test already fails: nothing is accepted
    assert ltt_threshold(s, (1 - s) ** 2 * rng.random(300), ALPHA, DELTA, hoeffding_bentkus_upper).threshold is None
    with pytest.raises(ValueError, match="Clopper-Pearson bound needs 0/1 losses"):
        ltt_threshold(s, np.full(300, 0.5), ALPHA, DELTA)


def test_box_error_rate_loss():
    """One image: GT objects A and B; pre-labels: A exactly (accept) and a box on nothing
    (delete); B is missed (draw): 2 wrong of 2 pre-labels + 1 draw."""
    info = al.core.ImageInfo("a.jpg", 100, 100)
    names = ("cat", "dog")
    gt = Results([Detections.from_xywh(np.array([[0, 0, 20, 20], [50, 50, 20, 20]], np.float32), np.ones(2),
                                       np.array([0, 1]), class_names=names, image=info)], names)
    pred = Results([Detections.from_xywh(np.array([[0, 0, 20, 20], [80, 0, 10, 10]], np.float32),
                                         np.array([0.9, 0.8]), np.array([0, 0]), class_names=names, image=info)], names)
    _, images = match_targets(pred, gt)
    assert image_loss(images, "box_error_rate") == pytest.approx([2 / 3])
    assert image_loss(images, "image_any_edit").tolist() == [1.0]
    _, clean = match_targets(Results([gt[0][:1]], gt.class_names), Results([gt[0][:1]], gt.class_names))
    assert image_loss(clean, "box_error_rate").tolist() == [0.0]
    with pytest.raises(ValueError, match="unknown risk"):
        image_loss(images, "box_recall")


def test_ltt_explains_why_nothing_is_accepted():
    r = ltt_threshold(np.linspace(0, 1, 10), np.zeros(10, bool), ALPHA, DELTA)
    assert r.threshold is None and "at least 22" in r.reason
    r = ltt_threshold(np.linspace(0, 1, 100), np.ones(100, bool), ALPHA, DELTA)
    assert r.threshold is None and "upper bound 1.000 > alpha" in r.reason
    assert r.curve["tested"].sum() == 1 and not r.curve["passed"].any()
    s = np.linspace(0, 1, 100)
    r = ltt_threshold(s, s < 0.5, ALPHA, DELTA)  # the top half is clean: it goes a little past it
    assert r.threshold is not None and 0.4 < r.threshold < 0.5
    assert r.curve.loc[r.curve.passed, "ucb"].max() <= ALPHA
    first_fail = r.curve[r.curve.tested & ~r.curve.passed].iloc[0]
    assert first_fail["ucb"] > ALPHA and first_fail["threshold"] < r.threshold


# -- the experiment's guarantee on real data --------------------------------------------------------------
def _guarantee_holds(cv: pd.DataFrame, alpha: float) -> float:
    """Share of splits whose realized risk is <= alpha (nothing auto-accepted: no risk taken)."""
    return float(((cv["risk"] <= alpha) | (cv["auto_accepted"] == 0)).mean())


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_twenty_splits_coco_guarantee(coco, alpha):
    cv = cross_validate(*coco, {"alpha": alpha, "delta": DELTA}, n_splits=20)
    assert len(cv) == 20 and (cv["calibration_images"] == 75).all() and (cv["images"] == 75).all()
    assert _guarantee_holds(cv, alpha) >= 0.9
    assert cv["coverage"].between(0, 1).all()
    # the naive rule (every pre-label scores >= 0.5) auto-accepts far riskier sets
    assert cv["naive_risk"].mean() > 0.5 and (cv["naive_risk"] > alpha).mean() >= 0.9
    # calibration lowers detection ECE on the test half
    assert cv["ece_after"].mean() < cv["ece_before"].mean() and (cv["ece_after"] < cv["ece_before"]).mean() >= 0.8
    assert cv["auc_no_edit"].mean() > 0.8  # P(no edit) ranks the clean images first out of sample


@pytest.mark.parametrize("risk", ["image_any_edit", "box_error_rate"])
def test_twenty_splits_bccd_guarantee(bccd_val, risk):
    cv = cross_validate(*bccd_val, {"risk": risk, "alpha": ALPHA, "delta": DELTA}, n_splits=20)
    assert _guarantee_holds(cv, ALPHA) >= 0.9
    assert cv["ece_after"].mean() < cv["ece_before"].mean()
    assert (cv["routed_s"] <= cv["review_everything_s"] + 1e-6).all()


def test_twenty_splits_coco_box_error_rate(coco):
    """The box-level risk: mean per-image share of wrong or missed boxes, Hoeffding-Bentkus bound.
    Coverage is 0 here: the pre-labels' mean per-image box error rate is 0.55 (benchmarks/reports)."""
    cv = cross_validate(*coco, "box-error-rate", n_splits=20)
    assert _guarantee_holds(cv, ALPHA) >= 0.9 and cv["coverage"].between(0, 1).all()
    _, truth = match_targets(*coco)
    loss = image_loss(truth, "box_error_rate")
    assert ((loss > 0) & (loss < 1)).any() and (loss <= truth["needs_edit"]).all()
    # the naive rule's realized box error rate is far above alpha
    assert cv["naive_risk"].mean() > 2 * ALPHA


# -- fitting, saving, bad input ------------------------------------------------------------------------------
def test_policy_round_trip_and_default_reason(coco, tmp_path):
    pol = fit_policy(*coco)
    assert pol.threshold is None and "nothing auto-accepted" in pol.reason  # 16 of 150 images need no edit
    assert pol.summary["images"] == 150 and pol.summary["ece_after_in_sample"] < pol.summary["ece_before_in_sample"]
    assert "person" in pol.summary["classes_with_own_calibrator"]
    again = FittedPolicy.load(pol.save(tmp_path / "policy.json"))
    a, b = pol.score(coco[0])[1], again.score(coco[0])[1]
    pd.testing.assert_frame_equal(a, b)
    assert again.model_id == coco[0].model_id and again.config == pol.config


def test_model_id_is_checked(coco, loose_policy):
    preds = coco[0]
    with pytest.raises(ValueError, match="calibrated on model .*yolov5n.* come from 'other@1'"):
        route(replace(preds, model_id="other@1"), loose_policy)
    with pytest.raises(ValueError, match="carry no model id"):
        route(replace(preds, model_id=""), loose_policy)
    assert len(route(replace(preds, model_id=""), loose_policy, check_model=False).manifest) == 150


def test_evidence_boxes_are_required_and_lower_ones_ignored(coco, loose_policy):
    preds = coco[0]
    with pytest.raises(ValueError, match="no box scoring below the pre-label threshold 0.25"):
        route(preds.filter(0.25), loose_policy)
    # boxes under evidence_conf (0.05) change nothing: a prediction run at conf 0.01 routes the same
    extra = Results([Detections.concat([d, replace(d[: 3], scores=np.full(min(3, len(d)), 0.01, np.float32))])
                     for d in preds], preds.class_names, preds.model_id)
    pd.testing.assert_frame_equal(route(extra, loose_policy).manifest, route(preds, loose_policy).manifest)


def test_bad_calibration_sets(coco, tmp_path):
    preds, gt = coco
    with pytest.raises(ValueError, match="no images: a calibration set needs labeled images"):
        fit_policy(preds, Results([], gt.class_names))
    with pytest.raises(ValueError, match="images do not line up"):
        fit_policy(preds, Results(gt.detections[:10], gt.class_names))
    nothing = Results([Detections.empty(preds.class_names, d.image) for d in preds], preds.class_names, "m")
    with pytest.raises(ValueError, match="no pre-labels"):
        fit_policy(nothing, gt)
    with pytest.raises(ConfigError, match="band"):
        RoutingPolicy.load({"band": [0.5, 0.1]})
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="not a routing policy"):
        FittedPolicy.load(tmp_path / "x.json")


def test_classes_without_examples_use_the_global_calibrator(loose_policy):
    pol = loose_policy
    fallback = pol.summary["classes_on_global_fallback"]
    assert "toaster" in fallback and "toaster" not in pol.correct.per_class
    x = np.array([0.3, 0.6, 0.9])
    assert pol.correct(x, ["toaster"] * 3) == pytest.approx(pol.correct.global_(x))


def test_holdout_and_platt_options(coco):
    pol = fit_policy(*coco, {"holdout": 0.5, "method": "platt"})
    assert pol.summary["bound_images"] == 75 and pol.summary["fit_images"] == 75
    assert pol.correct.global_.to_dict()["method"] == "platt"


def test_box_error_rate_policy(coco, tmp_path):
    pol = fit_policy(*coco, {"risk": "box_error_rate", "alpha": 0.8})  # yolov5n: mean box error rate 0.55
    assert pol.accept_score == "box_score" and pol.summary["risk"] == "box_error_rate"
    assert pol.threshold is not None and "1 - E[box error rate] >=" in pol.reason
    m = route(coco[0], pol).manifest
    auto = m[m.queue == "auto_accept"]
    assert len(auto) and (auto.box_score >= pol.threshold).all() and m["box_score"].between(0, 1).all()
    assert (m.loc[m.queue != "auto_accept", "box_score"] < pol.threshold).all()
    assert FittedPolicy.load(pol.save(tmp_path / "p.json")).config.risk == "box_error_rate"
    assert RoutingPolicy.load("box-error-rate").risk == "box_error_rate"
    assert RoutingPolicy.load().risk == "image_any_edit"


# -- routing and exports --------------------------------------------------------------------------------------
def test_route_queues_exports_and_budget(coco, loose_policy, tmp_path):
    preds = coco[0]
    r = route(preds, loose_policy, budget_hours=0.25)
    m = r.manifest
    assert m["file_name"].tolist() == [d.image.file_name for d in preds] and set(m["queue"]) <= set(QUEUES)
    auto = m[m.queue == "auto_accept"]
    assert len(auto) > 0 and (auto.p_no_edit >= loose_policy.threshold).all()
    assert (m.loc[m.queue != "auto_accept", "p_no_edit"] < loose_policy.threshold).all()
    sc = m[m.queue == "scratch"]
    assert (sc.expected_edit_s > sc.expected_scratch_s).all()
    review = m[m.queue == "review"].sort_values("review_rank")
    assert (np.diff(review["priority"].to_numpy()) <= 1e-12).all()
    inb = review["in_budget"].astype(bool).to_numpy()
    assert inb[: inb.sum()].all() and not inb[inb.sum():].any()  # a prefix of the priority order
    assert review.loc[inb, "expected_edit_s"].sum() <= 0.25 * 3600 < review["expected_edit_s"].iloc[: inb.sum() + 1].sum()
    b = r.summary()["budget"]
    assert b["reviewed_images"] == inb.sum() and b["unreviewed_images"] == len(review) - inb.sum()

    written = r.save(tmp_path / "out")
    names = {p.split("/")[-1] for p in written}
    assert {"manifest.csv", "auto_accepted.json", "review_queue.json", "review_queue.txt", "label_config.xml",
            "scratch_queue.txt", "seconds.csv", "summary.json", "risk_coverage.png"} <= names
    accepted = read_coco(tmp_path / "out" / "auto_accepted.json")
    assert [d.image.file_name for d in accepted] == auto["file_name"].tolist()
    assert accepted.model_id == preds.model_id
    for d in accepted:
        e = preds[d.image.file_name].filter(loose_policy.config.prelabel_conf)
        assert np.array_equal(d.xyxy, e.xyxy) and np.array_equal(d.scores, e.scores) and d.labels == e.labels
    order = (tmp_path / "out" / "review_queue.txt").read_text().split()
    assert order == review["file_name"].tolist()
    tasks = json.loads((tmp_path / "out" / "review_queue.json").read_text())
    assert [t["data"]["key"] for t in tasks] == order
    assert [t["data"]["routing_review_rank"] for t in tasks] == list(range(1, len(order) + 1))
    secs = pd.read_csv(tmp_path / "out" / "seconds.csv").set_index("plan")
    assert secs.loc["auto_accept", "seconds"] == 0
    assert secs.loc["routed total", "seconds"] == pytest.approx(secs.loc[list(QUEUES), "seconds"].sum())
    assert secs.loc["routed total", "seconds"] <= secs.loc["review everything", "seconds"]


def test_evaluate_matches_the_manifest(coco, loose_policy):
    preds, gt = coco
    r = route(preds, loose_policy)
    ev = evaluate(r, gt)
    auto = r.manifest.queue.eq("auto_accept")
    assert ev["auto_accepted"] == auto.sum() and ev["coverage"] == pytest.approx(auto.mean())
    assert ev["routed_s"] <= ev["review_everything_s"] < ev["scratch_everything_s"]
    assert 0 <= ev["risk"] <= 1 and ev["ece_after"] < ev["ece_before"]


def test_risk_coverage_plot(loose_policy, tmp_path):
    path = plot_risk_coverage(loose_policy, tmp_path / "rc.png")
    assert (tmp_path / "rc.png").stat().st_size > 5000 and path.endswith("rc.png")


# -- CLI -------------------------------------------------------------------------------------------------------
def test_cli_calibrate_and_route(coco, coco150, tmp_path, capsys):
    preds, _ = coco
    write_coco(preds, tmp_path / "P.json")
    gt = str(coco150 / "instances.json")
    assert main(["calibrate", "--predictions", str(tmp_path / "P.json"), "--ground-truth", gt,
                 "--alpha", "0.6", "--delta", "0.1", "--out", str(tmp_path / "policy.json")]) == 0
    assert json.loads((tmp_path / "policy.json").read_text())["model_id"] == preds.model_id
    assert main(["route", "--predictions", str(tmp_path / "P.json"), "--policy", str(tmp_path / "policy.json"),
                 "--out", str(tmp_path / "routed")]) == 0
    with open(tmp_path / "routed" / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 150 and {"file_name", "queue", "reason", "p_no_edit"} <= set(rows[0])
    assert {r["queue"] for r in rows} <= set(QUEUES)
    auto = [r["file_name"] for r in rows if r["queue"] == "auto_accept"]
    assert auto and [d.image.file_name for d in read_coco(tmp_path / "routed" / "auto_accepted.json")] == auto
    write_coco(replace(preds, model_id="yolov8n@abc"), tmp_path / "other.json")
    capsys.readouterr()
    assert main(["route", "--predictions", str(tmp_path / "other.json"), "--policy", str(tmp_path / "policy.json"),
                 "--out", str(tmp_path / "bad")]) == 2
    assert "calibrated on model" in capsys.readouterr().err
    assert main(["calibrate", "--predictions", str(tmp_path / "P.json"), "--ground-truth", gt, "--risk",
                 "box_error_rate", "--out", str(tmp_path / "box.json")]) == 0
    saved = json.loads((tmp_path / "box.json").read_text())
    assert saved["config"]["risk"] == "box_error_rate" and saved["config"]["alpha"] == 0.1
