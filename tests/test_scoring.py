"""Box uncertainty scores, calibrators, ECE and agreement signals (autolabel.routing)."""
from __future__ import annotations

import numpy as np
import pytest

import autolabel as al
from autolabel.core import Detections, Results
from autolabel.formats import read_coco
from autolabel.matching import EDIT_KINDS, align_classes, match_image
from autolabel.routing import (
    ClassCalibrator, IsotonicCalibrator, PlattCalibrator, box_table, class_entropy, class_margin,
    detection_ece, detector_agreement, match_targets, reliability_table, tta_agreement,
)
from autolabel.io.images import load_image

N_IMAGES = 24  # a slice of coco-val-150 keeps inference to a few seconds


@pytest.fixture(scope="module")
def coco_slice(coco150, yolov5n):
    gt = read_coco(coco150 / "instances.json")
    gt = Results(gt.detections[:N_IMAGES], gt.class_names)
    paths = [str(coco150 / "images" / d.image.file_name) for d in gt]
    preds = al.prelabel(paths, yolov5n, conf=0.05, progress=False)
    return preds, gt, paths


# -- class-probability uncertainty ---------------------------------------------------------------
def test_entropy_and_margin_extremes():
    p = np.array([[0.25, 0.25, 0.25, 0.25], [0.9, 0, 0, 0], [0.6, 0.3, 0.0, 0.0], [0, 0, 0, 0]])
    h, m = class_entropy(p), class_margin(p)
    assert h[0] == pytest.approx(1.0) and m[0] == pytest.approx(0.0)
    assert h[1] == pytest.approx(0.0) and m[1] == pytest.approx(1.0)
    # independent sigmoids (0.6, 0.3) are normalised to (2/3, 1/3) before entropy and margin
    assert m[2] == pytest.approx(1 / 3)
    assert h[2] == pytest.approx(-(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)) / np.log(4))
    assert h[3] == pytest.approx(1.0)  # no mass at all: as uncertain as it gets
    assert np.isnan(class_entropy(None, 3)).all() and np.isnan(class_margin(None, 2)).all()


def test_box_table_from_real_detector_has_probability_scores(coco_slice):
    preds, _, _ = coco_slice
    t = box_table(preds, prelabel_conf=0.25)
    assert len(t) == preds.num_boxes
    assert t["entropy"].between(0, 1).all() and t["margin"].between(0, 1).all()
    assert (t["prelabel"] == (t["score"] >= 0.25)).all()
    # confident boxes have a sharper class distribution than the weakest ones
    hi, lo = t[t.score >= 0.7], t[t.score < 0.1]
    assert hi["entropy"].mean() < lo["entropy"].mean()


def test_box_table_rejects_agreement_of_wrong_shape(coco_slice):
    preds, _, _ = coco_slice
    with pytest.raises(ValueError, match="entries for"):
        box_table(preds, agreement=[np.zeros(1)])
    bad = [np.zeros(len(d) + 1) for d in preds]
    with pytest.raises(ValueError, match="agreement has shape"):
        box_table(preds, agreement=bad)


# -- calibrators -------------------------------------------------------------------------------------
def test_isotonic_pools_violators_and_interpolates():
    cal = IsotonicCalibrator.fit(np.array([1, 2, 3, 4.0]), np.array([0, 1, 0, 1]))
    assert cal(np.array([1, 2, 3, 4.0])) == pytest.approx([0, 0.5, 0.5, 1])
    assert cal(np.array([0.0, 10.0])) == pytest.approx([0, 1])  # constant beyond the fitted range
    assert cal(np.array([3.5])) == pytest.approx([0.75])  # linear between blocks


def test_isotonic_is_monotone_and_calibrated_in_sample():
    rng = np.random.default_rng(0)
    x = rng.random(3000)
    y = rng.random(3000) < x**2
    cal = IsotonicCalibrator.fit(x, y)
    grid = np.linspace(0, 1, 501)
    assert (np.diff(cal(grid)) >= -1e-12).all()
    assert cal(x).mean() == pytest.approx(y.mean())  # PAV preserves the mean
    assert np.abs(cal(grid) - grid**2).max() < 0.15


def test_platt_recovers_known_parameters_and_survives_one_label():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1.5, 20000)
    x = 1 / (1 + np.exp(-z))
    y = rng.random(len(z)) < 1 / (1 + np.exp(-(2.0 * z - 1.0)))
    cal = PlattCalibrator.fit(x, y)
    assert cal.a == pytest.approx(2.0, abs=0.1) and cal.b == pytest.approx(-1.0, abs=0.1)
    one = PlattCalibrator.fit(np.array([0.2, 0.5, 0.9]), np.ones(3, bool))
    assert np.isfinite([one.a, one.b]).all() and (one(np.array([0.5])) < 1).all()


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_class_calibrator_falls_back_to_global_and_round_trips(method):
    rng = np.random.default_rng(2)
    x = rng.random(400)
    labels = np.array(["car"] * 300 + ["dog"] * 100, dtype=object)
    y = np.where(labels == "car", rng.random(400) < x, rng.random(400) < 0.1)
    cal = ClassCalibrator.fit(x, y, labels, method=method, min_class_boxes=150)
    assert set(cal.per_class) == {"car"} and cal.counts == {"car": 300, "dog": 100}
    probe = np.array([0.9, 0.9, 0.9])
    out = cal(probe, ["car", "dog", "zebra"])  # dog: too few; zebra: never seen -> global
    assert out[1] == out[2] == pytest.approx(float(cal.global_(probe[:1])[0]))
    assert out[0] != out[1]
    again = ClassCalibrator.from_dict(cal.to_dict())
    assert again(probe, ["car", "dog", "zebra"]) == pytest.approx(out)


