"""The batch engine: crash safety under SIGKILL, bad inputs, resume rules, the shard
log format, video sampling and the temporal-consistency score. Real models, real
COCO images, real subprocesses killed for real."""
from __future__ import annotations

from dataclasses import replace

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import autolabel as al
from autolabel.cli import main
from autolabel.core import Detections, ImageInfo, Results
from autolabel.engine import LogError, ResumeError, ShardLog, export_log, run_job
from autolabel.engine.log import encode_record
from autolabel.formats import read_coco
from autolabel.engine.temporal import frame_similarity, frame_table

FAST = "yolov5n-320.onnx"


def _images(coco150: Path, n: int, start: int = 0) -> list[Path]:
    return sorted((coco150 / "images").glob("*.jpg"))[start: start + n]


def _export(out: Path) -> dict:
    """The COCO export without its creation time."""
    d = json.loads((out / "annotations.json").read_text())
    d["info"].pop("date_created", None)
    return d


def _log_keys(out: Path) -> list[str]:
    return [r["key"] for r in ShardLog(out).records()]


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted_run(tmp_path, coco150):
    src = tmp_path / "images"
    src.mkdir()
    for p in _images(coco150, 60):
        (src / p.name).symlink_to(p)
    cmd = [sys.executable, "-m", "autolabel.cli", "prelabel", str(src), "--model", "yolov5n.onnx",
           "--conf", "0.25", "--batch-size", "2", "--quiet", "--out"]
    ref = subprocess.run([*cmd, str(tmp_path / "ref")], capture_output=True, text=True, check=False)
    assert ref.returncode == 0, ref.stderr

    out, log = tmp_path / "out", ShardLog(tmp_path / "out")
    rng = random.Random(20240605)
    # kill when this run has written a random number of records (0: right after it opened its
    # shard), plus a random fraction of a batch: progress-based, so it holds on fast machines too
    targets = [0] + [rng.randint(3, 10) for _ in range(3)]
    kills, rc = 0, None
    for target in [*targets, None]:
        shards_before = len(log.shards()) if log.dir.is_dir() else 0
        proc = subprocess.Popen([*cmd, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if target is not None:
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                shards = log.shards() if log.dir.is_dir() else []
                if len(shards) > shards_before and shards[-1].read_bytes().count(b"\n") >= target:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.1))
            assert proc.poll() is None, "the run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            continue
        stdout, stderr = proc.communicate(timeout=300)
        rc = proc.returncode
        assert rc == 0, stderr
    assert kills == 4 and rc == 0
    summary = json.loads(stdout)
    assert summary["status"] == "completed" and summary["images"] == 60 and summary["already_done"] > 0
    assert _export(out) == _export(tmp_path / "ref")
    keys = _log_keys(out)
    assert len(keys) == len(set(keys)) == 60  # nothing lost, nothing twice
    assert len(log.shards()) == kills + 1


def _mixed_folder(tmp_path: Path, coco150: Path) -> tuple[Path, set[str]]:
    d = tmp_path / "mixed"
    d.mkdir()
    good = _images(coco150, 20)
    for p in good:
        shutil.copy(p, d / p.name)
    data = good[0].read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])  # a real JPEG cut in half
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("this is a text file with a .jpg name\n")
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(4000))
    # tests run as root, so chmod 000 would not stop reads: a dangling symlink is unreadable for anyone
    (d / "dangling.jpg").symlink_to(d / "gone.jpg")
    return d, {p.name for p in good}


