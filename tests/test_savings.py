"""Savings: matching, edit counts, cost profiles, reports and the two CLI commands.

Real models on real data: yolov5n.onnx / yolov5n-320.onnx on coco-val-150 and
yolov8n-bccd.pt on the BCCD val split, each run once per session (conf 0.05, so that
every threshold of the sweep can be cut from the same predictions).
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import autolabel as al
from autolabel.cli import main
from autolabel.config import ConfigError, CostProfile, config_path
from autolabel.formats import read_coco
from autolabel.boxes import box_iou
from autolabel.savings.report import compare_predictions, savings_report, threshold_sweep
from autolabel.matching import EDIT_KINDS, align_classes, match_image
from autolabel.savings.edits import (
    count_edits,
    edit_seconds,
    kind_seconds,
    list_profiles,
    scratch_seconds,
    summarize,
)
from autolabel.sources import from_coco, from_voc

NAMES = ("a", "b", "c")


# -- fixtures: each model runs once per session -----------------------------------------------
@pytest.fixture(scope="session")
def coco_gt(coco150):
    return read_coco(coco150 / "instances.json")


@pytest.fixture(scope="session")
def coco_preds(coco150, yolov5n):
    """model name -> (Results at conf 0.05, measured seconds)."""
    src = from_coco(coco150 / "instances.json")
    out = {}
    for name, det in (("yolov5n", yolov5n), ("yolov5n-320", al.load_detector("yolov5n-320.onnx"))):
        t = time.perf_counter()
        out[name] = (al.prelabel(src, det, conf=0.05, progress=False), time.perf_counter() - t)
    return out


@pytest.fixture(scope="session")
def bccd_val(bccd):
    src = from_voc(bccd, split="val", invalid_boxes="drop")  # bccd has two zero-size boxes
    t = time.perf_counter()
    pred = al.prelabel(src, "yolov8n-bccd.pt", conf=0.05, progress=False)
    return src.ground_truth, pred, time.perf_counter() - t


def _dets(xyxy, classes, scores=None, crowd=None, key="img.jpg") -> al.Detections:
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    scores = np.ones(len(xyxy)) if scores is None else scores
    return al.Detections(xyxy, scores, classes, NAMES, al.ImageInfo(key, 640, 480), iscrowd=crowd)


# -- cost profiles ---------------------------------------------------------------------------
def test_profiles_load_and_every_constant_names_its_source():
    names = list_profiles()
    assert {"extreme-clicking", "traditional-drawing", "traditional-drawing-qc", "annotation-factory"} <= set(names)
    for name in names:
        CostProfile.load(name)
        lines = config_path("cost", name).read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\w+):\s*([-\d.]+)\s*$", line)
            if m:  # the nearest line above that is not another constant must be a comment
                j = i - 1
                while j >= 0 and re.match(r"^\w+:", lines[j]):
                    j -= 1
                assert j >= 0 and lines[j].startswith("#"), f"{name}: {m.group(1)} has no source comment"
    ec = CostProfile.load()  # the default profile, with the constants issue 3 fixes
    assert (ec.draw_s, ec.verify_s, ec.adjust_s, ec.relabel_s, ec.delete_s) == (7.0, 1.8, 7.0, 5.1, 1.8)
    assert CostProfile.load("traditional-drawing").draw_s == 25.5
    assert {CostProfile.load(n).draw_s for n in names if n.startswith("traditional-drawing-qc")} == {35.0, 42.4}
    factory = CostProfile.load("annotation-factory")
    assert factory.draw_s == pytest.approx(8 * 3600 / 4000) and 2 <= factory.review_passes <= 3


def test_profile_validation_errors():
    good = CostProfile.load("extreme-clicking").model_dump()
    with pytest.raises(ConfigError, match="verify_s must not exceed"):
        CostProfile.load({**good, "verify_s": 9.0})
    with pytest.raises(ConfigError, match="exactly one of"):
        CostProfile.load({**good, "price_per_image": 0.25})
    with pytest.raises(ConfigError, match="exactly one of"):
        CostProfile.load({**good, "hourly_wage": None})
    with pytest.raises(ConfigError, match="(?i)extra"):
        CostProfile.load({**good, "draw_seconds": 7})
    with pytest.raises(ConfigError, match="known: .*extreme-clicking"):
        CostProfile.load("no-such-profile")


def test_seconds_arithmetic_by_hand():
    p = CostProfile.load("annotation-factory")
    counts = {"accept": 2, "adjust": 1, "relabel": 1, "adjust_relabel": 1, "delete": 1, "draw": 1}
    review = p.review_passes * p.review_s_per_box
    replace_s = p.delete_s + p.draw_s  # adjust + relabel costs more than deleting and redrawing
    assert p.adjust_s + p.relabel_s > replace_s
    expected = (p.image_overhead_s + 2 * p.verify_s + p.adjust_s + p.relabel_s + replace_s + p.delete_s + p.draw_s
                + 6 * review)
    assert edit_seconds(counts, p) == pytest.approx(expected)
    assert kind_seconds(p)["adjust_relabel"] == replace_s
    assert scratch_seconds(3, p) == pytest.approx(p.image_overhead_s + 3 * (p.draw_s + review))
    many = np.array([[counts[k] for k in EDIT_KINDS]] * 3)
    np.testing.assert_allclose(edit_seconds(many, p), [expected] * 3)
    with pytest.raises(ValueError, match="unknown edit kinds"):
        edit_seconds({"acept": 1}, p)


# -- matching on hand-made scenes -------------------------------------------------------------
def test_match_image_names_every_edit():
    gt = _dets([[0, 0, 100, 100], [200, 0, 300, 100], [400, 0, 500, 100], [0, 200, 100, 300],
                [300, 200, 600, 480]], [0, 0, 1, 2, 0], crowd=[False, False, False, False, True])
    pred = _dets([[0, 0, 100, 100],        # exact copy: accept
                  [200, 0, 300, 140],      # IoU 0.71 -> accept; moved further below
                  [400, 0, 500, 100],      # right place, wrong class: relabel
                  [0, 200, 100, 400],      # IoU 0.5, wrong class: adjust_relabel
                  [350, 250, 400, 300],    # inside the crowd region of its class: ignore
                  [350, 250, 400, 300],    # the same box as another class: delete
                  [1, 1, 100, 100]],       # near-duplicate of the first: delete
                 [0, 0, 0, 1, 0, 1, 0], scores=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    m = match_image(pred, gt)
    assert m.pred_edit.tolist() == ["accept", "accept", "relabel", "adjust_relabel", "ignore", "delete", "delete"]
    assert m.pred_gt.tolist() == [0, 1, 2, 3, 4, -1, -1]
    assert m.gt_matched.tolist() == [True, True, True, True, False]
    assert m.counts == {"accept": 2, "adjust": 0, "relabel": 1, "adjust_relabel": 1, "delete": 2, "draw": 0}
    moved = _dets(pred.xyxy[[1]] + [0, 0, 0, 40], [0])  # IoU 100*100 / 100*180 = 0.56: adjust
    assert match_image(moved, gt).counts["adjust"] == 1
    assert match_image(_dets([], []), gt).counts["draw"] == 4  # the crowd region is never drawn
    m = match_image(pred, gt, iou_accept=0.5, iou_min=0.5, relabel=False)
    assert m.pred_edit.tolist()[2:4] == ["delete", "delete"]


def test_right_class_pairs_come_first_then_more_pairs_then_iou():
    # A (class a) overlaps object 0 (a) and object 1 (b) at IoU 0.54; B (class b) is exactly
    # on object 0. Two wrong-class pairs (A-1, B-0) would pair more boxes, but the
    # right-class pair A-0 comes first.
    gt = _dets([[0, 0, 100, 100], [0, 60, 100, 160]], [0, 1])
    pred = _dets([[0, 30, 100, 130], [0, 0, 100, 100]], [0, 1])
    m = match_image(pred, gt)
    assert m.pred_edit.tolist() == ["adjust", "delete"] and m.counts["draw"] == 1
    # All class a; A is exactly on object 0 and overlaps object 1 at IoU 1/3; B overlaps
    # object 0 at 1/3 only. Most IoU would be A-0 alone (1.0); more pairs is A-1 + B-0.
    gt = _dets([[0, 0, 100, 100], [50, 0, 150, 100]], [0, 0])
    pred = _dets([[0, 0, 100, 100], [-50, 0, 50, 100]], [0, 0])
    m = match_image(pred, gt, iou_min=0.1)
    assert m.pred_gt.tolist() == [1, 0] and m.counts["adjust"] == 2
    # with a third box that fits object 1 better, IoU decides among equally many pairs
    three = _dets([[0, 0, 100, 100], [-50, 0, 50, 100], [50, 0, 150, 100]], [0, 0, 0])
    assert match_image(three, gt, iou_min=0.1).pred_edit.tolist() == ["accept", "delete", "accept"]


def test_bad_boxes_and_misaligned_inputs_name_the_record(coco_gt):
    gt = _dets([[0, 0, 10, 10]], [0], key="x.jpg")
    with pytest.raises(ValueError, match=r"predictions image 'x.jpg', box 1: .* not finite"):
        match_image(_dets([[0, 0, 1, 1], [np.nan, 0, 1, 1]], [0, 0], key="x.jpg"), gt)
    with pytest.raises(ValueError, match="ground truth image 'x.jpg', box 0: .* negative width"):
        match_image(gt, _dets([[10, 0, 0, 10]], [0], key="x.jpg"))
    with pytest.raises(ValueError, match="iou_min <= iou_accept"):
        match_image(gt, gt, iou_accept=0.4, iou_min=0.5)
    pred = al.Results([_dets([[0, 0, 1, 1]], [0], key="x.jpg")], NAMES)
    with pytest.raises(ValueError, match=r"3 prediction classes are not ground-truth categories: \['a', 'b', 'c'\]"):
        align_classes(pred, coco_gt)
    some = al.Results(coco_gt.detections[:3], coco_gt.class_names)
    with pytest.raises(ValueError, match="147 ground-truth images have no predictions"):
        align_classes(some, coco_gt)
    bad = al.Results([_dets([[0, 0, 1, 1], [5, 5, 4, 9]], [0, 0], key="x.jpg")], NAMES)
    with pytest.raises(ValueError, match="box 1: .* negative width"):
        count_edits(bad, al.Results([gt], NAMES))


# -- invariants on random scenes (hypothesis) --------------------------------------------------
@st.composite
def scenes(draw, with_preds: bool = True):
    """Ground truth (some crowd regions) and predictions: jittered copies of the objects,
    some with the wrong class, some missing, plus strays, boxes on crowd regions and exact
    copies of boxes with any class. Coordinates are continuous (a seeded generator), so
    IoU ties come only from exact copies."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, n_crowd, n_stray = draw(st.integers(0, 8)), draw(st.integers(0, 2)), draw(st.integers(0, 4))
    xy, wh = rng.uniform(0, 400, (n + n_crowd, 2)), rng.uniform(10, 80, (n + n_crowd, 2))
    wh[n:] *= 3
    gt = _dets(np.hstack([xy, xy + wh]), rng.integers(0, 3, n + n_crowd), crowd=np.arange(n + n_crowd) >= n)
    if not with_preds:
        return gt
    keep = rng.random(n) < 0.8
    boxes = gt.xyxy[:n][keep] + rng.normal(0, 0.08, (keep.sum(), 4)) * np.tile(wh[:n][keep], 2)
    cls = np.where(rng.random(keep.sum()) < 0.2, rng.integers(0, 3, keep.sum()), gt.class_ids[:n][keep])
    sxy = rng.uniform(0, 400, (n_stray, 2))
    boxes = np.vstack([boxes, np.hstack([sxy, sxy + rng.uniform(10, 80, (n_stray, 2))])])
    inner = gt.xyxy[n:] + np.tile(wh[n:], 2) * [0.2, 0.2, -0.5, -0.5]  # on the crowd regions
    boxes = np.vstack([boxes, inner])
    cls = np.concatenate([cls, rng.integers(0, 3, n_stray), gt.class_ids[n:]])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    twins = rng.integers(0, len(boxes), draw(st.integers(0, 2))) if len(boxes) else []  # exact copies: ties
    boxes, cls = np.vstack([boxes, boxes[twins]]), np.concatenate([cls, rng.integers(0, 3, len(twins))])
    return _dets(boxes, cls, scores=rng.uniform(0, 1, len(boxes))), gt


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenes())
def test_ground_truth_as_predictions_gives_only_accepts_and_the_largest_saving(scene):
    pred, gt = scene
    perfect = match_image(gt, gt)  # crowd regions fed back are ignored, every object accepted
    n = int((~gt.iscrowd).sum())
    assert perfect.counts == {**dict.fromkeys(EDIT_KINDS, 0), "accept": n}
    assert set(perfect.pred_edit[gt.iscrowd]) <= {"ignore"}
    other = match_image(pred, gt).counts
    for name in list_profiles():
        best = edit_seconds(perfect.counts, name)
        assert best == pytest.approx(scratch_seconds(n, name) - n * (kind_seconds(name)["draw"] - kind_seconds(name)["accept"]))
        assert edit_seconds(other, name) >= best - 1e-9


