"""``autolabel train`` on real face-masks images: seconds of real Ultralytics training
(a dozen images, 160 px, 1 epoch), then what the run must leave behind."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import autolabel as al
from autolabel.cli import main as cli
from autolabel.formats import read_coco
from autolabel.training import TrainOptions, choose_imgsz, read_card

from conftest import DATA, MODELS

FACES = DATA / "face-masks"
FAST = TrainOptions(imgsz=160, epochs=1, min_images_per_class=2, progress=False, workers=0)


def _subset(path: Path, n_rare: int = 4, n_other: int = 8, skip: int = 0) -> dict:
    """face-masks images: ``n_rare`` with the rare class, ``n_other`` without (after ``skip`` of each)."""
    coco = json.loads((FACES / "instances.json").read_text())
    rare = {a["image_id"] for a in coco["annotations"] if a["category_id"] == 3}
    ims = ([i for i in coco["images"] if i["id"] in rare][skip:skip + n_rare]
           + [i for i in coco["images"] if i["id"] not in rare][skip:skip + n_other])
    ids = {i["id"] for i in ims}
    sub = {**coco, "images": ims, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    path.write_text(json.dumps(sub))
    return sub


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    sub = _subset(tmp / "labels.json")
    result = al.train(tmp / "labels.json", FACES / "images", tmp / "out", FAST)
    return result, sub, tmp


def test_pt_and_onnx_predict_the_same_boxes(run):
    result, sub, tmp = run
    pt, onnx = al.load_detector(result.model_pt), al.load_detector(result.model_onnx, draft=False)
    assert onnx.class_names == pt.class_names == ("without_mask", "with_mask", "mask_weared_incorrect")
    assert onnx.input_size == pt.input_size == (160, 160)
    images = sorted(str(p) for p in (FACES / "images").glob("*.jpg"))[200:206]  # not trained on
    a, b = al.prelabel(images, pt, conf=0.01, progress=False), al.prelabel(images, onnx, conf=0.01, progress=False)
    assert a.num_boxes > 0
    for x, y in zip(a, b):
        assert len(x) == len(y), x.image.key
        i, j = np.argsort(-x.scores, kind="stable"), np.argsort(-y.scores, kind="stable")
        np.testing.assert_allclose(x.scores[i], y.scores[j], atol=2e-3)
        np.testing.assert_allclose(x.xyxy[i], y.xyxy[j], atol=1.0)  # pixels
        assert (x.class_ids[i] == y.class_ids[j]).all()


def test_model_card_is_right(run):
    result, sub, tmp = run
    card = read_card(result.out)
    # counts made here from the labels file, independently of the library
    cat = {c["id"]: c["name"] for c in sub["categories"]}
    by_file = {im["id"]: im["file_name"] for im in sub["images"]}
    split = json.loads((Path(result.out) / "data" / "split.json").read_text())
    assert set(split["train"]) | set(split["val"]) == set(by_file.values()) and not set(split["train"]) & set(split["val"])
    assert card["validation"]["keys"] == sorted(split["val"]) and len(split["val"]) == round(0.2 * len(by_file))
    for part, keys in (("train", set(split["train"])), ("val", set(split["val"]))):
        anns = [a for a in sub["annotations"] if by_file[a["image_id"]] in keys]
        assert card["data"]["counts"][part]["boxes"] == {n: Counter(cat[a["category_id"]] for a in anns)[n]
                                                         for n in cat.values()}
        assert card["data"]["counts"][part]["images"] == {
            n: len({a["image_id"] for a in anns if cat[a["category_id"]] == n}) for n in cat.values()}
        assert card["data"]["counts"][part]["n_images"] == len(keys)
    assert card["base"]["sha256"] == hashlib.sha256((MODELS / "yolo11n-coco.pt").read_bytes()).hexdigest()
    assert card["model_id"] == al.load_detector(result.model_pt).model_id == result.model_id
    assert card["onnx_model_id"] == al.load_detector(result.model_onnx).model_id
    assert card["training"]["epochs_run"] == 1 and card["training"]["imgsz"] == 160
    assert 0 <= card["validation"]["map50"] <= 1 and card["validation"]["map50"] == result.map50
    # every pre-label of the new model carries its id, through every writer
    pre = al.prelabel(str(Path(result.out) / "data" / "images" / "val"), result.model_onnx, progress=False)
    pre.save(str(tmp / "pre"), format="coco")
    assert read_coco(tmp / "pre" / "annotations.json").model_id == card["onnx_model_id"]


def test_savings_and_the_ladder_take_the_fine_tuned_model(run):
    from autolabel.savings.ladder import MachinePrices, run_ladder
    from autolabel.savings.report import savings_report

    result, sub, tmp = run
    gt = Path(result.out) / "data" / "val.json"
    images = Path(result.out) / "data" / "images" / "val"
    pre = al.prelabel(str(images), result.model_onnx, conf=0.05, progress=False)
    rep = savings_report(pre, read_coco(gt), "extreme-clicking", "best")
    assert rep.summary["images"] == result.val_images and rep.summary["gt_boxes"] > 0
    ladder, _, _ = run_ladder([result.model_onnx], images, gt, prices=MachinePrices(cpu_hour=1.0))
    row = ladder.rows[0]
    card = read_card(result.out)
    assert row["model"] == "out-model" and row["training_s"] == card["training"]["total_seconds"]
    assert row["training_cost"] == pytest.approx(row["training_s"] / 3600 * card["training"]["cpu_cores"])
    assert "training_cost" in ladder.to_markdown()


def test_a_tiny_budget_stops_early_and_keeps_the_best_weights(tmp_path):
    _subset(tmp_path / "labels.json")
    budget = 0.25  # minutes, for set-up, training, export and evaluation
    result = al.train(tmp_path / "labels.json", FACES / "images", tmp_path / "out", FAST, epochs=200,
                      budget_minutes=budget)
    card = read_card(result.out)
    assert result.stopped_by_budget and result.epochs < 200 and Path(result.model_pt).is_file()
    assert Path(result.model_onnx).is_file()
    # Ultralytics' epoch loop ran no longer than what the budget left it, give or take one batch
    rows = (Path(result.out) / "train" / "results.csv").read_text().splitlines()[1:]
    loop_s = float(rows[-1].split(",")[1])
    assert loop_s <= card["training"]["settings"]["time"] * 3600 + 10
    assert card["training"]["budget_minutes"] == budget


def test_choose_imgsz_follows_object_size_and_budget():
    gt = read_coco(FACES / "instances.json")
    free = choose_imgsz(gt, 40, None)
    assert free.imgsz >= 320 and "10th-percentile" in free.reason
    tight = choose_imgsz(gt, 400, 1.0)  # 400 images in one minute: the budget caps the size
    assert tight.imgsz < free.imgsz and "fit in 1 min" in tight.reason


@pytest.mark.parametrize("case, message", [
    ("unknown_class", "not in the class list"),
    ("empty_class", "classes with no labeled box"),
    ("few_images", "too few labeled images per class"),
    ("missing_image", "are not in"),
    ("unreadable", "not valid JSON"),
    ("no_labels_file", "no such labels file"),
])
def test_bad_input_is_refused_before_training(tmp_path, capsys, case, message):
    sub = _subset(tmp_path / "labels.json")
    labels, extra = tmp_path / "labels.json", []
    if case == "unknown_class":
        extra = ["--classes", "with_mask,without_mask"]
    elif case == "empty_class":
        extra = ["--classes", "with_mask,without_mask,mask_weared_incorrect,helmet"]
    elif case == "few_images":
        extra = ["--min-images-per-class", "5"]
    elif case == "missing_image":
        sub["images"][0]["file_name"] = "not-there.jpg"
        labels.write_text(json.dumps(sub))
    elif case == "unreadable":
        labels.write_text("{not json")
    elif case == "no_labels_file":
        labels = tmp_path / "nothing.json"
    rc = cli(["train", "--labels", str(labels), "--images", str(FACES / "images"), "--out", str(tmp_path / "out"),
              "--imgsz", "160", "--epochs", "1", *extra] + (["--min-images-per-class", "2"] if case != "few_images" else []))
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert not (tmp_path / "out" / "train").exists()  # nothing trained
    if case in ("unknown_class", "empty_class", "few_images"):
        assert ("helmet" if case == "empty_class" else "mask_weared_incorrect") in err  # the class is named
    if case in ("missing_image", "unreadable"):
        assert str(labels) in err  # the file is named


def test_an_interrupted_run_resumes_from_its_last_epoch(tmp_path):
    import subprocess
    import sys
    import time

    _subset(tmp_path / "labels.json")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "autolabel.cli", "train", "--labels", str(tmp_path / "labels.json"), "--images",
           str(FACES / "images"), "--out", str(out), "--imgsz", "160", "--epochs", "3", "--min-images-per-class", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv, last = out / "train" / "results.csv", out / "train" / "weights" / "last.pt"
    deadline = time.monotonic() + 300
    while not (csv.is_file() and len(csv.read_text().splitlines()) >= 2 and last.is_file()):
        assert proc.poll() is None and time.monotonic() < deadline, "training ended before it could be interrupted"
        time.sleep(0.2)
    proc.kill()  # interrupted after its first epoch
    proc.wait()
    assert not (out / "model.pt").exists()
    result = al.train(tmp_path / "labels.json", FACES / "images", out, FAST, epochs=3, resume=True)
    epochs = [int(r.split(",")[0]) for r in csv.read_text().splitlines()[1:]]
    assert epochs[-1] == 3 and result.epochs < 3  # it went on to epoch 3 without starting over
    assert read_card(result.out)["training"]["resumed"] and Path(result.model_pt).is_file()