def test_bad_inputs_are_listed_with_reasons_and_good_ones_all_labeled(tmp_path, coco150, capsys):
    d, good = _mixed_folder(tmp_path, coco150)
    out = tmp_path / "out"
    rc = main(["prelabel", str(d), "--model", FAST, "--out", str(out), "--batch-size", "4", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 1
    summary = json.loads(captured.out)
    assert summary["status"] == "completed with 5 skipped" and summary["images"] == 20
    exported = read_coco(out / "annotations.json")
    assert {x.image.key for x in exported} == good
    errors = (out / "errors.csv").read_text().splitlines()
    assert errors[0] == "key,reason"
    reasons = dict(line.split(",", 1) for line in errors[1:])
    assert set(reasons) == {"truncated.jpg", "zero.jpg", "text.jpg", "corrupt.jpg", "dangling.jpg"}
    assert "empty" in reasons["zero.jpg"] and "not an image" in reasons["text.jpg"]
    assert "not found" in reasons["dangling.jpg"] and "decode" in reasons["truncated.jpg"]
    assert "truncated.jpg" in captured.err

    # a directory named like an image, given explicitly, is one more listed failure
    (d / "folder.jpg").mkdir()
    paths = [d / "folder.jpg", *[d / g for g in sorted(good)[:3]]]
    s = run_job(paths, tmp_path / "out2", FAST, progress=False)
    assert (s.status, s.exit_code, s.images) == ("completed with 1 skipped", 1, 3)
    assert "is a directory" in (tmp_path / "out2" / "errors.csv").read_text()


def test_all_inputs_bad_is_failed(tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    s = run_job([tmp_path / "a.jpg"], tmp_path / "out", FAST, progress=False)
    assert (s.status, s.exit_code, s.skipped) == ("failed", 2, 1)


def test_log_round_trips_and_export_equals_in_memory_prelabel(tmp_path, coco150):
    paths = _images(coco150, 12)
    det = al.load_detector(FAST)
    mem = al.prelabel(list(map(str, paths)), det, progress=False)
    s = run_job(paths, tmp_path / "out", det, progress=False)
    assert s.exit_code == 0 and s.processed == 12
    logged = ShardLog(tmp_path / "out").results()
    assert [d.image for d in logged] == [d.image for d in mem]
    # boxes, scores, classes exactly (the log keeps only the top class probabilities)
    assert all(replace(a, class_probs=None) == replace(b, class_probs=None) for a, b in zip(logged, mem, strict=True))
    top = np.sort(mem.detections[0].class_probs, axis=1)[:, ::-1][:, :5]
    assert np.allclose(np.sort(logged.detections[0].class_probs, axis=1)[:, ::-1][:, :5], top, atol=5e-5)
    exported = read_coco(tmp_path / "out" / "annotations.json")
    assert [x.image.key for x in exported] == [x.image.key for x in mem]
    assert all(np.array_equal(a.xyxy, b.xyxy) for a, b in zip(exported, mem, strict=True))


def test_log_only_then_export_in_other_formats_with_a_class_map(tmp_path, coco150):
    paths = _images(coco150, 12)
    out = tmp_path / "out"
    s = run_job(paths, out, FAST, export=False, progress=False)
    assert s.written == [] and not (out / "annotations.json").exists() and s.images == 12
    results, _ = export_log(out, "yolo", class_map="coco-vehicles")
    assert (out / "data.yaml").is_file() and len(list((out / "labels").glob("*.txt"))) == 12
    mem = al.prelabel(list(map(str, paths)), FAST, class_map="coco-vehicles", progress=False)
    mem = [replace(d, class_probs=None) for d in mem]  # the export view reads no class probabilities
    assert results.class_names == mem[0].class_names and all(a == b for a, b in zip(results, mem, strict=True))


def test_two_inference_streams_give_the_same_output(tmp_path, coco150):
    paths = _images(coco150, 20)
    run_job(paths, tmp_path / "one", FAST, progress=False)
    s = run_job(paths, tmp_path / "two", FAST, streams=2, detector_options={"threads": 1}, progress=False)
    assert s.images == 20 and _export(tmp_path / "two") == _export(tmp_path / "one")
    with pytest.raises(ValueError, match="concurrent batches"):  # Ultralytics predictors are not thread-safe
        run_job(paths, tmp_path / "three", "yolov8n-bccd.pt", streams=2, progress=False)


def test_same_input_twice_gives_no_duplicates(tmp_path, coco150):
    paths = _images(coco150, 5)
    s1 = run_job([*paths, *paths[:3]], tmp_path / "out", FAST, progress=False)
    assert s1.processed == 5 and s1.images == 5
    s2 = run_job(paths, tmp_path / "out", FAST, progress=False)
    assert (s2.processed, s2.already_done, s2.images) == (0, 5, 5)
    keys = _log_keys(tmp_path / "out")
    assert sorted(keys) == sorted(p.name for p in paths)
    assert len(_export(tmp_path / "out")["images"]) == 5


def test_resume_with_another_model_is_refused_and_no_resume_starts_over(tmp_path, coco150, capsys):
    paths = _images(coco150, 4)
    out = tmp_path / "out"
    assert run_job(paths, out, FAST, progress=False).exit_code == 0
    with pytest.raises(ResumeError, match=r"model_id: log has 'yolov5n-320@.*', this run 'yolov5n@"):
        run_job(paths, out, "yolov5n.onnx", progress=False)
    with pytest.raises(ResumeError, match="conf"):
        run_job(paths, out, FAST, conf=0.5, progress=False)
    rc = main(["prelabel", str(paths[0].parent), "--model", "yolov5n.onnx", "--out", str(out), "--quiet"])
    assert rc == 2 and "--no-resume" in capsys.readouterr().err
    assert _export(out)["info"]["model_id"].startswith("yolov5n-320@")  # untouched
    s = run_job(paths, out, "yolov5n.onnx", resume=False, progress=False)
    assert (s.processed, s.already_done) == (4, 0) and s.model_id.startswith("yolov5n@")
    assert _export(out)["info"]["model_id"] == s.model_id
    assert {r["model_id"] for r in ShardLog(out).records()} == {s.model_id}


def test_retry_failed_processes_repaired_inputs(tmp_path, coco150):
    d = tmp_path / "imgs"
    d.mkdir()
    good = _images(coco150, 3)
    for p in good:
        shutil.copy(p, d / p.name)
    (d / "late.jpg").write_bytes(b"")  # not copied yet
    out = tmp_path / "out"
    assert run_job(d, out, FAST, progress=False).skipped == 1
    shutil.copy(good[0], d / "late.jpg")
    assert run_job(d, out, FAST, progress=False).skipped == 1  # failures count as done
    s = run_job(d, out, FAST, retry_failed=True, progress=False)
    assert (s.processed, s.images, s.skipped, s.exit_code) == (1, 4, 0, 0)
    assert (out / "errors.csv").read_text() == "key,reason\n"


def _det(key: str, boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9), classes, ("a", "b"),
                      ImageInfo(key, 100, 100, "/v.mp4", int(key), float(key)))


def test_torn_last_line_is_ignored_and_a_corrupt_middle_line_is_an_error(tmp_path):
    out = tmp_path / "out"
    manifest = {"model_id": "m@1", "class_names": ["a", "b"], "conf": 0.25, "iou": 0.6, "max_det": 300}
    with ShardLog(out).open(manifest) as log:
        with pytest.raises(LogError, match="another autolabel job"):
            ShardLog(out).open(manifest)  # the lock
        log.append([encode_record(_det("1", [[0, 0, 10, 10]], [0]), "m@1")])
        torn = encode_record(_det("2", [[0, 0, 10, 10]], [1]), "m@1")
        log._file.write(torn[: len(torn) // 2].encode())  # what kill -9 mid-write leaves
        log._file.flush()
    log = ShardLog(out)
    assert [r["key"] for r in log.records()] == ["1"] and log.torn == ["shard-00000.jsonl"]
    with ShardLog(out).open(manifest) as log2:  # a restart writes to a new shard
        assert log2.done_keys() == {"1"}
        log2.append([encode_record(_det("2", [[0, 0, 10, 10]], [1]), "m@1")])
    assert [d.image.key for d in ShardLog(out).results()] == ["1", "2"]
    shard = ShardLog(out).shards()[0]
    shard.write_bytes(b"{broken\n" + shard.read_bytes())
    with pytest.raises(LogError, match=r"shard-00000.jsonl:1: corrupt record"):
        list(ShardLog(out).records())


def test_frame_similarity_follows_its_definition():
    a = _det("0", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 1])
    assert frame_similarity(a, a) == 1.0
    assert frame_similarity(_det("0", [], []), _det("1", [], [])) == 1.0
    assert frame_similarity(a, _det("1", [], [])) == 0.0
    # one box moved by half its width (IoU 1/3), the other changed class (0)
    b = _det("1", [[5, 0, 15, 10], [20, 20, 30, 30]], [0, 0])
    assert frame_similarity(a, b) == pytest.approx((1 / 3 + 0 + 1 / 3 + 0) / 4)
    assert frame_similarity(a, b) == frame_similarity(b, a)
    # temporal consistency = mean similarity with the previous and next sampled frame
    c = _det("2", [[5, 0, 15, 10], [20, 20, 30, 30]], [0, 0])  # same boxes as b
    table = frame_table(Results([c, a, b], ("a", "b")))  # any order in, sorted by frame out
    s = frame_similarity(a, b)
    assert table["frame_index"].tolist() == [0, 1, 2]
    assert table["temporal_consistency"].tolist() == pytest.approx([s, (s + 1) / 2, 1.0])
    assert np.isnan(frame_table(Results([a], ("a", "b")))["temporal_consistency"][0])  # no neighbour


def _make_video(path: Path, coco150: Path, fps: float = 10.0) -> int:
    """Frames 0-7 show one COCO image, 8-15 another (MJPG: repeated frames decode identically,
    except the very first frame, which OpenCV's MJPG round trip changes slightly)."""
    a, b = (cv2.resize(cv2.imread(str(p)), (320, 240)) for p in _images(coco150, 2, start=7))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
    frames = [a] * 8 + [b] * 8
    for f in frames:
        writer.write(f)
    writer.release()
    return len(frames)


def test_video_every_k_frames_and_every_t_seconds_with_temporal_consistency(tmp_path, coco150):
    video = tmp_path / "clip.avi"
    _make_video(video, coco150)
    out = tmp_path / "out"
    s = run_job(str(video), out, FAST, every=2, progress=False)
    assert s.exit_code == 0 and s.images == 8
    table = frame_table(ShardLog(out).results())
    assert table["frame_index"].tolist() == list(range(0, 16, 2))
    assert table["timestamp"].tolist() == pytest.approx([i / 10 for i in range(0, 16, 2)])
    assert table["key"].tolist() == [f"clip.avi#{i}" for i in range(0, 16, 2)]
    tc = dict(zip(table["frame_index"], table["temporal_consistency"]))
    assert [tc[i] for i in (4, 10, 12, 14)] == [1.0, 1.0, 1.0, 1.0]  # identical neighbours: no change
    res = {d.image.frame_index: d for d in ShardLog(out).results()}
    cut = frame_similarity(res[6], res[8])
    assert cut < 0.9 and tc[6] == pytest.approx((1 + cut) / 2) and tc[8] == pytest.approx((1 + cut) / 2)
    on_disk = (out / "frames.csv").read_text().splitlines()
    assert on_disk[0] == "key,video,frame_index,timestamp,boxes,temporal_consistency" and len(on_disk) == 9
    names = [im["file_name"] for im in _export(out)["images"]]
    assert names == [f"clip/frame_{i:06d}.jpg" for i in range(0, 16, 2)]

    out2 = tmp_path / "out2"
    rc = main(["prelabel", str(video), "--model", FAST, "--every-seconds", "0.3", "--out", str(out2), "--quiet"])
    assert rc == 0
    table = frame_table(ShardLog(out2).results())
    assert table["frame_index"].tolist() == [0, 3, 6, 9, 12, 15]
    assert table["timestamp"].tolist() == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.2, 1.5])
    assert all(r["path"] == str(video) for r in ShardLog(out2).records())


def test_model_that_fails_to_load_fails_before_any_work(tmp_path, coco150):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="broken.onnx"):
        run_job(_images(coco150, 2), tmp_path / "out", str(bad), progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="unknown engine"):
        run_job(_images(coco150, 2), tmp_path / "out", FAST, engine="spark", progress=False)


