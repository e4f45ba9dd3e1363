"""Routing: bounds and threshold tests (in simulation, where the truth is known), queues, exports,
CLI, and the guarantee of the learned scorer on real predictions (coco-person with yolov5n.onnx,
pre-labeled through the CLI as a user would; coco-val-150 for the product model's plumbing)."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import autolabel as al
from autolabel.cli import main
from autolabel.config import ConfigError, RoutingPolicy
from autolabel.core import Detections, Results
from autolabel.formats import read_coco, write_coco
from conftest import DATA
from autolabel.routing import (
    QUEUES, START_RISK, FittedPolicy, clopper_pearson_upper, cross_validate, evaluate, fit_policy, grid_threshold,
    hoeffding_bentkus_upper, image_loss, ltt_threshold, match_targets, min_certifiable, plot_risk_coverage, route,
    wsr_upper,
)

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
    gt = read_coco(bccd / "instances.json", invalid_boxes="drop")  # two zero-size boxes
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


# -- exact bounds and grid tests, in simulation -------------------------------------------------------------
def test_wsr_bound_holds_and_beats_hoeffding_bentkus_on_mostly_zero_losses():
    rng = np.random.default_rng(3)
    for p0, n in ((0.8, 100), (0.5, 60)):  # loss 0 with probability p0, else uniform on [0, 1]
        mean = (1 - p0) / 2
        draws = [np.where(rng.random(n) < p0, 0.0, rng.random(n)) for _ in range(1500)]
        ucb = np.array([wsr_upper(x, 0.1) for x in draws])
        assert (ucb < mean).mean() <= 0.1 + 0.015  # holds in at least 1 - delta of the draws
        hb = hoeffding_bentkus_upper(np.array([x.sum() for x in draws]), n, 0.1)
        assert np.median(ucb) < np.median(hb)  # and is tighter when most losses are 0
    assert wsr_upper([], 0.1) == 1.0 and wsr_upper(np.zeros(50), 0.1) < 0.1
    with pytest.raises(ValueError, match="losses in"):
        wsr_upper([1.5], 0.1)


@pytest.mark.parametrize("test", ["bonferroni", "fixed_sequence"])
def test_grid_threshold_controls_risk_in_simulation(test):
    """P(edit | s) = (1 - s) ** 2 with s uniform: the true risk of threshold t is (1 - t)^2 / 3,
    alpha 0.1 is safe up to a coverage of 55%. Candidates at fixed coverage levels."""
    rng = np.random.default_rng(4)
    cands = 1 - np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])  # a sequence starts where >= 22 images are likely
    true_risk, accepted = [], []
    for _ in range(300):
        s = rng.random(500)
        r = grid_threshold(s, rng.random(500) < (1 - s) ** 2, cands, ALPHA, DELTA, test=test)
        accepted.append(r.threshold is not None)
        true_risk.append(0.0 if r.threshold is None else (1 - r.threshold) ** 2 / 3)
    true_risk = np.array(true_risk)
    assert np.mean(accepted) > 0.9  # the test can accept, so the rate below can fail
    assert (true_risk > ALPHA).mean() <= DELTA
    assert (1 - np.sqrt(3 * true_risk[np.array(accepted)])).mean() > 0.3  # coverage of what was accepted


def test_tree_ensemble_equals_scikit_learn_and_round_trips():
    from sklearn.ensemble import GradientBoostingClassifier

    from autolabel.routing.scorers import GBM_PARAMS, TreeEnsemble, constant_ensemble, fit_tree_ensemble

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(float)
    ens = fit_tree_ensemble(x, y, "classifier", ("a", "b", "c"))
    ref = GradientBoostingClassifier(random_state=0, **GBM_PARAMS).fit(x, y)
    assert np.abs(ens(x) - ref.predict_proba(x)[:, 1]).max() < 1e-9
    again = TreeEnsemble.from_dict(json.loads(json.dumps(ens.to_dict())))
    assert np.array_equal(again(x), ens(x))
    with pytest.raises(ValueError, match="same outcome"):
        fit_tree_ensemble(x, np.ones(300), "classifier", ("a", "b", "c"))
    assert np.allclose(constant_ensemble("classifier", ("a", "b", "c"), 0.0)(x), 1e-6)  # every fit image needed an edit


def test_min_gt_area_makes_small_objects_dont_care():
    info = al.core.ImageInfo("a.jpg", 100, 100)
    names = ("person",)
    gt = Results([Detections.from_xywh(np.array([[0, 0, 40, 40], [60, 60, 5, 5], [80, 10, 4, 4]], np.float32),
                                       np.ones(3), np.zeros(3, int), class_names=names, image=info)], names)
    pred = Results([Detections.from_xywh(np.array([[0, 0, 40, 40], [60, 60, 5, 5]], np.float32),
                                         np.array([0.9, 0.8]), np.zeros(2, int), class_names=names, image=info)], names)
    _, plain = match_targets(pred, gt)
    assert plain.loc[0, "draw"] == 1 and plain.loc[0, "needs_edit"]  # the 4x4 person is missed
    boxes, spec = match_targets(pred, gt, min_gt_area=100)  # a spec that skips objects under 10x10 px
    assert spec.loc[0, "draw"] == 0 and spec.loc[0, "n_gt"] == 1 and not spec.loc[0, "needs_edit"]
    assert boxes["edit"].tolist() == ["accept", "ignore"]  # the box on the 5x5 person counts neither way


# -- the guarantee of the learned scorer on real data (coco-person, yolov5n via the CLI) -----------------------
@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """yolov5n.onnx pre-labels of the 800 coco-person images, made by the documented CLI command."""
    root = DATA / "coco-person"
    if not (root / "instances.json").is_file():
        pytest.fail(f"shared data missing: {root}")
    out = tmp_path_factory.mktemp("person")
    assert main(["prelabel", str(root / "images"), "--model", "yolov5n.onnx", "--class-map", "person", "--conf", "0.05",
                 "--format", "coco", "--out", str(out / "P"), "--quiet"]) == 0
    return read_coco(out / "P" / "annotations.json"), read_coco(root / "instances.json"), out


def test_factory_pass_guarantee_on_coco_person(person):
    """10 half/half splits at alpha 0.3 (20 at 0.1-0.3 in benchmarks/reports/routing-coco-person.md):
    something is auto-accepted in most splits, and the realized risk respects alpha in >= 90% of them."""
    preds, gt, _ = person
    alpha = 0.3
    cv = cross_validate(preds, gt, {**RoutingPolicy.load("factory-pass-90").model_dump(), "alpha": alpha}, n_splits=10)
    took = cv[cv["auto_accepted"] > 0]
    assert len(took) >= 8 and cv["coverage"].mean() > 0.05
    assert (took["risk"] <= alpha).mean() >= 0.9
    assert cv["auc_no_edit"].mean() > 0.8
    assert cv["naive_risk"].mean() > alpha  # the naive rule does not hold the bar
    assert (cv["routed_s"] < cv["review_everything_s"]).mean() >= 0.9  # routing saves human time


def _fails_qc(pred: Detections, gt: Detections) -> bool:
    """Independent oracle (greedy, numpy): a person missed, or a box matching no person
    (IoU >= 0.5) and no crowd region (intersection over the box >= 0.5)."""
    p, g = pred.xyxy.astype(float), gt.xyxy.astype(float)
    crowd = np.asarray(gt.iscrowd, bool)

    def inter(a, b):
        w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        return w * h

    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    i = inter(p, g)
    iou = i / (area(p)[:, None] + area(g)[None, :] - i + 1e-12)
    iou[:, crowd] = 0
    used_p, used_g = set(), set()
    for k in np.argsort(-iou, axis=None):
        a, b = divmod(int(k), iou.shape[1])
        if iou[a, b] < 0.5:
            break
        if a not in used_p and b not in used_g:
            used_p.add(a), used_g.add(b)
    if len(used_g) < int((~crowd).sum()):
        return True
    ioa = i / (area(p)[:, None] + 1e-12)
    return any(a not in used_p and not (ioa[a, crowd] >= 0.5).any() for a in range(len(p)))


def test_cli_person_calibrate_route_meets_the_bound_on_new_images(person, tmp_path, capsys):
    """The README's path: calibrate on 400 images with factory-pass-90 at alpha 0.3, route the other
    400; the auto-accepted images fail QC (independent check) at most at alpha plus sampling slack."""
    preds, gt, _ = person
    names = [d.image.file_name for d in gt]
    rng = np.random.default_rng(7)
    cal = set(rng.permutation(names)[:400].tolist())
    sub = lambda r, keep: replace(r, detections=[d for d in r if (d.image.file_name in cal) == keep])  # noqa: E731
    write_coco(sub(preds, True), tmp_path / "P.json")
    write_coco(sub(gt, True), tmp_path / "G.json")
    write_coco(sub(preds, False), tmp_path / "Q.json")
    assert main(["calibrate", "--predictions", str(tmp_path / "P.json"), "--ground-truth", str(tmp_path / "G.json"),
                 "--config", "factory-pass-90", "--alpha", "0.3", "--delta", "0.1", "--out", str(tmp_path / "policy.json")]) == 0
    assert main(["route", "--predictions", str(tmp_path / "Q.json"), "--policy", str(tmp_path / "policy.json"),
                 "--out", str(tmp_path / "R")]) == 0
    m = pd.read_csv(tmp_path / "R" / "manifest.csv")
    auto = m.loc[m["queue"] == "auto_accept", "file_name"].tolist()
    assert len(m) == 400 and len(auto) > 0
    out = capsys.readouterr().out  # calibrate's and route's short tables, not JSON dumps
    assert "auto-accept threshold: 0." in out and "box certification:" in out and len(out.splitlines()) < 25
    assert re.search(rf"^\s*auto_accept\s+{len(auto)}\s+0\.00$", out, re.M)
    accepted = {d.image.file_name: d for d in read_coco(tmp_path / "R" / "auto_accepted.json")}
    truth = {d.image.file_name: d for d in gt}
    fails = np.array([_fails_qc(accepted[f], truth[f]) for f in auto])
    slack = 2 * np.sqrt(0.3 * 0.7 / len(auto))
    assert fails.mean() <= 0.3 + slack
    assert (m.loc[m["queue"] == "auto_accept", "p_no_edit"] >= json.loads((tmp_path / "policy.json").read_text())["threshold"]).all()
    capsys.readouterr()
    assert main(["calibrate", "--predictions", str(tmp_path / "P.json"), "--ground-truth", str(tmp_path / "G.json"),
                 "--config", "factory-pass-90", "--alpha", "0.3", "--plan", "--target-coverage", "0.3",
                 "--plan-repeats", "2", "--json", str(tmp_path / "plan.json")]) == 0
    text = capsys.readouterr().out
    plan_out = json.loads((tmp_path / "plan.json").read_text())  # --json FILE: the plan, and the table on stdout
    assert plan_out["labeled_images"] == 400 and 0 <= plan_out["coverage_now"] <= 1
    assert len(plan_out["curve"]) == 4 * 2  # 2 repeats of each subsample size (100, 200, 300, 400)
    now = re.search(r"^\s*now\s+400\s+([\d.]+)%", text, re.M)  # the labelled table, not `mean std count`
    assert "coverage certified at alpha 0.3, delta 0.1" in text and now
    assert float(now[1]) == pytest.approx(100 * plan_out["coverage_now"], abs=0.05)
    lo, hi = plan_out["projected_4x"]["lo"], plan_out["projected_4x"]["hi"]
    assert lo <= plan_out["projected_4x"]["mean"] <= hi


def test_certified_boxes_are_precise_on_new_images(person):
    """Box-level certification: on routed test images, certified pre-labels are right (IoU >= 0.5
    with a person) at least at 1 - alpha minus sampling slack, and are flagged per box."""
    preds, gt, _ = person
    n = len(gt)
    perm = np.random.default_rng(11).permutation(n)
    cal, test = set(perm[: n // 2].tolist()), set(perm[n // 2:].tolist())
    pick = lambda r, ids: replace(r, detections=[r[i] for i in sorted(ids)])  # noqa: E731
    gts = [d.image.file_name for d in gt]
    by_name = {d.image.file_name: d for d in preds}
    p_of = lambda ids: Results([by_name[gts[i]] for i in sorted(ids)], preds.class_names, preds.model_id)  # noqa: E731
    pol = fit_policy(p_of(cal), pick(gt, cal), {**RoutingPolicy.load("factory-pass-90").model_dump(), "box_alpha": 0.1})
    assert pol.box_threshold is not None
    r = route(p_of(test), pol)
    review = r.review_queue()
    flags = np.concatenate([d.data["certified"] for d in review])
    assert flags.any() and not flags.all()
    truth = {d.image.file_name: d for d in gt}
    boxes, _ = match_targets(review, Results([truth[d.image.file_name] for d in review], gt.class_names), 0.25, 0.5, 0.5)
    assert len(boxes) == len(flags)  # same images in the same order: the rows line up with the flags
    ok = boxes["correct"].to_numpy()[flags]
    ok = ok[~np.isnan(ok)]
    assert ok.mean() >= 0.9 - 2 * np.sqrt(0.09 / len(ok))
    m = r.manifest
    assert (m["certified_credit_s"] == m["n_certified"] * pol.cost_profile.verify_s).all()


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
            "scratch_queue.txt", "seconds.csv", "summary.json", "boxes.csv", "risk_coverage.png"} <= names
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
    assert ev.auto_accepted == auto.sum() and ev.coverage == pytest.approx(auto.mean())
    assert ev.routed_s <= ev.review_everything_s < ev.scratch_everything_s
    assert 0 <= ev.risk <= 1 and ev.ece_after < ev.ece_before
    assert len(repr(ev)) < 400 and "<table" in ev._repr_html_() and ev.to_dict()["coverage"] == ev.coverage


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
    capsys.readouterr()
    assert main(["route", "--predictions", str(tmp_path / "P.json"), "--policy", str(tmp_path / "policy.json"),
                 "--out", str(tmp_path / "routed"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)  # --json: stdout is the summary alone
    assert sum(summary["queues"].values()) == 150
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


def test_presets_and_their_validation():
    f = RoutingPolicy.load("factory-pass-90")
    assert (f.iou_accept, f.iou_min, f.scorer, f.risk, f.alpha) == (0.5, 0.5, "learned", "image_any_edit", 0.1)
    assert RoutingPolicy.load("strict-exact").model_dump(exclude={"description"}) == \
        RoutingPolicy.load("default").model_dump(exclude={"description"})
    b = RoutingPolicy.load("box-accuracy-95")
    assert (b.risk, b.alpha, b.bound) == ("box_error_rate", 0.05, "wsr")
    with pytest.raises(ConfigError, match="needs holdout > 0"):
        RoutingPolicy.load({"scorer": "learned"})
    with pytest.raises(ConfigError, match="Clopper-Pearson bound needs the 0/1 loss"):
        RoutingPolicy.load({"risk": "box_error_rate", "bound": "clopper_pearson"})