@SETTINGS
@given(scenes(with_preds=False))
def test_no_predictions_saves_nothing(gt):
    empty = _dets([], [])
    for name in list_profiles():
        assert edit_seconds(match_image(empty, gt).counts, name) == pytest.approx(scratch_seconds(int((~gt.iscrowd).sum()), name))
    res = count_edits(al.Results([empty], NAMES), al.Results([gt], NAMES))
    s = summarize(res, machine_seconds=1.0, n_boot=0)
    assert s.saved_seconds <= 0 and s.per_1000_images.net_saving < 0


@SETTINGS
@given(scenes())
def test_a_duplicate_of_a_correct_box_adds_exactly_one_delete(scene):
    pred, gt = scene
    m = match_image(pred, gt)
    iou = box_iou(pred.xyxy, gt.xyxy)
    same_crowd = (pred.class_ids[:, None] == gt.class_ids[None, :]) & gt.iscrowd[None, :]
    # a correct box that could pair with no other object (else its copy may rightly cover a
    # missed object) and lies on no crowd region of its class (else its copy is ignored)
    candidates = [i for i in np.flatnonzero(m.pred_edit == "accept")
                  if (iou[i, ~gt.iscrowd] >= 0.5).sum() == 1 and not (same_crowd[i] & (iou[i] > 0)).any()]
    assume(candidates)
    i = candidates[0]
    twice = al.Detections.concat([pred, pred[i]])
    after = match_image(twice, gt).counts
    assert after == {**m.counts, "delete": m.counts["delete"] + 1}