def test_job_options_are_validated_before_any_work_and_keywords_still_work(tmp_path, coco150):
    images = _images(coco150, 3)
    with pytest.raises(TypeError, match=r"unknown options: 'cof' \(did you mean 'conf' for 'cof'\?\)"):
        run_job(images, tmp_path / "out", FAST, cof=0.3)
    with pytest.raises(ValueError, match=r"iou\n.*greater than 0"):
        run_job(images, tmp_path / "out", FAST, iou=0)
    with pytest.raises(ValueError, match=r"conf must be in \[0, 1\], got 1.5"):
        al.JobOptions(conf=1.5)
    with pytest.raises(ValueError, match="ray_options need engine='ray'"):
        al.JobOptions(ray_options={"actors": 2})
    with pytest.raises(ValueError, match=r"progress\n.*valid boolean"):
        al.JobOptions(progress="no")
    assert not (tmp_path / "out").exists()
    # an options object, keywords on top of it, and source keywords: one job, the same boxes
    opts = al.JobOptions(conf=0.4, progress=False, export=False)
    a = run_job(images, tmp_path / "a", FAST, "coco", opts, export=True)
    b = run_job(images, tmp_path / "b", FAST, conf=0.4, progress=False, recursive=True)
    assert a.images == b.images == 3 and a.boxes == b.boxes > 0 and a.written
    assert opts.export is False  # frozen: the call did not change it
    with pytest.raises(ValueError, match=r"unknown source options \['evry'\]"):
        al.JobOptions(source_options={"evry": 3})
