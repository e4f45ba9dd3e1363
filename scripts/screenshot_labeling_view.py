"""Screenshot of Label Studio's labeling view with pre-labels served live by ``autolabel serve``.

What it does, all on 127.0.0.1: starts a throwaway Label Studio (``labelstudio_server.py``)
and ``autolabel serve``, creates a project, imports one coco-val-150 image as a task,
connects the backend through Label Studio's API (``/api/ml``), asks Label Studio to
retrieve predictions, opens the task in headless Chromium and saves a PNG of the
labeling view with the served boxes drawn on the image.

Needs Chromium from the system packages and Playwright from pip (no browser download)::

    apt-get update && apt-get install -y chromium
    pip install playwright          # do NOT run `playwright install`
    python scripts/screenshot_labeling_view.py \\
        --out benchmarks/reports/labelstudio-served-prelabels.png

Label Studio comes from ``$AUTOLABEL_LS_BIN`` or ``.venv-ls`` (see ``labelstudio_server.py``),
images and models from ``../shared`` (``$AUTOLABEL_SHARED``, ``$AUTOLABEL_MODEL_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]  # autolabel, and the sibling labelstudio_server.py


def _wait(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    shared = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared")).resolve()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "reports" / "labelstudio-served-prelabels.png"))
    p.add_argument("--image", default="000000000139.jpg", help="an image file name in --images")
    p.add_argument("--images", default="coco-val-150/images", help="the image folder, under ../shared/data")
    p.add_argument("--model", default="yolov5n.onnx")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = p.parse_args(argv)
    os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(shared / "models"))

    from playwright.sync_api import sync_playwright

    from autolabel import labelstudio as ls
    from autolabel.detectors import load_detector
    from autolabel.formats import labelstudio_config
    from autolabel.labelstudio.push import _local_files_prefix

    import labelstudio_server as srv_mod
    data = shared / "data"
    det = load_detector(args.model)
    names, keypoints = det.class_names, det.keypoint_spec  # a pose model: the project gets a KeyPointLabels control
    with srv_mod.LabelStudioServer.start(data) as server, tempfile.TemporaryDirectory() as tmp:
        port = srv_mod.free_port()
        env = {**os.environ, "LABEL_STUDIO_API_KEY": server.token, "PYTHONPATH": str(ROOT)}
        log = open(Path(tmp) / "serve.log", "wb")
        backend = subprocess.Popen(
            [sys.executable, "-m", "autolabel.cli", "serve", "--model", args.model, "--port", str(port),
             "--label-studio-url", server.url, "--document-root", str(data)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait(f"http://127.0.0.1:{port}/health")
            client = ls.Client(server.url, server.token)
            pid = client.request("POST", "/api/projects", {"title": "served pre-labels",
                                                        "label_config": labelstudio_config(names, keypoints=keypoints)})["id"]
            prefix = _local_files_prefix(client, pid, str(data / args.images), str(data))
            client.request("POST", f"/api/projects/{pid}/import", [{"image": prefix + args.image}])
            ml = client.request("POST", "/api/ml", {"url": f"http://127.0.0.1:{port}", "project": pid, "title": "autolabel"})
            client.request("POST", "/api/dm/actions", {"selectedItems": {"all": True, "excluded": []}},
                           params={"id": "retrieve_tasks_predictions", "project": pid})
            (task,) = list(ls.tasks(client, pid))
            (pred,) = task["predictions"]
            # the labeling view pre-fills the regions of the project's chosen model version
            client.request("PATCH", f"/api/projects/{pid}", {"model_version": pred["model_version"], "show_collab_predictions": True})
            print(json.dumps({"backend": ml["state"], "task": task["id"], "regions": len(pred["result"]),
                              "model_version": pred["model_version"]}))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.goto(f"{server.url}/user/login/")
                page.fill("input[name=email]", server.username)
                page.fill("input[name=password]", server.password)
                page.click("button[type=submit]")
                page.wait_for_load_state("networkidle")
                page.goto(f"{server.url}/projects/{pid}/data?task={task['id']}")
                page.wait_for_selector("canvas, .konvajs-content", timeout=60_000)
                page.wait_for_timeout(4000)  # the image loads and the regions are drawn
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out)
                browser.close()
            print(f"wrote {args.out}")
        finally:
            backend.terminate()
            backend.wait(20)
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