def test_class_calibrator_refuses_an_empty_set():
    with pytest.raises(ValueError, match="no calibration pre-labels"):
        ClassCalibrator.fit(np.zeros(0), np.zeros(0, bool), [], what="pre-labels")


# -- ECE ---------------------------------------------------------------------------------------------
def test_ece_small_when_calibrated_large_when_overconfident():
    rng = np.random.default_rng(3)
    c = rng.random(20000)
    assert detection_ece(c, rng.random(len(c)) < c) < 0.02
    assert detection_ece(c, rng.random(len(c)) < c / 2) == pytest.approx(c.mean() / 2, abs=0.02)


def test_ece_hand_computed():
    # bin [0.1, 0.2): conf 0.15 x2, one correct -> |0.15 - 0.5|; bin [0.9, 1]: conf 0.95 x2, both -> |0.95 - 1|
    conf, ok = np.array([0.15, 0.15, 0.95, 0.95]), np.array([1, 0, 1, 1], bool)
    assert detection_ece(conf, ok) == pytest.approx(0.5 * 0.35 + 0.5 * 0.05)
    t = reliability_table(conf, ok)
    assert t["n"].sum() == 4 and t.loc[t.n > 0, "precision"].tolist() == [0.5, 1.0]
    assert np.isnan(detection_ece(np.zeros(0), np.zeros(0, bool)))


# -- calibration targets from the shared matcher --------------------------------------------------------
def test_match_targets_agree_with_match_image(coco_slice):
    preds, gt, _ = coco_slice
    boxes, images = match_targets(preds, gt, prelabel_conf=0.25)
    assert len(images) == len(gt) and len(boxes) == preds.num_boxes
    aligned, gt2 = align_classes(preds, gt)
    for i, (d, g) in enumerate(zip(aligned, gt2)):
        m = match_image(d.filter(0.25), g)
        row = images.iloc[i]
        assert row["file_name"] == d.image.file_name
        assert {k: int(row[k]) for k in EDIT_KINDS} == m.counts
        assert row["needs_edit"] == (sum(m.counts[k] for k in EDIT_KINDS if k != "accept") > 0)
    pre = boxes[boxes.prelabel & boxes.edit.ne("ignore")]
    assert (pre.located >= pre.correct).all() and (pre.correct >= pre.exact).all()
    assert pre.exact.sum() == images["accept"].sum()
    assert (boxes.loc[boxes.edit.eq("ignore"), ["located", "correct", "exact"]].isna()).all().all()
    below = boxes[~boxes.prelabel]
    assert below.edit.eq("").all()
    # a sub-threshold box can only find objects the pre-labels missed: never more than the draws
    assert below.groupby("image")["found"].sum().reindex(images.image, fill_value=0).le(images["draw"].values).all()
    assert below.found.any()  # low-score boxes do point at some missed objects on real data


def test_match_targets_names_the_unpaired_images(coco_slice):
    preds, gt, _ = coco_slice
    with pytest.raises(ValueError, match="images do not line up"):
        match_targets(preds, Results(gt.detections[:-1], gt.class_names))


# -- agreement signals ----------------------------------------------------------------------------------
def test_detector_agreement_with_itself_and_with_nothing():
    d = Detections(np.array([[0, 0, 10, 10], [20, 20, 40, 40]]), np.array([0.9, 0.8]), np.array([0, 1]), ("a", "b"))
    assert detector_agreement(d, [d]) == pytest.approx([1, 1])
    assert detector_agreement(d, [Detections.empty(("a", "b"))]) == pytest.approx([0, 0])
    shifted = Detections(np.array([[0, 0, 10, 20]]), np.array([0.5]), np.array([0]), ("a", "b"))
    assert detector_agreement(d, [d, shifted]) == pytest.approx([(1 + 0.5) / 2, 0.5])
    with pytest.raises(ValueError, match="at least one"):
        detector_agreement(d, [])


def test_tta_agreement_on_real_images(coco_slice, yolov5n):
    preds, _, paths = coco_slice
    idx = [i for i, d in enumerate(preds) if len(d.filter(0.5))][:4]
    dets = [preds[i].filter(0.25) for i in idx]
    agr = tta_agreement(yolov5n, [load_image(paths[i]) for i in idx], dets)
    assert [a.shape for a in agr] == [(len(d),) for d in dets]
    a, s = np.concatenate(agr), np.concatenate([d.scores for d in dets])
    assert ((a >= 0) & (a <= 1)).all()
    assert np.median(a[s >= 0.5]) > 0.7  # confident boxes of a real detector survive a flip and a rescale
