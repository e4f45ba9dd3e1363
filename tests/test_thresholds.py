"""``autolabel savings`` defaults a user can trust, and per-class pre-label thresholds, on
yolov5n's real predictions for coco-val-150."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import autolabel as al
from autolabel.cli import main
from autolabel.formats import read_coco
from autolabel.matching import match_sweep
from autolabel.config import DEFAULT_THRESHOLDS
from autolabel.detectors.thresholds import ClassThresholds
from autolabel.savings.thresholds import fit_class_thresholds, per_class_gain


@pytest.fixture(scope="module")
def low_conf_file(coco150: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov5n predictions at --conf 0.001, the usual file for mAP, written by autolabel prelabel."""
    out = tmp_path_factory.mktemp("v5n")
    assert main(["prelabel", str(coco150 / "images"), "--model", "yolov5n.onnx", "--conf", "0.001",
                 "--out", str(out), "--quiet"]) == 0
    return out / "annotations.json"


def test_savings_default_reports_a_positive_saving_at_a_named_threshold(low_conf_file, coco150, tmp_path, capsys):
    gt = str(coco150 / "instances.json")
    assert main(["savings", "--predictions", str(low_conf_file), "--ground-truth", gt]) == 0
    cap = capsys.readouterr()
    m = re.search(r"saved (-?[\d.]+)% \(95% CI (-?[\d.]+)% to (-?[\d.]+)%\) at threshold (0\.\d\d)", cap.out)
    assert m, cap.out
    saved, lo, conf = float(m[1]), float(m[2]), float(m[4])
    assert saved > 0 and lo > 0 and conf > 0.001
    assert "the best of the sweep" in cap.out
    assert re.search(rf"holds \d+ predictions scoring below {conf:.2f}", cap.err)

    # the same number from a file filtered by hand at that threshold, every box taken as a pre-label
    data = json.loads(low_conf_file.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["score"] >= conf]
    filtered = tmp_path / "filtered.json"
    filtered.write_text(json.dumps(data))
    assert main(["savings", "--predictions", str(filtered), "--ground-truth", gt, "--every-prediction"]) == 0
    cap = capsys.readouterr()
    assert re.search(r"saved (-?[\d.]+)%", cap.out)[1] == m[1]
    assert "scoring below" not in cap.err

    # every prediction of the raw file as a pre-label: the trap the default avoids
    assert main(["savings", "--predictions", str(low_conf_file), "--ground-truth", gt, "--every-prediction"]) == 0
    assert float(re.search(r"saved (-?[\d.]+)%", capsys.readouterr().out)[1]) < -100


def test_class_thresholds_shrink_toward_the_global_one(low_conf_file, coco150):
    pred, gt = read_coco(low_conf_file), read_coco(coco150 / "instances.json")
    ct = fit_class_thresholds(match_sweep(pred, gt, DEFAULT_THRESHOLDS))
    fit = ct.fit.set_index("class")
    assert ct.default in DEFAULT_THRESHOLDS
    boxes = fit["gt_boxes"]
    # classes without boxes in the ground truth are not listed: they get the default
    assert set(ct.classes) == set(boxes[boxes > 0].index)
    assert ct.array(["person", "toaster"])[1] == ct.default or boxes["toaster"] > 0
    # each threshold lies between the class's own optimum and the global one, closer to its own
    # the more boxes it has: person (hundreds of boxes) keeps nearly its optimum, a 1-box class nearly the global
    lo, hi = np.minimum(fit["raw"], ct.default), np.maximum(fit["raw"], ct.default)
    assert ((fit["threshold"] >= lo - 1e-9) & (fit["threshold"] <= hi + 1e-9)).all()
    pull = (fit["threshold"] - ct.default).abs() / (fit["raw"] - ct.default).abs().where(lambda s: s > 0)
    few, many = pull[boxes.between(1, 3)].dropna(), pull[boxes >= 50].dropna()
    assert len(many) and len(few) and many.min() > 0.7 and few.max() < 0.15


def test_per_class_gain_is_measured_out_of_sample(low_conf_file, coco150):
    from autolabel.matching import match
    from autolabel.savings.edits import EditCounts, summarize

    pred, gt = read_coco(low_conf_file), read_coco(coco150 / "instances.json")
    g = per_class_gain(pred, gt, seed=1)
    assert [f["fit_on"] for f in g["folds"]] == ["A", "B"]
    assert all(f["global_threshold"] in DEFAULT_THRESHOLDS for f in g["folds"])
    assert g["gain_fraction"] == pytest.approx(g["per_class_saved_fraction"] - g["global_saved_fraction"])
    assert g["global_saved_fraction"] > 0.1 and abs(g["gain_fraction"]) < 0.05
    # in sample (fitted and measured on all images) the per-class thresholds look better than out of sample
    ct = g["thresholds"]
    kept = al.Results([ct.apply(d) for d in pred], pred.class_names, pred.model_id)
    in_sample = summarize(EditCounts.of(match(kept, gt)), n_boot=0).saved_fraction
    assert in_sample > g["per_class_saved_fraction"]
    print(f"per-class thresholds: in sample {in_sample:.2%}; out of sample {g['per_class_saved_fraction']:.2%} "
          f"against one global threshold {g['global_saved_fraction']:.2%}")


