"""``autolabel serve`` trains when Label Studio says "Start training": against the real server.

A project of 12 face-masks images, annotated through Label Studio's API with their ground
truth, is connected to ``autolabel serve --train-dir``; Label Studio's own
``/api/ml/<id>/train`` call starts a real (tiny: 160 px, 2 epochs) training in the
background. Meanwhile ``/predict`` answers with the served model and a second request is
refused; afterwards the new model is served only if it scored better on the held-back
images, and a killed training leaves the served model as it was.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from serve_process import start_serve, stop_serve

import autolabel as al
from autolabel import labelstudio as ls
from autolabel.formats import labelstudio_config, read_coco
from autolabel.formats.labelstudio import labelstudio_tasks
from autolabel.labelstudio.client import tasks as project_tasks
from autolabel.labelstudio.push import _local_files_prefix

from conftest import DATA
from test_train import _subset

ROOT = Path(__file__).resolve().parent.parent
NAMES = ["without_mask", "with_mask", "mask_weared_incorrect"]


@pytest.fixture(scope="module")
def project(server, tmp_path_factory):
    """A Label Studio project whose 12 tasks carry a submitted annotation (the ground truth)."""
    tmp = tmp_path_factory.mktemp("lsproject")
    _subset(tmp / "labels.json")
    gt = read_coco(tmp / "labels.json")
    client = ls.Client(server.url, server.token)
    pid = client.request("POST", "/api/projects", {"title": "faces", "label_config": labelstudio_config(NAMES)})["id"]
    prefix = _local_files_prefix(client, pid, str(DATA / "face-masks" / "images"), str(DATA))
    client.request("POST", f"/api/projects/{pid}/import", [{"image": prefix + d.image.key} for d in gt])
    regions = {t["data"]["image"]: t["predictions"][0]["result"] for t in labelstudio_tasks(gt, image_root_url=prefix)}
    for task in project_tasks(client, pid):
        client.request("POST", f"/api/tasks/{task['id']}/annotations",
                       {"result": regions[task["data"]["image"]], "lead_time": 30.0})
    return client, pid, tmp


@pytest.fixture(scope="module")
def backend(server, project, tmp_path_factory):
    """``autolabel serve`` with training on, serving a model that finds no faces at all."""
    tmp = tmp_path_factory.mktemp("serve-train")
    (tmp / "map.yaml").write_text("mapping:\n  toaster: with_mask\nkeep_unmapped: false\n")
    env = {**os.environ, "LABEL_STUDIO_API_KEY": server.token, "PYTHONPATH": str(ROOT)}
    args = ["--label-studio-url", server.url, "--document-root", str(DATA), "--model", "yolo11n-coco.pt",
            "--class-map", str(tmp / "map.yaml"), "--train-dir", str(tmp / "runs"), "--train-imgsz", "160",
            "--train-epochs", "2", "--train-budget-minutes", "3", "--train-min-images-per-class", "2"]
    proc, url = start_serve(args, tmp / "serve.log", env, wait_s=400 * 0.3)
    yield url, tmp
    stop_serve(proc)


def _wait(url: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = httpx.get(url + "/train", timeout=10).json()
        if status["state"] != "running":
            return status
        time.sleep(1)
    pytest.fail(f"training did not finish in {timeout} s: {status}")


def test_start_training_in_label_studio_trains_in_the_background_and_swaps_a_better_model(project, backend):
    client, pid, tmp = project
    url, serve_tmp = backend
    old = httpx.get(url + "/health").json()["model_version"]
    ml = client.request("POST", "/api/ml", {"url": url, "project": pid, "title": "autolabel"})
    client.request("POST", f"/api/ml/{ml['id']}/train")  # what "Start training" in Label Studio sends
    assert httpx.get(url + "/train").json()["state"] == "running"
    # /predict is not blocked, and answers with the served model
    task = next(iter(project_tasks(client, pid)))
    r = httpx.post(url + "/predict", json={"tasks": [task], "label_config": labelstudio_config(NAMES)}, timeout=60)
    assert r.status_code == 200 and r.json()["results"][0]["model_version"] == old
    # a second request while one runs is refused, with the reason
    again = httpx.post(url + "/train", json={"project": pid})
    assert again.status_code == 409 and "is running" in again.json()["error"]
    status = _wait(url)
    assert status["state"] == "done", status
    card = json.loads(Path(status["model_card"]).read_text())
    assert card["data"]["counts"]["all"]["n_images"] == 12  # every submitted annotation was read back
    new_id = al.load_detector(Path(status["model_card"]).parent / "model.onnx").model_id
    assert status["new_model_id"] == new_id and status["served_map50_95"] == 0.0  # a toaster finds no face
    assert status["swapped"] == (status["new_map50_95"] > 0.0)
    assert status["swapped"], status  # two epochs find some faces
    assert httpx.get(url + "/health").json()["model_version"] == new_id == status["model_version"]
    r = httpx.post(url + "/predict", json={"tasks": [task], "label_config": labelstudio_config(NAMES)}, timeout=60)
    assert r.json()["results"][0]["model_version"] == new_id


def test_a_killed_training_leaves_the_served_model(project, backend):
    client, pid, _ = project
    url, _ = backend
    serving = httpx.get(url + "/health").json()["model_version"]
    r = httpx.post(url + "/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    assert r.status_code == 200 and r.json()["status"] == "started"
    assert httpx.delete(url + "/train").json()["cancelled"] is True
    status = _wait(url)
    assert status["state"] == "cancelled" and status["model_version"] == serving
    assert httpx.get(url + "/health").json()["model_version"] == serving
