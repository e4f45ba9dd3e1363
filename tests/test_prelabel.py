"""End-to-end pre-labeling from Python and the shell, accuracy, and bad input."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import autolabel as al
from autolabel.cli import main

EXAMPLE = Path(__file__).parent / "data" / "example"


def _coco_map(pred_json: Path, gt_json: Path) -> tuple[float, float]:
    """mAP50-95 and mAP50 of a COCO predictions *dataset* against ground truth,
    matching images by file_name and categories by name."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(gt_json))
    pred = json.loads(pred_json.read_text())
    img_id = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
    cat_id = {c["name"]: c["id"] for c in gt.dataset["categories"]}
    pred_img = {im["id"]: img_id[im["file_name"]] for im in pred["images"]}
    pred_cat = {c["id"]: cat_id[c["name"]] for c in pred["categories"]}
    dts = [
        {"image_id": pred_img[a["image_id"]], "category_id": pred_cat[a["category_id"]], "bbox": a["bbox"], "score": a["score"]}
        for a in pred["annotations"]
    ]
    ev = COCOeval(gt, gt.loadRes(dts), "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def test_cli_prelabel_coco_reaches_reference_map(tmp_path, coco150, capsys):
    out = tmp_path / "OUT"
    rc = main(["prelabel", str(coco150 / "images"), "--model", "yolov5n.onnx", "--format", "coco",
               "--conf", "0.001", "--out", str(out), "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["images"] == 150
    files = list(out.glob("*.json"))
    assert len(files) == 1
    m, m50 = _coco_map(files[0], coco150 / "instances.json")
    assert m >= 0.31 and m50 >= 0.48, (m, m50)


def test_python_api_quick_start(tmp_path):
    det = al.load_detector("yolov5n.onnx")
    assert det.model_id.startswith("yolov5n@6a4f08578465")
    results = al.prelabel(str(EXAMPLE), det, conf=0.25, progress=False)
    assert len(results) == 4 and results.num_boxes > 0 and not results.failures
    df = results.to_pandas()
    assert len(df) == results.num_boxes and set(df["image"]) <= {p.name for p in EXAMPLE.glob("*.jpg")}
    assert (df["score"] >= 0.25).all()
    written = results.save(str(tmp_path / "out"), format="coco")
    assert all(Path(p).resolve().is_relative_to((tmp_path / "out").resolve()) for p in written)


def test_bundled_default_model_works_without_model_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOLABEL_MODEL_DIR", raising=False)
    monkeypatch.setenv("AUTOLABEL_CACHE", str(tmp_path / "cache"))
    res = al.prelabel(str(EXAMPLE), progress=False)
    assert res.model_id.startswith("yolov5n@") and res.num_boxes > 0


def _bad_batch(tmp_path: Path, coco150: Path) -> Path:
    d = tmp_path / "mixed"
    d.mkdir()
    good = sorted((coco150 / "images").glob("*.jpg"))[:6]
    for p in good:
        shutil.copy(p, d / p.name)
    data = good[0].read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.png").write_text("not an image at all")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    (d / "dangling.jpg").symlink_to(d / "does-not-exist.jpg")  # unreadable path (we run as root)
    return d


def test_bad_inputs_are_reported_and_skipped(tmp_path, coco150, yolov5n, capsys):
    d = _bad_batch(tmp_path, coco150)
    res = al.prelabel(str(d), yolov5n, progress=False)
    good = sorted(p.name for p in d.glob("0*.jpg"))  # the six real COCO images
    assert sorted(x.image.key for x in res) == good and res.num_boxes > 0
    reasons = {f.key: f.reason for f in res.failures}
    assert set(reasons) == {"truncated.jpg", "zero.jpg", "text.png", "corrupt.jpg", "dangling.jpg"}
    assert "empty" in reasons["zero.jpg"] and "not an image" in reasons["text.png"]
    assert "not found" in reasons["dangling.jpg"]
    # the same through the CLI: finished work kept, non-zero exit and a summary that says so
    rc = main(["prelabel", str(d), "--out", str(tmp_path / "o"), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    assert json.loads(captured.out)["status"] == "completed with 5 skipped"
    assert "truncated.jpg" in captured.err
    written = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert len(written["images"]) == 6


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "no-such-model.onnx"], "looked in"),
        (["--format", "pdf"], "unknown format"),
        (["--class-map", "{cm}"], "does not have"),
    ],
)
def test_configuration_errors_fail_before_any_work(tmp_path, args, message, capsys):
    cm = tmp_path / "cm.yaml"
    cm.write_text("mapping: {unicorn: horse}\n")
    args = [a.replace("{cm}", str(cm)) for a in args]
    out = tmp_path / "never"
    rc = main(["prelabel", str(EXAMPLE), "--out", str(out), "--quiet", *args])
    assert rc == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_an_empty_folder_is_the_same_clear_error_from_the_cli_and_the_api(tmp_path, yolov5n, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no image here")
    out = tmp_path / "out"
    assert main(["prelabel", str(empty), "--out", str(out)]) == 2  # progress bar on: still none drawn
    err = capsys.readouterr().err
    assert err.strip() == f"autolabel prelabel: error: no images found in folder {empty}"
    assert not out.exists()  # no out/.autolabel/ left behind
    with pytest.raises(al.NoImagesError, match=f"^no images found in folder {empty}$"):
        al.prelabel(empty, yolov5n)
    with pytest.raises(al.NoImagesError, match="no images found in glob"):
        al.run_job(str(empty / "*.jpg"), out, yolov5n)
    assert not out.exists()
    with pytest.raises(al.NoImagesError, match="no images found in an empty list of images"):
        al.prelabel([], yolov5n)


def test_models_says_where_the_shared_models_are_and_how_to_point_at_them(tmp_path):
    """A fresh shell (no AUTOLABEL_MODEL_DIR): the README's shared model names are not
    found, and both `autolabel models` and the failed lookup say where they are and how."""
    from conftest import MODELS

    env = {k: v for k, v in os.environ.items() if k != "AUTOLABEL_MODEL_DIR"}
    env["AUTOLABEL_SHARED"] = str(MODELS.parent)
    cli = [sys.executable, "-m", "autolabel.cli"]
    r = subprocess.run([*cli, "models"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    hint = f"export AUTOLABEL_MODEL_DIR={MODELS.resolve()}"
    assert "searched, in order: user cache:" in r.stdout and hint in r.stdout
    r = subprocess.run([*cli, "prelabel", str(EXAMPLE), "--model", "yolov5n-320.onnx", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and "not found; looked in" in r.stderr and hint in r.stderr
    env["AUTOLABEL_MODEL_DIR"] = str(MODELS)  # as the README says: then the name is found
    r = subprocess.run([*cli, "prelabel", str(EXAMPLE), "--model", "yolov5n-320.onnx", "--out", str(tmp_path / "o"),
                        "--quiet"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_corrupt_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(ValueError, match="broken.onnx"):
        al.load_detector(str(bad))


def test_console_script_and_models_listing(tmp_path):
    exe = Path(sys.executable).parent / "autolabel"
    r = subprocess.run([str(exe), "models"], capture_output=True, text=True, check=True)
    assert "yolov5n.onnx" in r.stdout and "bundled" in r.stdout and "$AUTOLABEL_MODEL_DIR" in r.stdout
    r = subprocess.run([str(exe), "prelabel", str(EXAMPLE), "--out", str(tmp_path / "o"), "--format", "yolo"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "100%" in r.stderr  # the progress bar
    labels = list((tmp_path / "o").rglob("*.txt"))
    assert len(labels) == 4
    lines = sum(len(p.read_text().splitlines()) for p in labels)
    assert json.loads(r.stdout)["boxes"] == lines > 0


def _fails_on_third_batch(monkeypatch):
    """The job's detector is the real one, wrapped so that its third batch raises (a
    backend bug, not a bad input)."""
    import autolabel.engine.job as job

    real = job.load_detector

    def load(spec, **options):
        det = real(spec, **options)
        predict, calls = det.predict_prepared, []

        def flaky(batch, *args):
            calls.append(len(batch))
            if len(calls) == 3:
                raise RuntimeError("backend bug in batch 3")
            return predict(batch, *args)

        det.predict_prepared = flaky
        return det

    monkeypatch.setattr(job, "load_detector", load)


def test_a_backend_bug_stops_the_job_with_its_traceback_and_keeps_finished_batches(
    tmp_path, coco150, monkeypatch, capsys
):
    from autolabel.engine import ShardLog

    src = tmp_path / "imgs"
    src.mkdir()
    images = sorted((coco150 / "images").glob("*.jpg"))[:10]
    for p in images:
        (src / p.name).symlink_to(p)
    out = tmp_path / "out"
    args = ["prelabel", str(src), "--model", "yolov5n-320.onnx", "--out", str(out), "--quiet", "--batch-size", "2"]
    _fails_on_third_batch(monkeypatch)
    assert main(["--debug", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: backend bug in batch 3" in err
    assert "in flaky" in err  # the frame that raised is shown
    records = list(ShardLog(out).records())
    assert [r["key"] for r in records] == [p.name for p in images[:4]]  # batches 1 and 2, nothing of 3
    assert all(r["status"] == "ok" for r in records) and not (out / "annotations.json").exists()

    assert main(args) == 2  # without --debug: one line naming the error, no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeError: backend bug in batch 3" in err and "--debug" in err
    assert [r["key"] for r in ShardLog(out).records()] == [p.name for p in images[:8]]  # resumed, 2 more batches

    monkeypatch.undo()  # the backend fixed: the same command resumes after the kept batches
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["already_done"], summary["processed"], summary["images"]) == (8, 2, 10)

