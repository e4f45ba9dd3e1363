"""The model side of the ML backend: tasks in, Label Studio predictions out.

:class:`Backend` holds one detector (anything :func:`autolabel.load_detector` resolves),
an optional class map, confidence thresholds (one, or one per class) and an optional
routing policy. :meth:`Backend.predict` runs a batch of tasks through the same batched
pipeline as :func:`autolabel.prelabel` (decode and download threads ahead of inference)
and writes each task's prediction with the project's region names, through the Label
Studio writer of :mod:`autolabel.formats` (boxes in percent of the image).

A batch stops at ``time_limit`` seconds: the tasks done by then get their predictions,
the others an ``error`` entry without ``result`` (Label Studio skips those and asks
again next time), and progress is logged after every inference batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Mapping, Sequence

from autolabel.core import Detections, Failure, Results
from autolabel.serve.images import ImageAccess, RefusedURL
from autolabel.serve.labelconfig import LabelConfigMismatch, RegionNames, check_labels, parse_label_config

__all__ = ["Backend"]

log = logging.getLogger("autolabel.serve")


class Backend:
    """A detector served to Label Studio.

    Args:
        model: a model spec for :func:`autolabel.load_detector`, or a ready detector.
        conf: confidence threshold, or per class (``{class: threshold}``, a YAML path or a
            :class:`~autolabel.thresholds.ClassThresholds`; classes not named keep the detector's).
        iou: NMS IoU threshold (detector default when ``None``).
        max_det: boxes per image at most.
        class_map: a class map (YAML path, dict or :class:`~autolabel.classmap.ClassMap`).
        policy: a fitted routing policy (JSON path or :class:`~autolabel.routing.FittedPolicy`):
            each prediction then carries its routing scores and queue under ``routing``.
        images: which image URLs may be read (:class:`~autolabel.serve.images.ImageAccess`).
        time_limit: seconds one predict request may take before it returns what is done.
        detector_options: passed to :func:`autolabel.load_detector` (``device``, ``batch_size``, ...).

    Raises:
        ValueError: bad thresholds, class map or policy (naming the problem).
    """

    def __init__(
        self,
        model: Any = None,
        conf: float | Mapping[str, float] | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        class_map: Any = None,
        policy: Any = None,
        images: ImageAccess | None = None,
        time_limit: float = 60.0,
        detector_options: Mapping[str, Any] | None = None,
    ):
        from autolabel.classmap import ClassMap
        from autolabel.detectors import load_detector
        from autolabel.routing import FittedPolicy
        from autolabel.detectors.thresholds import ClassThresholds

        self.detector = load_detector(model, **dict(detector_options or {}))
        det = self.detector
        self.class_map = None if class_map is None else ClassMap.load(class_map, det.class_names)
        self.class_names = self.class_map.target_names if self.class_map else det.class_names
        thresholds = ClassThresholds(det.conf if conf is None else float(conf)) if conf is None or isinstance(
            conf, (int, float)) else ClassThresholds.load(conf, default=det.conf)
        unknown = sorted(set(thresholds.classes) - set(self.class_names))
        if unknown:
            raise ValueError(f"per-class thresholds name classes the model does not emit: {unknown}")
        self.run_conf, self.thresholds = thresholds.floor, thresholds.array(self.class_names)
        _, self.iou, self.max_det = det.settings(None, iou, max_det)
        self.policy = None if policy is None else (
            policy if isinstance(policy, FittedPolicy) else FittedPolicy.load(policy)
        )
        if self.policy is not None:
            self.policy.check_model(det.model_id)
            if tuple(self.policy.class_names) != self.class_names:
                raise ValueError("the routing policy was fitted on other class names than this backend emits")
            self.run_conf = min(self.run_conf, self.policy.config.evidence_conf)
        if time_limit <= 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
        self.images = images or ImageAccess()
        self.time_limit = float(time_limit)
        self.projects: dict[str, RegionNames] = {}
        self.lock = threading.RLock()  # held by predict and swap: a request sees one model from start to end
        self._conf: Any = conf

    def swap(self, detector: Any) -> None:
        """Serve ``detector`` from the next request on (atomically: a running request finishes
        with the old model). Its classes are the project's labels: the class map and routing
        policy of the old model are dropped, per-class thresholds kept for classes it has.
        """
        from autolabel.detectors.thresholds import ClassThresholds

        given = self._conf
        thresholds = ClassThresholds(float(given) if isinstance(given, (int, float)) else detector.conf)
        if given is not None and not isinstance(given, (int, float)):
            loaded = ClassThresholds.load(given, default=detector.conf)
            thresholds = ClassThresholds(loaded.default, {c: t for c, t in loaded.classes.items()
                                                          if c in detector.class_names})
        with self.lock:
            if self.policy is not None or self.class_map is not None:
                log.warning("new model %s: the routing policy and class map of %s are dropped", detector.model_id,
                            self.model_version)
            self.detector, self.class_map, self.policy = detector, None, None
            self.class_names = detector.class_names
            self.run_conf, self.thresholds = thresholds.floor, thresholds.array(self.class_names)
        log.info("now serving %s", detector.model_id)

    @property
    def model_version(self) -> str:
        """The detector's model id: Label Studio's ``model_version`` of every prediction."""
        return self.detector.model_id

    def __repr__(self) -> str:
        return (
            f"Backend({self.model_version}, {len(self.class_names)} classes, conf {self.run_conf:g}+, "
            f"policy={'yes' if self.policy else 'no'}, {self.images!r})"
        )

    # -- protocol steps ------------------------------------------------------------------------
    def setup(self, project: str, schema: str, hostname: str | None = None, access_token: str | None = None) -> dict[str, Any]:
        """Check a project's labeling config against the model; remember its region names.

        Raises:
            LabelConfigMismatch: the config cannot show this model's boxes.
        """
        names = self.region_names(schema)
        self.projects[str(project)] = names
        self.images.set_host(hostname, access_token)
        log.info("project %s set up: regions %s -> %s, %d labels", project, names.from_name, names.to_name, len(names.labels))
        return {"model_version": self.model_version}

    def region_names(self, label_config: str) -> RegionNames:
        """Parse ``label_config`` and check that it has every class the backend emits."""
        names = parse_label_config(label_config)
        check_labels(self.class_names, names)
        return names

    def predict(self, tasks: Sequence[Mapping[str, Any]], label_config: str | None = None, project: str | None = None) -> list[dict[str, Any]]:
        """One prediction (or ``{"error": reason}``) per task, in task order.

        Args:
            tasks: Label Studio tasks (``id``, ``data`` with the image URL).
            label_config: the project's config (sent with every request); else the one
                ``/setup`` stored for ``project``.
            project: Label Studio's project id.

        Raises:
            LabelConfigMismatch: no usable config, or it lacks the model's classes.
        """
        with self.lock:
            return self._predict(tasks, label_config, project)

    def _predict(self, tasks: Sequence[Mapping[str, Any]], label_config: str | None, project: str | None) -> list[dict[str, Any]]:
        if label_config:
            names = self.region_names(label_config)
        elif project is not None and str(project) in self.projects:
            names = self.projects[str(project)]
        else:
            raise LabelConfigMismatch(f"no labeling config for project {project!r}: send label_config or call /setup")
        start = time.monotonic()
        out: list[dict[str, Any] | None] = [None] * len(tasks)
        items, where = [], []
        for i, task in enumerate(tasks):
            tid = task.get("id", i) if isinstance(task, Mapping) else i
            data = task.get("data") if isinstance(task, Mapping) else None
            url = data.get(names.image_field) if isinstance(data, Mapping) else None
            try:
                items.append(self.images.item(f"task-{tid}-{i}", url))  # type: ignore[arg-type]
                where.append(i)
            except RefusedURL as e:
                log.warning("task %s: %s", tid, e)
                out[i] = {"error": str(e)}
        done = self._detect(items, start, len(tasks))
        dets = [(where[j], d) for j, d in enumerate(done) if isinstance(d, Detections)]
        for j, d in enumerate(done):
            if isinstance(d, Failure):
                log.warning("task %s: %s", tasks[where[j]].get("id"), d.reason)
                out[where[j]] = {"error": d.reason}
        for i, pred in zip([i for i, _ in dets], self._predictions([d for _, d in dets], names)):
            out[i] = pred
        left = where[len(done):]
        for i in left:
            out[i] = {"error": f"not processed: the {self.time_limit:g} s time limit of a request was reached; "
                               "Label Studio asks again for tasks without a prediction"}
        log.info("predicted %d of %d tasks in %.2f s%s", len(dets), len(tasks), time.monotonic() - start,
                 f" ({len(left)} left for the next request)" if left else "")
        return [o for o in out if o is not None]

    # -- internals ----------------------------------------------------------------------------------
    def _detect(self, items: list[Any], start: float, total: int) -> list[Detections | Failure]:
        """Batched inference until the items run out or the time limit passes."""
        from autolabel.pipeline import iter_prelabel

        out: list[Detections | Failure] = []
        if not items:
            return out
        batches = iter_prelabel(items, self.detector, self.run_conf, self.iou, self.max_det, workers=min(8, os.cpu_count() or 1))
        try:
            for batch in batches:
                for x in batch:
                    out.append(self.class_map(x, self.iou) if self.class_map and isinstance(x, Detections) else x)
                elapsed = time.monotonic() - start
                log.info("batch: %d/%d tasks in %.2f s", len(out), total, elapsed)
                if elapsed > self.time_limit and len(out) < len(items):
                    break
        finally:
            batches.close()  # type: ignore[attr-defined]  # a generator (iter_prelabel)
        return out

    def _predictions(self, dets: list[Detections], names: RegionNames) -> list[dict[str, Any]]:
        from autolabel.formats.labelstudio import labelstudio_tasks

        if not dets:
            return []
        routing: list[dict[str, Any]] = [{} for _ in dets]
        if self.policy is not None:
            routing = self._routing(dets)
            dets = [d.filter(self.policy.config.prelabel_conf) for d in dets]
        shown = [d[d.scores >= self.thresholds[d.class_ids]] if len(d) else d for d in dets]
        results = Results(shown, self.class_names, self.model_version)
        preds = []
        for task, extra in zip(labelstudio_tasks(results, from_name=names.from_name, to_name=names.to_name), routing):
            (p,) = task["predictions"]
            p = {"result": p["result"], "score": p["score"], "model_version": self.model_version}
            if extra:
                p["routing"] = extra
            preds.append(p)
        return preds

    def _routing(self, dets: list[Detections]) -> list[dict[str, Any]]:
        from autolabel.routing import route, task_data

        assert self.policy is not None
        routed = route(Results(dets, self.class_names, self.model_version), self.policy)
        cols = ["queue", "review_rank", "priority", "p_no_edit", "expected_edit_s", "expected_scratch_s", "reason"]
        keys = [d.image.key for d in dets]  # type: ignore[union-attr]
        rows = task_data(routed.manifest[cols], keys)
        return [{k.removeprefix("routing_"): v for k, v in rows[key].items()} for key in keys]
