"""The labeling loop, its strategies and the planner, on real detectors and real images.

The loop runs three tiny rounds on face-masks (160 px, 1 epoch of real Ultralytics training):
what it selects, what it never selects, and whether its numbers agree with ones recomputed
here another way (the ONNX export's predictions, pycocotools, the cost profile's constants).
Strategies are checked on real detector outputs (a COCO model on coco-person, embeddings of
face-masks images). The planner is checked on
curves whose truth is known, and on the tiny real run. Learning curves live in benchmarks/."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import autolabel as al
from autolabel.core import Results
from autolabel.formats import read_coco
from autolabel.savings.report import savings_report
from autolabel.training.loop import GroundTruthOracle, LoopOptions, run_loop
from autolabel.training.planner import fit_curve, honesty_check, plan, plan_rounds, power_law
from autolabel.training.strategies import Candidates, cluster_pick, embed_images, fit_scorer, select, uncertainty_scores

from conftest import DATA, ROOT, coco_stats

FACES = DATA / "face-masks"


@pytest.fixture(scope="module")
def faces_truth():
    return read_coco(str(FACES / "instances.json"))


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory, faces_truth):
    keys = sorted(d.image.key for d in faces_truth)
    held = Results([faces_truth[k] for k in keys[:10]], faces_truth.class_names)
    pool = keys[10:40]
    oracle = GroundTruthOracle(faces_truth)
    out = tmp_path_factory.mktemp("loop")
    opts = LoopOptions(strategy="uncertainty", rounds=(4, 8, 12), imgsz=160, epochs=1, n_boot=200, prelabel_rest=False)
    res = run_loop(FACES / "images", pool, held, oracle, out, opts, progress=False)
    return res, held, pool, oracle, out


def test_loop_selects_new_pool_images_and_never_the_heldout(loop_run):
    res, held, pool, oracle, out = loop_run
    assert [len(r.selected) for r in res.rounds] == [4, 4, 4]
    labeled = res.labeled
    assert len(set(labeled)) == 12 and set(labeled) <= set(pool)
    assert oracle.asked == list(labeled)  # each label asked for once, in order
    assert res.heldout == tuple(d.image.key for d in held) and not set(labeled) & set(res.heldout)
    recorded = json.loads((out / "heldout" / "annotations.json").read_text())
    assert sorted(i["file_name"] for i in recorded["images"]) == sorted(res.heldout)
    df = res.to_pandas()
    assert list(df["labeled_images"]) == [4, 8, 12] and list(df["pool_images"]) == [26, 22, 18]
    assert json.loads((out / "loop.json").read_text())["rounds"][2]["selected"] == list(res.rounds[2].selected)
    assert "| 12 |" in (out / "loop.md").read_text() and (out / "loop.png").stat().st_size > 1000


def test_loop_numbers_match_an_independent_computation(loop_run, faces_truth):
    res, held, pool, oracle, out = loop_run
    coco = json.loads((FACES / "instances.json").read_text())
    prof = yaml.safe_load((ROOT / "autolabel" / "configs" / "cost" / "extreme-clicking.yaml").read_text())
    by_name = {i["file_name"]: i["id"] for i in coco["images"]}
    n_boxes = {i: 0 for i in by_name.values()}
    for a in coco["annotations"]:
        n_boxes[a["image_id"]] += 0 if a["iscrowd"] else 1
    for r in res.rounds:
        keys = [k for q in res.rounds[:r.round] for k in q.selected]
        hours = sum(prof["image_overhead_s"] + prof["draw_s"] * n_boxes[by_name[k]] for k in keys) / 3600
        assert r.labeling_hours == pytest.approx(hours)
        assert r.labeled_boxes == sum(n_boxes[by_name[k]] for k in keys)
    last = res.rounds[-1]
    onnx = al.load_detector(last.model.replace("model.pt", "model.onnx"), draft=False)  # the other backend
    pred = al.prelabel([str(FACES / "images" / k) for k in res.heldout], onnx, conf=0.01, progress=False)
    again = savings_report(pred, held, "extreme-clicking", conf=last.threshold, n_boot=0).summary
    assert again["saved_fraction"] == pytest.approx(last.saved_fraction, abs=0.02)
    gt = {**coco, "images": [i for i in coco["images"] if i["file_name"] in set(res.heldout)]}
    gt["annotations"] = [a for a in coco["annotations"] if a["image_id"] in {i["id"] for i in gt["images"]}]
    cat = {c["name"]: c["id"] for c in coco["categories"]}
    dets = [{"image_id": by_name[d.image.key], "category_id": cat[lab], "score": float(s),
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
            for d in pred for b, s, lab in zip(d.xyxy.tolist(), d.scores, d.labels)]
    ref = coco_stats(gt, dets)[1] if dets else 0.0
    assert last.map50 == pytest.approx(ref, abs=0.02)
    lo, hi = last.saved_fraction_ci95
    assert lo <= last.saved_fraction <= hi
    assert last.pool_hours_saved == pytest.approx(
        last.saved_fraction * last.pool_images * sum(
            prof["image_overhead_s"] + prof["draw_s"] * n_boxes[by_name[k]] for k in res.heldout) / len(res.heldout) / 3600)


def test_loop_refuses_heldout_images_in_the_pool(faces_truth, tmp_path):
    keys = sorted(d.image.key for d in faces_truth)[:20]
    held = Results([faces_truth[k] for k in keys[:5]], faces_truth.class_names)
    with pytest.raises(ValueError, match="held-back images are also in the pool"):
        run_loop(FACES / "images", keys[3:], held, GroundTruthOracle(faces_truth), tmp_path, LoopOptions(rounds=(4,)))
    with pytest.raises(ValueError, match="the pool has 15"):
        run_loop(FACES / "images", keys[5:], held, GroundTruthOracle(faces_truth), tmp_path, LoopOptions(rounds=(40,)))
    assert not (tmp_path / "round_1").exists()


# -- strategies on real detector outputs -------------------------------------------------------
def test_uncertainty_picks_the_lowest_routing_scores():
    """A COCO detector on coco-person (person class map): the routing scorer fitted on 60
    labeled images ranks 60 others; the 15 it is least sure of are its lowest scores, and they
    need an edit far more often than the rest."""
    from autolabel.routing.features import match_targets

    truth = read_coco(str(DATA / "coco-person" / "instances.json"))
    keys = sorted(d.image.key for d in truth)[:120]
    pred = al.prelabel([str(DATA / "coco-person" / "images" / k) for k in keys], al.load_detector("yolov5n-320.onnx"),
                       conf=0.05, progress=False, class_map=ROOT / "autolabel" / "configs" / "classmaps" / "person.yaml")
    fit, cand = keys[::2], keys[1::2]
    policy = fit_scorer(Results([pred[k] for k in fit], pred.class_names, pred.model_id),
                        Results([truth[k] for k in fit], truth.class_names))
    assert policy is not None
    cpred = Results([pred[k] for k in cand], pred.class_names, pred.model_id)
    scores = uncertainty_scores(policy, cpred)
    picked = select("uncertainty", Candidates(tuple(cand), scores), 15, seed=0)
    assert len(set(picked)) == 15 and max(scores[cand.index(k)] for k in picked) <= np.sort(scores)[14]
    _, images = match_targets(cpred, Results([truth[k] for k in cand], truth.class_names), 0.25)
    needs = dict(zip(images["file_name"], images["needs_edit"]))
    rest = [k for k in cand if k not in picked]
    assert np.mean([needs[k] for k in picked]) > np.mean([needs[k] for k in rest]) + 0.2


def test_diversity_picks_one_image_per_kmeans_cluster(faces_truth):
    from sklearn.cluster import KMeans

    keys = sorted(d.image.key for d in faces_truth)[:40]
    det = al.load_detector("yolo11n-coco.pt")
    emb = embed_images(det.model, [str(FACES / "images" / k) for k in keys], 160)
    assert emb.shape[0] == 40 and emb.shape[1] > 16 and np.isfinite(emb).all()
    picked = select("diversity", Candidates(tuple(keys), embeddings=emb), 6, seed=3)
    assert len(set(picked)) == 6
    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    labels = KMeans(n_clusters=6, n_init=3, random_state=3).fit(x).labels_
    assert len({labels[keys.index(k)] for k in picked}) == 6  # distinct clusters
    # the batch covers the pool better than random batches do (mean distance to the nearest pick)
    def cover(idx):
        return np.linalg.norm(x[:, None] - x[idx][None], axis=2).min(1).mean()

    rng = np.random.default_rng(0)
    random_cover = np.mean([cover(rng.choice(40, 6, replace=False)) for _ in range(50)])
    assert cover([keys.index(k) for k in picked]) < random_cover
    assert list(cluster_pick(emb, 6, seed=3)) == sorted(keys.index(k) for k in picked)


def test_select_refuses_bad_requests():
    c = Candidates(("a", "b", "c"))
    with pytest.raises(ValueError, match="unknown strategy"):
        select("greedy", c, 1)
    with pytest.raises(ValueError, match="needs image embeddings"):
        select("diversity", c, 1)
    assert select("uncertainty", c, 2, seed=1) == select("random", c, 2, seed=1)  # no scorer yet: random
    with pytest.raises(ValueError, match="scores has 2 rows"):
        Candidates(("a", "b", "c"), scores=np.zeros(2))


# -- planner ------------------------------------------------------------------------------------
TRUTH = (0.7, 1.5, 0.6)


def _synthetic(counts, seeds=3, sd=0.02, seed=0):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.asarray(counts, float), seeds)
    return n, power_law(n, *TRUTH) + rng.normal(0, sd, len(n))


def test_planner_recovers_a_known_curve():
    n, s = _synthetic([10, 25, 50, 100, 200, 400])
    curve = fit_curve(n, s, np.full(len(n), 0.02), n_boot=200)
    assert curve.params[0] == pytest.approx(TRUTH[0], abs=0.05)
    assert curve.predict(300) == pytest.approx(power_law(300, *TRUTH), abs=0.02)
    target = 0.55
    need = (TRUTH[1] / (TRUTH[0] - target)) ** (1 / TRUTH[2])  # solved by hand
    point, lo, hi = curve.images_for(target)
    assert lo <= need <= hi and point == pytest.approx(need, rel=0.3)
    assert curve.images_for(0.9)[0] == np.inf  # above the asymptote: never


def test_planner_early_fit_intervals_cover_the_later_truth():
    """Fitted on rounds <= 50 images (3 seeds), the 95% interval at 200 holds the true curve in
    most of 10 independent replicates (too-narrow intervals would fail), and is informative."""
    hits, widths = 0, []
    for rep in range(10):
        n, s = _synthetic([10, 25, 50], sd=0.02, seed=rep)
        lo, hi = fit_curve(n, s, np.full(len(n), 0.02), n_boot=40, seed=rep).interval(200)
        hits += lo <= power_law(200, *TRUTH) <= hi
        widths.append(hi - lo)
    assert hits >= 8
    assert np.median(widths) < 0.3


def test_break_even_matches_a_brute_force_count():
    from scipy.optimize import brentq

    n, s = _synthetic([10, 25, 50, 100, 200], sd=0.0)
    curve = fit_curve(n, s, n_boot=20)
    h, pool = 0.01, 300
    # no training cost: s(n) h (N - n) = n h  <=>  s(n) (N - n) - n = 0, first crossing (f(1) < 0 < f(50))
    x = brentq(lambda v: power_law(v, *TRUTH) * (pool - v) - v, 1, 50)
    p = plan(curve, pool, h, ([10, 200], [0.0, 0.0]), target=0.6, machine_price_per_hour=0.0)
    assert p.break_even[0] == pytest.approx(np.ceil(x), abs=2)
    # training that costs time moves the break-even later
    dear = plan(curve, pool, h, ([10, 200], [6.0, 120.0]), target=0.6, machine_price_per_hour=40.0)
    assert dear.break_even[0] is not None and dear.break_even[0] > p.break_even[0]
    costly = plan(curve, pool, h, ([10, 200], [600.0, 12000.0]), target=0.6, machine_price_per_hour=50.0)
    assert costly.break_even[0] is None  # training dearer than any saving: never pays
    with pytest.raises(ValueError, match="3 distinct"):
        fit_curve([10, 10, 25], [0.1, 0.2, 0.3])


def test_planner_on_the_real_loop_run(loop_run):
    res = loop_run[0]
    df = res.to_pandas()
    curve, p = plan_rounds(df, project_images=1000, n_boot=100)
    assert np.isfinite(curve.params).all()
    measured = float(df["saved_fraction"].iloc[-1])
    lo, hi = curve.interval(12)
    assert lo - 0.05 <= measured <= hi + 0.05
    if curve.predict(1000) <= 0.0:  # a model that saves nothing never repays its labels
        assert p.break_even[0] is None
    with pytest.raises(ValueError, match="3 distinct"):
        honesty_check(df, early_max=8)  # rounds 4 and 8 only: 3 parameters need 3 counts


def test_cli_plans_a_real_run_and_refuses_bad_input(loop_run, tmp_path, capsys):
    from autolabel.cli import main as cli

    out = loop_run[4]
    assert cli(["loop-plan", str(out / "loop.json"), "--project-images", "1000", "--target", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "CurveFit(s(n) = " in text and '"break_even"' in text
    assert cli(["loop", "--images", str(FACES / "images"), "--labels", str(tmp_path / "none.json"),
                "--out", str(tmp_path / "run")]) == 2
    assert "none.json: no such labels file" in capsys.readouterr().err
    labels = tmp_path / "few.json"
    coco = json.loads((FACES / "instances.json").read_text())
    ims = coco["images"][:20]
    labels.write_text(json.dumps({**coco, "images": ims, "annotations": [
        a for a in coco["annotations"] if a["image_id"] in {i["id"] for i in ims}]}))
    assert cli(["loop", "--images", str(FACES / "images"), "--labels", str(labels), "--rounds", "10", "40",
                "--out", str(tmp_path / "run")]) == 2
    assert "the pool has 16" in capsys.readouterr().err
    assert not (tmp_path / "run" / "round_1").exists()  # refused before any training
