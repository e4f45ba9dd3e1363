"""Training for the ML backend: Label Studio's "Start training" and annotation webhooks.

:class:`ServeTrainer` reads a project's submitted annotations through our Label Studio
client (:func:`autolabel.labelstudio.pull`), copies their images into a run folder, and
fine-tunes in a **child process** (``autolabel train``, within ``budget_minutes``), so
``/predict`` keeps answering with the served model meanwhile and a training can be killed
(:meth:`ServeTrainer.cancel`) without touching the server. When it finishes, the served
model and the new one are scored on the new run's held-back validation split
(:func:`autolabel.training.evaluate`, pycocotools mAP50-95); only a better new model is
swapped in (:meth:`~autolabel.serve.backend.Backend.swap`, under the lock ``/predict``
holds), and its ONNX export is served. A failed, killed or worse training leaves the
served model as it was. One training at a time: a request while one runs is refused
(:class:`TrainingBusy`, HTTP 409).

Security: the base ``.pt`` is a pickle that runs code when loaded; give only a trusted one.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import unquote

from autolabel.core import Results

__all__ = ["ServeTrainer", "TrainingBusy", "TrainSettings"]

log = logging.getLogger("autolabel.serve")


class TrainingBusy(RuntimeError):
    """A training is already running (HTTP 409)."""


@dataclass(frozen=True)
class TrainSettings:
    """How ``autolabel serve`` trains (``--train-*`` options)."""

    work_dir: str  #: run folders ``run-<n>`` go here
    budget_minutes: float = 10.0
    base: str = "yolo11n-coco.pt"
    imgsz: int | None = None
    epochs: int | None = None
    min_images_per_class: int = 5
    train_after: int = 0  #: start a training after this many new annotations (webhook); 0: only on request
    grace_seconds: float = 120.0  #: past the budget, a training child process is killed


class ServeTrainer:
    """Background fine-tuning that swaps the backend's model when validation improves.

    Args:
        backend: the :class:`~autolabel.serve.backend.Backend` served.
        settings: :class:`TrainSettings`.
        client: makes the Label Studio :class:`~autolabel.labelstudio.Client` to read with.
    """

    def __init__(self, backend: Any, settings: TrainSettings, client: Callable[[], Any]):
        self.backend, self.settings, self._client = backend, settings, client
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled = False
        self._runs = itertools.count(1)
        self._new_annotations: dict[str, int] = {}
        self.status: dict[str, Any] = {"state": "idle"}

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, project: int) -> dict[str, Any]:
        """Start training on ``project``'s annotations in the background.

        Returns:
            ``{"job", "status": "started", "project"}``.

        Raises:
            TrainingBusy: a training is running (its job and start time named).
        """
        with self._lock:
            if self.running:
                raise TrainingBusy(f"training job {self.status.get('job')} on project {self.status.get('project')} "
                                   f"is running since {self.status.get('started')}; one training at a time")
            job = f"run-{next(self._runs)}"
            self._cancelled = False
            self.status = {"state": "running", "job": job, "project": project,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "model_version": self.backend.model_version}
            self._thread = threading.Thread(target=self._run, args=(project, job), name=f"autolabel-{job}", daemon=True)
            self._thread.start()
        log.info("training %s started on project %s (budget %g min)", job, project, self.settings.budget_minutes)
        return {"job": job, "status": "started", "project": project}

    def annotation_event(self, project: int) -> dict[str, Any] | None:
        """Count a new annotation; start training after ``train_after`` of them (when idle)."""
        if self.settings.train_after <= 0:
            return None
        n = self._new_annotations.get(str(project), 0) + 1
        self._new_annotations[str(project)] = n
        if n < self.settings.train_after or self.running:
            return None
        self._new_annotations[str(project)] = 0
        return self.start(project)

    def cancel(self) -> bool:
        """Kill the running training's process; the served model stays. Returns whether one ran."""
        with self._lock:
            proc, running = self._proc, self.running
            self._cancelled = running
        if proc is not None and proc.poll() is None:
            proc.kill()
        return running

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the running training (tests, scripts); returns :attr:`status`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return dict(self.status)

    # -- the background job ------------------------------------------------------------------
    def _run(self, project: int, job: str) -> None:
        run = os.path.join(self.settings.work_dir, job)
        try:
            labels = self._collect(project, run)
            result = self._train(labels, run)
            outcome = self._compare_and_swap(result, run)
            self.status.update(state="done", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), **outcome)
        except Exception as e:  # reported in the status and the log; the served model is untouched
            state = "cancelled" if self._cancelled else "failed"
            log.error("training %s %s: %s: %s (serving %s unchanged)", job, state, type(e).__name__, e,
                      self.backend.model_version)
            self.status.update(state=state, error=f"{type(e).__name__}: {e}", model_version=self.backend.model_version)
        finally:
            self._proc = None

    def _collect(self, project: int, run: str) -> str:
        """The project's submitted annotations as COCO in ``run/labels.json``, images in ``run/images``."""
        from autolabel.formats import write_coco
        from autolabel.labelstudio import pull
        from autolabel.labelstudio.client import control, get_project, tasks

        client = self._client()
        measured = pull(project, client=client, fit=False)
        ctrl = control(get_project(client, project), f"project {project}")
        urls: dict[str, tuple[int, str]] = {}
        for t in tasks(client, project):
            url = str(t["data"].get(ctrl.image_field) or "")
            urls[str(t["data"].get("key") or unquote(url))] = (int(t["id"]), url)
        img_dir = os.path.join(run, "images")
        os.makedirs(img_dir, exist_ok=True)
        dets = []
        for d in measured.ground_truth.detections:
            assert d.image is not None
            tid, url = urls[d.image.key]
            name = f"task-{tid}{os.path.splitext(url.split('?')[-1])[1] or '.jpg'}"
            self._copy_image(url, os.path.join(img_dir, name))
            dets.append(d.with_image(replace(d.image, key=name, path=None)))
        log.info("training data: %d annotated tasks of project %s", len(dets), project)
        return write_coco(Results(dets, measured.ground_truth.class_names), os.path.join(run, "labels.json"))[0]

    def _copy_image(self, url: str, dst: str) -> None:
        item = self.backend.images.item(os.path.basename(dst), url)
        if item.path is not None:  # local files under the document root
            shutil.copyfile(item.path, dst)
            return
        with open(dst, "wb") as f:
            f.write(self.backend.images.fetch(getattr(item, "url")))

    def _train(self, labels: str, run: str) -> dict[str, Any]:
        """``autolabel train`` in a child process; its result JSON."""
        s = self.settings
        result_path = os.path.join(run, "result.json")
        cmd = [sys.executable, "-m", "autolabel.cli", "train", "--labels", labels, "--images",
               os.path.join(run, "images"), "--out", os.path.join(run, "out"), "--base", s.base,
               "--budget-minutes", str(s.budget_minutes), "--min-images-per-class", str(s.min_images_per_class),
               "--json", result_path, "--quiet"]
        cmd += ["--imgsz", str(s.imgsz)] if s.imgsz else []
        cmd += ["--epochs", str(s.epochs)] if s.epochs else []
        with open(os.path.join(run, "train.log"), "wb") as out:
            with self._lock:
                if self._cancelled:
                    raise RuntimeError("cancelled before training started")
                self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = self._proc.wait(s.budget_minutes * 60 + s.grace_seconds)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                raise RuntimeError(f"training ran past its budget of {s.budget_minutes:g} min; killed") from None
        if rc != 0:
            with open(os.path.join(run, "train.log"), encoding="utf-8", errors="replace") as f:
                tail = f.read()[-600:]
            raise RuntimeError(f"autolabel train exited with status {rc}{' (killed)' if rc < 0 else ''}: {tail}")
        with open(result_path, encoding="utf-8") as f:
            return dict(json.load(f))

    def _compare_and_swap(self, result: dict[str, Any], run: str) -> dict[str, Any]:
        """Score both models on the new validation split; swap when the new one is better."""
        from autolabel.detectors import load_detector
        from autolabel.training import evaluate

        val_images, val_gt = os.path.join(run, "out", "data", "images", "val"), os.path.join(run, "out", "data", "val.json")
        new = load_detector(result["model_onnx"])
        new_map = evaluate(new, val_images, val_gt)[0]
        old_version = self.backend.model_version
        old_map = evaluate(self.backend.detector, val_images, val_gt, self.backend.class_map)[0]
        better = new_map > old_map
        if better:
            self.backend.swap(new)
        log.info("training done: %s mAP50-95 %.3f vs served %s %.3f on %d validation images: %s", new.model_id,
                 new_map, old_version, old_map, result["val_images"], "swapped in" if better else "kept the served model")
        return {"new_model_id": new.model_id, "new_map50_95": new_map, "served_map50_95": old_map, "swapped": better,
                "model_version": self.backend.model_version, "train_seconds": result["train_seconds"],
                "model_card": result["model_card"]}