def test_prelabel_applies_per_class_thresholds(coco150, tmp_path):
    images = sorted((coco150 / "images").glob("*.jpg"))[:40]
    plain = al.prelabel(images, "yolov5n-320.onnx", conf=0.3, progress=False)
    per_class = al.prelabel(images, "yolov5n-320.onnx", conf={"person": 0.6, "default": 0.3}, progress=False)
    person = plain.class_names.index("person")
    n_between = 0
    for a, b in zip(plain, per_class):
        # per class = the plain run less its person boxes scoring in [0.3, 0.6)
        drop = (a.class_ids == person) & (a.scores < 0.6)
        n_between += int(drop.sum())
        assert np.array_equal(a[np.flatnonzero(~drop)].xyxy, b.xyxy)
        assert np.array_equal(a[np.flatnonzero(~drop)].class_ids, b.class_ids)
    assert n_between > 5  # the filter had something to remove

    # the CLI with a YAML gives the same boxes
    path = ClassThresholds(0.3, {"person": 0.6}).save(tmp_path / "t.yaml")
    assert yaml.safe_load(Path(path).read_text()) == {"default": 0.3, "classes": {"person": 0.6}}
    src = tmp_path / "imgs"
    src.mkdir()
    for p in images:
        (src / p.name).symlink_to(p)
    assert main(["prelabel", str(src), "--model", "yolov5n-320.onnx", "--conf-per-class", str(path),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    cli = read_coco(tmp_path / "out" / "annotations.json")
    by_name = {d.image.file_name: d for d in cli}
    for b in per_class:
        assert np.allclose(by_name[b.image.file_name].xyxy, b.xyxy, atol=1e-4)


def test_unknown_classes_in_per_class_thresholds_are_refused_before_any_image(coco150, tmp_path, capsys):
    det = al.load_detector("yolov5n-320.onnx")
    # an unreadable "image": reading it would be a skipped input, not this error
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"yolov5n-320 does not have: 'persn' \(did you mean 'person' for 'persn'\?\); "
                                         r"its 80 classes: person, bicycle, car.*toothbrush$"):
        al.prelabel([broken], det, conf={"persn": 0.5, "default": 0.3}, progress=False)
    with pytest.raises(ValueError, match=r"does not have: 'persn'"):
        al.run_job([broken], tmp_path / "job", det, conf={"persn": 0.5, "default": 0.3}, progress=False)
    assert not (tmp_path / "job").exists()  # refused before the log was opened

    # the CLI: exit 2, naming the unknown classes (a misspelling and a class of another model)
    path = ClassThresholds(0.3, {"person": 0.6, "persn": 0.5, "RBC": 0.4}).save(tmp_path / "t.yaml")
    images = coco150 / "images"
    assert main(["prelabel", str(images), "--model", "yolov5n-320.onnx", "--conf-per-class", path,
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "does not have: 'RBC', 'persn'" in err and "its 80 classes: person, bicycle" in err
    assert not (tmp_path / "out").exists()


def test_class_thresholds_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: 0.3\nclasses: {person: 1.5}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*person.*\[0, 1\]"):
        ClassThresholds.load(bad)
    bad.write_text("classes: {person: 0.5}\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*no default"):
        ClassThresholds.load(bad)


def test_cli_compare_gives_the_model_ladder(coco150, tmp_path, capsys):
    split = tmp_path / "split.txt"
    split.write_text("\n".join(sorted(p.stem for p in (coco150 / "images").glob("*.jpg"))[:8]) + "\n")
    rc = main(["compare", "--models", "yolov5n.onnx", "yolov5n-320.onnx", "--images", str(coco150 / "images"),
               "--ground-truth", str(coco150 / "instances.json"), "--out", str(tmp_path / "rep"),
               "--split-file", str(split), "--quiet", "--cpu-hour", "3600"])
    assert rc == 0
    out = capsys.readouterr().out
    assert re.search(r"images: run yolov5n(-320)? at threshold 0\.\d\d: saves [\d.]+ h per 1,000 images", out)
    md = (tmp_path / "rep" / "report-ladder.md").read_text()
    assert "Pareto" in md and "mAP50_95" in md and "net_annotation-factory_per_1000" in md
    # at USD 3600 a core-hour a CPU second costs USD 1: the CPU column is the measured CPU seconds x 1000
    rows = [ln.split() for ln in out.splitlines() if ln.split()[:1] in (["yolov5n"], ["yolov5n-320"]) and "fp32" in ln]
    assert len(rows) == 2
    for r in rows:
        cpu_s, cost = float(r[8]), float(r[9])
        assert cost == pytest.approx(cpu_s * 1000, rel=1e-3)


def test_compare_loads_every_model_before_labeling_any_image(coco150, tmp_path, capsys):
    rc = main(["compare", "--models", "yolov5n-320.onnx", "no-such-model.onnx", "--images", str(coco150 / "images"),
               "--ground-truth", str(coco150 / "instances.json"), "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert rc == 2 and "model 'no-such-model.onnx' not found" in err
    assert "prelabel yolov5n-320" not in err  # the first model's progress bar never started
    assert not (tmp_path / "rep").exists()