@SETTINGS
@given(st.lists(scenes(), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_results_do_not_depend_on_box_or_image_order(scenes_, seed):
    rng = np.random.default_rng(seed)
    preds = [p.with_image(al.ImageInfo(f"{i}.jpg", 640, 480)) for i, (p, _) in enumerate(scenes_)]
    gts = [g.with_image(al.ImageInfo(f"{i}.jpg", 640, 480)) for i, (_, g) in enumerate(scenes_)]
    def per_box(d: al.Detections, m) -> list:  # (box, class, edit) of every prediction
        return sorted(zip(map(tuple, d.xyxy.tolist()), d.class_ids.tolist(), m.pred_edit.tolist()))

    for p, g in zip(preds, gts):
        perm = rng.permutation(len(p))
        a, b = match_image(p, g), match_image(p[perm], g[rng.permutation(len(g))])
        assert a.counts == b.counts and per_box(p, a) == per_box(p[perm], b)
    order = rng.permutation(len(gts))
    s1 = summarize(count_edits(al.Results(preds, NAMES), al.Results(gts, NAMES)), n_boot=200)
    s2 = summarize(count_edits(al.Results([preds[i] for i in order[::-1]], NAMES),
                               al.Results([gts[i] for i in order], NAMES)), n_boot=200)
    assert s1 == s2


# -- against pycocotools ------------------------------------------------------------------------
def _max_hits(p: al.Detections, g: al.Detections) -> int:
    """Largest number of right-class pairs at IoU >= 0.5 (an independent algorithm)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    reg = ~g.iscrowd
    adj = (box_iou(p.xyxy, g.xyxy[reg]) >= 0.5) & (p.class_ids[:, None] == g.class_ids[reg][None, :])
    if not adj.any():
        return 0
    return int((maximum_bipartite_matching(csr_matrix(adj), perm_type="column") >= 0).sum())


def test_hits_and_misses_agree_with_cocoeval(coco150, coco_gt, coco_preds):
    """Per image, hits / false alarms / misses / ignored at IoU 0.5 against COCOeval's own
    matching (evalImgs; one IoU threshold, all areas, every detection).

    Set up like COCOeval: iou_accept = iou_min = 0.5 and ``relabel=False`` (COCOeval is
    per category, so a wrong-class box is a false alarm of its class and a miss of the
    object's). Then hit = accept, false alarm = delete, miss = draw. Where the two differ,
    the reason is checked: COCOeval matches greedily by score, we by optimal assignment,
    so on that image COCOeval's greedy pass found fewer hits than the maximum (computed by
    an independent maximum bipartite matching), which ours always reaches.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    data = json.loads((coco150 / "instances.json").read_text())
    image_id = {im["file_name"]: im["id"] for im in data["images"]}
    category = {c["name"]: c["id"] for c in data["categories"]}
    with contextlib.redirect_stdout(io.StringIO()):
        cgt = COCO(str(coco150 / "instances.json"))
    differing = total = 0
    for name, (pred, _) in coco_preds.items():
        for conf in (0.05, 0.25):
            kept = pred.filter(conf)
            dets = [{"image_id": image_id[d.image.key], "category_id": category[c], "bbox": b, "score": s}
                    for d in kept for b, s, c in zip(d.xywh.tolist(), d.scores.tolist(), d.labels)]
            with contextlib.redirect_stdout(io.StringIO()):
                ev = COCOeval(cgt, cgt.loadRes(dets), "bbox")
                ev.params.iouThrs, ev.params.maxDets = np.array([0.5]), [10000]
                ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
                ev.evaluate()
            coco = {i: np.zeros(4, int) for i in image_id.values()}
            for e in filter(None, ev.evalImgs):
                dm, di = e["dtMatches"][0], e["dtIgnore"][0].astype(bool)
                gm, gi = e["gtMatches"][0], np.asarray(e["gtIgnore"], bool)
                coco[e["image_id"]] += [((dm > 0) & ~di).sum(), ((dm == 0) & ~di).sum(), ((gm == 0) & ~gi).sum(), di.sum()]
            ed = count_edits(kept, coco_gt, None, iou_accept=0.5, iou_min=0.5, relabel=False)
            c = ed.per_image_counts
            ours = np.stack([c[:, 0], c[:, 4], c[:, 5], ed.ignored], 1)
            # pairing wrong-class boxes (relabel) never costs a right-class hit
            with_relabel = count_edits(kept, coco_gt, None, iou_accept=0.5, iou_min=0.5).per_image_counts
            assert (with_relabel[:, 0] == c[:, 0]).all()
            for i, key in enumerate(ed.images):
                theirs = coco[image_id[key]]
                assert ours[i, 0] == _max_hits(kept[key], coco_gt[key])
                total += 1
                if (theirs != ours[i]).any():
                    differing += 1
                    assert theirs[0] < ours[i, 0], (name, conf, key, theirs, ours[i])
                    assert theirs[0] + theirs[2] == ours[i, 0] + ours[i, 2]  # same objects
                    assert theirs[0] + theirs[1] + theirs[3] == ours[i, 0] + ours[i, 1] + ours[i, 3]  # same boxes
    assert differing <= 0.01 * total  # measured: 1 of 600 image evaluations (greedy short by one hit)


# -- real models: savings, sweep and reports ---------------------------------------------------------
def test_yolov5n_saves_more_than_yolov5n_320_and_the_report_says_where(coco_gt, coco_preds, tmp_path):
    cmp = compare_predictions({n: r for n, (r, _) in coco_preds.items()}, coco_gt,
                              {n: s for n, (_, s) in coco_preds.items()}, n_boot=300, dataset="coco-val-150")
    s = cmp.summary.set_index("model")
    assert s.loc["yolov5n", "saved_fraction"] > s.loc["yolov5n-320", "saved_fraction"] > 0
    assert (s["ci95_low"] > 0).all() and (s["ci95_low"] <= s["saved_fraction"]).all()
    assert (s["saved_fraction"] <= s["ci95_high"]).all()
    md = cmp.to_markdown()
    for r in cmp.reports:
        sw = r.sweep
        assert sw["best"].sum() == 1 and r.savings.conf == r.best_threshold
        saved = sw["scratch_seconds"] - sw["assisted_seconds"]
        assert saved[sw["best"]].iloc[0] == saved.max()
        # too low a threshold is all deleting, too high all drawing: both save less
        assert saved.iloc[0] < saved.max() and saved.iloc[-1] < saved.max()
        assert f"{r.model} saves {r.savings.saved_fraction:.1%}" in md
        assert f"at pre-label threshold {r.best_threshold:.2f}" in md
        pc = r.per_class
        assert pc["gt_boxes"].sum() == r.savings.gt_boxes and pc[list(EDIT_KINDS)].sum().to_dict() == r.savings.edits
        assert set(r.sensitivity["profile"]) == set(list_profiles())
    figs = cmp.figures()
    assert set(figs) == {"saving_vs_threshold", "edits", "saving_vs_machine"}
    assert all(len(f.axes) == 1 for f in figs.values())
    html = cmp.to_html()
    assert html.count('src="data:image/png;base64,') == 3 and "http" not in html.replace("http-equiv", "")
    written = cmp.save(tmp_path, "coco")
    assert {p.rsplit("/", 1)[-1] for p in written} >= {"coco.md", "coco.html", "coco.json", "coco-edits.png"}
    assert "![edits](coco-edits.png)" in (tmp_path / "coco.md").read_text()
    assert json.loads((tmp_path / "coco.json").read_text())["models"][0]["model"] == "yolov5n"


def test_results_read_as_attributes_show_short_reprs_and_keep_the_json_keys(coco_gt, coco_preds):
    pred, secs = coco_preds["yolov5n"]
    rep = savings_report(pred, coco_gt, machine_seconds=secs, n_boot=50)
    text = repr(rep)
    assert len(text) < 400 and rep.model in text and f"{rep.savings.saved_fraction:.1%}" in text
    page = rep._repr_html_()
    assert "<table" in page and "per_1000_images.saved_hours" in page
    d = rep.to_dict()  # the keys the JSON reports have always had, in the same order
    assert list(d)[:17] == ["model", "images", "gt_boxes", "pred_boxes", "ignored_predictions", "conf", "profile",
                            "currency", "edits", "scratch_seconds", "assisted_seconds", "saved_seconds",
                            "saved_fraction", "saved_fraction_ci95", "per_1000_images", "best_threshold",
                            "iou_accept"]
    assert d["per_1000_images"]["saved_hours"] == rep.savings.per_1000_images.saved_hours
    assert json.loads(json.dumps(d))["saved_fraction_ci95"] == list(rep.savings.saved_fraction_ci95)
    with pytest.warns(DeprecationWarning):
        assert rep.savings["saved_fraction"] == rep.savings.saved_fraction  # the old key access, for one release
    ed = count_edits(pred, coco_gt, 0.3)
    assert len(repr(ed)) < 300 and coco_gt.detections[0].image.key not in repr(ed)
    assert "<table" in ed._repr_html_() and len(ed.to_pandas()) == len(coco_gt)


def test_bccd_custom_detector_saves(bccd_val):
    gt, pred, secs = bccd_val
    assert len(gt) == 87
    cmp = compare_predictions({"yolov8n-bccd": pred}, gt, {"yolov8n-bccd": secs}, n_boot=300, dataset="BCCD val")
    s = cmp.reports[0].savings
    assert s.saved_fraction_ci95[0] > 0 and s.per_1000_images.net_saving > 0
    assert {"RBC", "WBC", "Platelets"} == set(cmp.reports[0].per_class["class"])


def test_totals_per_image_per_class_money_and_machine_cost_add_up(coco_gt, coco_preds):
    pred, secs = coco_preds["yolov5n"]
    ed = count_edits(pred, coco_gt, 0.3)
    p = CostProfile.load("annotation-factory")
    s = summarize(ed, p, machine_seconds=secs, n_boot=0)
    per_img, per_cls = ed.per_image(p), ed.per_class(p)
    assert per_img["scratch_s"].sum() == pytest.approx(s.scratch_seconds)
    assert per_img["assisted_s"].sum() == pytest.approx(s.assisted_seconds)
    assert per_cls["saved_s"].sum() == pytest.approx(s.saved_seconds)  # the image overhead cancels
    k, per = s.per_1000_images, 1000 / len(coco_gt)
    assert k.human_cost_saved == pytest.approx(s.saved_seconds * per / 3600 * p.hourly_wage)
    assert k.machine_cost == pytest.approx(secs * per / 3600 * p.machine_price_per_hour)
    piece = summarize(ed, "annotation-factory-piece-rate", n_boot=0).per_1000_images
    assert piece.human_cost_scratch == pytest.approx(0.25 * 1000)
    assert piece.human_cost_assisted == pytest.approx(0.25 * 1000 * s.assisted_seconds / s.scratch_seconds)
    sweep = threshold_sweep(pred, coco_gt, p)
    row = sweep[np.isclose(sweep["threshold"], 0.3)].iloc[0]
    assert row["assisted_seconds"] == pytest.approx(s.assisted_seconds) and row["pred_boxes"] == ed.pred_boxes


# -- command line ---------------------------------------------------------------------------------
def test_savings_subset_scores_only_the_predicted_images(coco150, coco_gt, tmp_path, capsys):
    """20 images pre-labeled by the CLI against the 150-image ground truth: refused by
    default with the way out named; --subset (subset=True) scores those 20 exactly as
    the 20-image ground truth would."""
    from autolabel.savings.report import savings_report

    images = sorted((coco150 / "images").glob("*.jpg"))[:20]
    src = tmp_path / "twenty"
    src.mkdir()
    for p in images:
        (src / p.name).symlink_to(p)
    assert main(["prelabel", str(src), "--model", "yolov5n-320.onnx", "--conf", "0.05", "--out", str(tmp_path / "P"),
                 "--quiet"]) == 0
    pfile, gt_file = str(tmp_path / "P" / "annotations.json"), str(coco150 / "instances.json")
    capsys.readouterr()
    assert main(["savings", "--predictions", pfile, "--ground-truth", gt_file]) == 2
    err = capsys.readouterr().err
    assert "130 of 150 ground-truth images have no predictions" in err and "use --subset" in err
    assert main(["savings", "--predictions", pfile, "--ground-truth", gt_file, "--subset", "--conf", "0.3",
                 "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)  # --json alone: the summary on stdout, nothing else
    names = {p.name for p in images}
    twenty = al.Results([d for d in coco_gt if d.image.file_name in names], coco_gt.class_names)
    pred = read_coco(pfile)
    direct = savings_report(pred, twenty, conf=0.3).summary
    non_crowd = sum(int((~d.iscrowd).sum()) if d.iscrowd is not None else len(d) for d in twenty)
    assert cli["images"] == 20 and cli["gt_boxes"] == direct["gt_boxes"] == non_crowd
    assert cli["edits"] == direct["edits"] and cli["saved_fraction"] == pytest.approx(direct["saved_fraction"])
    api = savings_report(pred, coco_gt, conf=0.3, subset=True).summary  # the Python twin
    assert api["edits"] == direct["edits"]
    with pytest.raises(ValueError, match=r"subset=True"):
        savings_report(pred, coco_gt, conf=0.3)


def test_cli_savings_scores_a_predictions_file(coco150, coco_gt, coco_preds, tmp_path, capsys):
    pred, _ = coco_preds["yolov5n-320"]
    (pfile,) = pred.save(str(tmp_path / "pred"), "coco")
    out = tmp_path / "summary.json"
    gt_file = str(coco150 / "instances.json")
    assert main(["savings", "--predictions", pfile, "--ground-truth", gt_file, "--json", str(out), "--conf", "0.3"]) == 0
    assert "saved" in capsys.readouterr().out
    s = json.loads(out.read_text())
    expected = summarize(count_edits(read_coco(pfile), coco_gt, 0.3)).to_dict()
    for key in ("images", "gt_boxes", "scratch_seconds", "assisted_seconds", "saved_fraction", "edits"):
        assert s[key] == pytest.approx(expected[key]), key
    assert s["images"] == 150 and s["best_threshold"] in {r["threshold"] for r in s["sweep"]}
    assert {r["profile"] for r in s["sensitivity"]} == set(list_profiles()) and s["per_class"]

    broken = json.loads(Path(pfile).read_text())
    broken["annotations"][3]["bbox"][2] = -4
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    assert main(["savings", "--predictions", str(tmp_path / "bad.json"), "--ground-truth", gt_file]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and f"annotation id {broken['annotations'][3]['id']}" in err and "negative" in err
    (tmp_path / "x.json").write_text("[1, 2]")
    assert main(["savings", "--predictions", str(tmp_path / "x.json"), "--ground-truth", gt_file]) == 2
    assert "x.json: a COCO dataset is a JSON object" in capsys.readouterr().err


def test_cli_compare_writes_markdown_html_and_json(coco150, tmp_path, capsys):
    split = tmp_path / "split.txt"
    names = sorted(p.stem for p in (coco150 / "images").glob("*.jpg"))[:6]
    split.write_text("\n".join(names) + "\n")
    rc = main(["compare", "--models", "yolov5n.onnx", "yolov5n-320.onnx", "--images", str(coco150 / "images"),
               "--ground-truth", str(coco150 / "instances.json"), "--out", str(tmp_path / "rep"),
               "--split-file", str(split), "--quiet"])
    assert rc == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "yolov5n saves" in md and "yolov5n-320 saves" in md and "6 images" in md
    assert (tmp_path / "rep" / "report.html").read_text().count("data:image/png;base64,") == 3
    split.write_text("no_such_image\n")
    assert main(["compare", "--models", "yolov5n.onnx", "--images", str(coco150 / "images"), "--ground-truth",
                 str(coco150 / "instances.json"), "--out", str(tmp_path / "r2"), "--split-file", str(split)]) == 2
    assert "split entries are not ground-truth images" in capsys.readouterr().err
