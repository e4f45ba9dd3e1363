"""``prelabel --track`` through the resumable engine (a real kill -9), and the video commands."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, MODELS

ROOT = Path(__file__).resolve().parent.parent
FRAMES = 24


def _clip(tmp: Path, name: str, src: Path, frames: int = FRAMES) -> Path:
    """A MOT folder with the first ``frames`` frames of ``src`` and their ground truth."""
    d = tmp / name
    (d / "img1").mkdir(parents=True)
    (d / "gt").mkdir()
    for i in range(1, frames + 1):
        (d / "img1" / f"{i:06d}.jpg").symlink_to(src / "img1" / f"{i:06d}.jpg")
    ini = (src / "seqinfo.ini").read_text().splitlines()
    (d / "seqinfo.ini").write_text("\n".join(f"seqLength={frames}" if x.startswith("seqLength") else x for x in ini))
    rows = [r for r in (src / "gt" / "gt.txt").read_text().splitlines() if r and int(r.split(",")[0]) <= frames]
    (d / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return d


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "autolabel.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _prelabel(seq: Path, out: Path) -> list[str]:
    return ["prelabel", str(seq), "--track", "--model", str(MODELS / "yolo11n-int8.onnx"), "--class-map", "person",
            "--format", "mot", "--out", str(out), "--quiet", "--batch-size", "1", "--streams", "1"]


def test_kill_9_during_track_then_the_same_command_gives_identical_mot(tmp_path):
    seq = _clip(tmp_path, "campus", DATA / "tud-campus")
    ref = _cli(*_prelabel(seq, tmp_path / "ref"))
    assert ref.wait(300) == 0, ref.stderr.read()
    out = tmp_path / "killed"
    p = _cli(*_prelabel(seq, out))
    log = out / ".autolabel"
    deadline = time.time() + 120
    while time.time() < deadline:  # kill once some frames are logged, before the export
        shards = list(log.glob("*.jsonl*")) if log.is_dir() else []
        if sum(s.read_text().count("\n") for s in shards if s.is_file()) >= 4:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (out / "campus.txt").exists() and not (out / "TUD-Campus.txt").exists()
    again = _cli(*_prelabel(seq, out))
    assert again.wait(300) == 0, again.stderr.read()
    summary = json.loads(again.stdout.read())
    assert 0 < summary["already_done"] < FRAMES and summary["processed"] == FRAMES - summary["already_done"]
    assert (out / "TUD-Campus.txt").read_bytes() == (tmp_path / "ref" / "TUD-Campus.txt").read_bytes()
    assert (out / "TUD-Campus.txt").stat().st_size > 0


def test_video_commands_savings_calibrate_route(tmp_path):
    a = _clip(tmp_path, "campus", DATA / "tud-campus")
    b = _clip(tmp_path, "stadt", DATA / "tud-stadtmitte")
    tracks = []
    for seq, name in ((a, "TUD-Campus"), (b, "TUD-Stadtmitte")):
        p = _cli(*_prelabel(seq, tmp_path / f"out-{name}"))
        assert p.wait(300) == 0, p.stderr.read()
        tracks.append(tmp_path / f"out-{name}" / f"{name}.txt")
    p = _cli("video-savings", "--ground-truth", str(a), "--tracks", str(tracks[0]), "--json", str(tmp_path / "s.json"))
    assert p.wait(120) == 0, p.stderr.read()
    s = json.loads((tmp_path / "s.json").read_text())
    assert set(s["seconds"]) == {"scratch_per_frame", "assisted_per_frame", "scratch_keyframes", "assisted_per_track"}
    assert s["saved_vs_keyframes"] == pytest.approx(1 - s["seconds"]["assisted_per_track"] / s["seconds"]["scratch_keyframes"])
    assert 0 <= s["model_share"] <= 1
    pol = tmp_path / "policy.json"
    p = _cli("video-calibrate", "--sequences", str(a), str(b), "--tracks", *map(str, tracks),
             "--config", "video-factory-pass-90", "--out", str(pol))
    assert p.wait(120) == 0, p.stderr.read()
    assert "too few sequences" in json.loads(pol.read_text())["calibration"]["note"]
    p = _cli("video-route", "--tracks", str(tracks[0]), "--policy", str(pol), "--out", str(tmp_path / "route"))
    assert p.wait(120) == 0, p.stderr.read()
    rows = list(csv.DictReader(open(tmp_path / "route" / "segments.csv")))
    assert list(rows[0])[:4] == ["track_id", "start", "end", "route"]
    assert {r["route"] for r in rows} <= {"accept", "review"}
    assert min(int(r["start"]) for r in rows) >= 1 and max(int(r["end"]) for r in rows) <= FRAMES
    assert (tmp_path / "route" / "check_frames.csv").is_file()
    bad = _cli("video-calibrate", "--sequences", str(a), str(b), "--tracks", str(tracks[0]), "--out", str(pol))
    assert bad.wait(60) == 2 and "one track file per sequence" in bad.stderr.read()
