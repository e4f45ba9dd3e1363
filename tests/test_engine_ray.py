"""The Ray engine gives the local engine's output: a real local Ray of two workers,
one Ray session for the module (starting Ray is the slow part)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import ray  # the "ray" extra (scripts/setup.sh installs .[all])

from autolabel.cli import main
from autolabel.engine import ShardLog, run_job

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")  # Ray Data's own

FAST = "yolov5n-320.onnx"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _export(out: Path) -> dict:
    d = json.loads((out / "annotations.json").read_text())
    d["info"].pop("date_created")
    return d


def test_ray_output_equals_local_on_coco_val_150(tmp_path, coco150, local_ray):
    local = run_job(coco150 / "images", tmp_path / "local", FAST, progress=False)
    dist = run_job(coco150 / "images", tmp_path / "ray", FAST, engine="ray", progress=False,
                   ray_options={"actors": 2, "num_cpus": 1, "batch_size": 8})
    assert (local.images, local.exit_code) == (dist.images, dist.exit_code) == (150, 0)
    assert dist.boxes == local.boxes > 0
    assert _export(tmp_path / "ray") == _export(tmp_path / "local")
    assert list(ShardLog(tmp_path / "ray").records()) == list(ShardLog(tmp_path / "local").records())


def test_ray_cli_resumes_a_local_log_and_lists_failures(tmp_path, coco150, local_ray, capsys):
    src = tmp_path / "imgs"
    src.mkdir()
    images = sorted((coco150 / "images").glob("*.jpg"))[:10]
    for p in images[:6]:
        (src / p.name).symlink_to(p)
    (src / "zero.jpg").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["prelabel", str(src), "--model", FAST, "--out", str(out), "--quiet"]) == 1
    for p in images[6:]:
        (src / p.name).symlink_to(p)
    capsys.readouterr()
    rc = main(["prelabel", str(src), "--model", FAST, "--out", str(out), "--quiet", "--engine", "ray",
               "--ray-actors", "2"])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 1 and (summary["processed"], summary["already_done"], summary["images"]) == (4, 7, 10)
    assert "zero.jpg,empty file" in (out / "errors.csv").read_text()
    keys = [r["key"] for r in ShardLog(out).records()]
    assert len(keys) == len(set(keys)) == 11


def test_ray_refuses_video_and_loaded_detectors(tmp_path, yolov5n, local_ray):
    with pytest.raises(ValueError, match="path or name"):
        run_job(tmp_path, tmp_path / "out", yolov5n, engine="ray", progress=False)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    with pytest.raises(ValueError, match="engine='local'"):
        run_job(video, tmp_path / "out", FAST, engine="ray", progress=False)


def test_ray_reads_its_inputs_as_the_pool_takes_them(coco150, local_ray):
    """The driver never lists every input first: when the first batch comes back it has
    read at most the batches in flight (2 per actor) plus one."""
    from autolabel.detectors import load_detector
    from autolabel.engine.ray_engine import iter_prelabel_ray
    from autolabel.sources import Item

    paths = sorted((coco150 / "images").glob("*.jpg"))[:40]
    read = []

    def items():
        for p in paths:
            read.append(p.name)
            yield Item(p.name, str(p))

    det = load_detector(FAST)
    batches = iter_prelabel_ray(items(), FAST, det, 0.25, 0.6, 300, {"actors": 1, "batch_size": 4})
    first = next(batches)
    assert [d.image.key for d in first] == [p.name for p in paths[:4]]
    assert len(read) <= 4 * 3 < len(paths)
    rest = [d for b in batches for d in b]
    assert len(read) == 40 and [d.image.key for d in first + rest] == [p.name for p in paths]
