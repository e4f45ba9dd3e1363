"""Shared fixtures: real models and real data from ../shared (never downloaded)."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared")).resolve()
MODELS = Path(os.environ.get("AUTOLABEL_MODEL_DIR", SHARED / "models"))
DATA = SHARED / "data"
COCO150 = DATA / "coco-val-150"
BCCD = DATA / "bccd"


def pytest_configure(config: pytest.Config) -> None:
    # the resolver finds the shared models by bare name, as a user's model dir would
    os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(MODELS))


@pytest.fixture(scope="session")
def coco150() -> Path:
    if not (COCO150 / "instances.json").is_file():
        pytest.fail(f"shared data missing: {COCO150} (set AUTOLABEL_SHARED)")
    return COCO150


@pytest.fixture(scope="session")
def bccd() -> Path:
    if not (BCCD / "instances.json").is_file():
        pytest.fail(f"shared data missing: {BCCD} (set AUTOLABEL_SHARED)")
    return BCCD


@pytest.fixture(scope="session")
def yolov5n():
    import autolabel as al

    return al.load_detector("yolov5n.onnx")


@pytest.fixture(scope="session")
def server(coco150):
    """A real Label Studio server for the session, serving coco-val-150's parent as local files."""
    from ls_server import SERVER

    try:
        exe = SERVER.find_executable()
    except FileNotFoundError as e:
        pytest.fail(f"Label Studio is needed for these tests: {e}")
    srv = SERVER.LabelStudioServer.start(coco150.parent, executable=exe)
    yield srv
    srv.stop()


def coco_stats(gt: dict, dets: list[dict], max_dets: tuple[int, int, int] = (1, 10, 100)) -> list[float]:
    """pycocotools' 12 bbox stats (mAP50-95 first, mAP50 second) of COCO result dicts
    against a COCO ground-truth dict: the reference the tests check our pipeline with."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(x) for x in ev.stats]
