"""The README's examples, run as written where they are cheap, so they cannot drift.

Every fenced ``bash`` / ``python`` block of README.md must be named in :data:`BLOCKS` (by a
line it contains): run, or skipped with the reason and the test that covers that path. A
new block fails :func:`test_every_readme_block_is_run_or_skipped_with_a_reason` until it
is classified.

Runnable blocks run in order, in one scratch folder that looks like a user's project:
``photos/`` (the four bundled example images), ``instances.json`` (their COCO ground
truth, from coco-val-150), ``human.json`` (the same labels), ``tests/data/example`` and an
``autolabel`` command (and ``.venv/bin/autolabel``) that run this checkout.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MODELS, ROOT

README = ROOT / "README.md"
EXAMPLE = ROOT / "tests" / "data" / "example"

#: a line of the block -> ("run", {text: replacement}) or ("skip", reason)
BLOCKS: dict[str, tuple[str, object]] = {
    "bash scripts/setup.sh && .venv/bin/autolabel prelabel": ("run", {"bash scripts/setup.sh && ": ""}),  # no install
    "bash scripts/test.sh": ("skip", "the test suite itself (.ci/run)"),
    "export AUTOLABEL_MODEL_DIR=../shared/models": ("run", {}),
    "det = al.load_detector(\"yolov5n.onnx\")": ("run", {}),
    "autolabel models": ("run", {}),
    "autolabel savings --predictions out/annotations.json": (
        "run", {"sample/annotations.json": "out/annotations.json"}),  # the sample: the 4 images labeled above
    "autolabel prelabel calib/": ("skip", "minutes of CPU on 800 coco-person images; test_routing.py::"
                                  "test_cli_person_calibrate_route_meets_the_bound_on_new_images runs this path"),
    "autolabel audit --labels human.json": ("run", {"model.json": "out/annotations.json"}),
    "export LABEL_STUDIO_URL": ("skip", "needs a Label Studio server and its token; test_labelstudio.py runs push and pull"),
    "autolabel prelabel ../shared/data/tud-campus --track": (
        "skip", "tracking video and a benchmark report; test_tracking.py and test_video_*.py cover them"),
    "autolabel serve --model yolov5n.onnx": ("skip", "a long-running server; test_serve.py starts `autolabel serve`"),
    "autolabel prelabel photos/ --model yolo11n-pose.onnx": (
        "skip", "a pose model over a folder of photos; test_keypoints.py runs prelabel and savings on keypoints"),
    "autolabel train --labels first50.json": (
        "skip", "training for minutes; test_train.py runs `autolabel train` for seconds and prelabels with its model"),
    "from autolabel.training.loop import": ("skip", "rounds of training; test_loop.py runs a 3-round loop"),
    "autolabel loop --images photos/": ("skip", "rounds of training; test_loop.py runs the loop and its CLI"),
    "autolabel loop-plan loop/loop.json": ("skip", "needs finished loop runs; test_loop.py runs loop-plan on a real run"),
}


def readme_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced bash/python block, in order."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(bash|python)\n(.*?)^```", README.read_text(), re.S | re.M)]


def _rule(code: str) -> tuple[str, tuple[str, object]] | None:
    hits = [(k, v) for k, v in BLOCKS.items() if k in code]
    return hits[0] if len(hits) == 1 else None


def test_every_readme_block_is_run_or_skipped_with_a_reason():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    unclassified = [code.splitlines()[0] for _, code in blocks if _rule(code) is None]
    assert not unclassified, f"README blocks matching no rule (or several) in BLOCKS: {unclassified}"
    used = {_rule(code)[0] for _, code in blocks}  # type: ignore[index]
    assert used == set(BLOCKS), f"rules matching no README block: {set(BLOCKS) - used}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, coco150: Path) -> Path:
    """A scratch project: photos/, their ground truth, an `autolabel` command for this checkout."""
    work = tmp_path_factory.mktemp("readme")
    (work / "photos").mkdir()
    names = sorted(p.name for p in EXAMPLE.glob("*.jpg"))
    for n in names:
        (work / "photos" / n).symlink_to(EXAMPLE / n)
    gt = json.loads((coco150 / "instances.json").read_text())
    ids = {im["id"] for im in gt["images"] if im["file_name"] in names}
    sub = {**gt, "images": [im for im in gt["images"] if im["id"] in ids],
           "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    assert len(sub["images"]) == len(names) == 4
    for f in ("instances.json", "human.json"):
        (work / f).write_text(json.dumps(sub))
    (work / "tests" / "data").mkdir(parents=True)
    (work / "tests" / "data" / "example").symlink_to(EXAMPLE)
    (work / "shared").symlink_to(MODELS.parent)  # ../shared/models from the project's subfolder
    for where in (work / "bin", work / ".venv" / "bin"):
        where.mkdir(parents=True)
        shim = where / "autolabel"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m autolabel.cli "$@"\n')
        shim.chmod(0o755)
    return work


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AUTOLABEL_MODEL_DIR"}  # the README says how to set it
    env.update(PATH=f"{project / 'bin'}{os.pathsep}{env['PATH']}", PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return env


def _run(project: Path, lang: str, code: str) -> subprocess.CompletedProcess[str]:
    # one shell for the whole README, as a user's terminal: the export above holds below
    setup = "export AUTOLABEL_MODEL_DIR=../shared/models\n" if "export AUTOLABEL_MODEL_DIR" not in code else ""
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", setup + code]
    cwd = project / "work"
    cwd.mkdir(exist_ok=True)
    for name in ("photos", "instances.json", "human.json", "tests", ".venv", "bin"):
        if not (cwd / name).exists():
            (cwd / name).symlink_to(project / name)
    env = _env(project)
    if lang == "python":
        env["AUTOLABEL_MODEL_DIR"] = str(project / "shared" / "models")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _runnable() -> list[tuple[str, str, dict[str, str]]]:
    out = []
    for lang, code in readme_blocks():
        rule = _rule(code)
        if rule is not None and rule[1][0] == "run":
            subs: dict[str, str] = rule[1][1]  # type: ignore[assignment]
            for a, b in subs.items():
                assert a in code, f"README block changed: {a!r} no longer in it"
                code = code.replace(a, b)
            out.append((rule[0], lang, code))
    return out


def test_readme_examples_run_as_written(project: Path):
    """The runnable blocks, in README order, in one project folder; each must exit 0."""
    ran = []
    for key, lang, code in _runnable():
        r = _run(project, lang, code)
        assert r.returncode == 0, f"README block {key!r} failed ({r.returncode}):\n{code}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        ran.append((key, r))
    outs = dict((k, r.stdout) for k, r in ran)
    work = project / "work"
    assert json.loads((work / "out" / "example" / "annotations.json").read_text())["images"]  # the quick start
    assert (work / "out" / "annotations.json").is_file() and (work / "report").is_dir()
    assert "saved" in outs["autolabel savings --predictions out/annotations.json"]
    audit = outs["autolabel audit --labels human.json"]
    assert "of 2000 images at random" in audit  # inspect-plan --batch 2000
    assert "plain: inspect" in audit and "guided: inspect the" in audit and "of 4 images" in audit  # --audit alone
    assert "yolov5n-320.onnx" in outs["autolabel models"]  # found once AUTOLABEL_MODEL_DIR is set as the README says


def test_skipped_blocks_name_a_reason():
    for key, (what, why) in BLOCKS.items():
        assert what in ("run", "skip"), key
        if what == "skip":
            assert isinstance(why, str) and len(why) > 20, key
