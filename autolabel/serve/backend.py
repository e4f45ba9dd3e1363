"""The model side of the ML backend: tasks in, Label Studio predictions out.

:class:`Backend` holds one detector (anything :func:`autolabel.load_detector` resolves),
an optional class map, confidence thresholds (one, or one per class) and an optional
routing policy. :meth:`Backend.predict` runs a batch of tasks through the same batched
pipeline as :func:`autolabel.prelabel` (decode and download threads ahead of inference)
and writes each task's prediction with the project's region names, through the Label
Studio writer of :mod:`autolabel.formats` (boxes in percent of the image).

A batch stops at ``time_limit`` seconds from the request's arrival (time queued behind
other requests counts): the tasks done by then get their predictions, the others an
``error`` entry without ``result`` (Label Studio skips those and asks again next time),
and progress is logged after every inference batch. Images decode in the
``decode_threads`` of :class:`~autolabel.serve.images.ImageAccess` (a fixed number, not
one per core), under its pixel limits.
"""

from __future__ import annotations

import logging
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
        time_limit: seconds one predict request may take, from its arrival, before it
            returns what is done.
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
        from autolabel.detectors.thresholds import ClassThresholds
        from autolabel.routing import FittedPolicy

        self.detector = load_detector(model, **dict(detector_options or {}))
        det = self.detector
        self.class_map = None if class_map is None else ClassMap.load(class_map, det.class_names)
        self.class_names = self.class_map.target_names if self.class_map else det.class_names
        thresholds = ClassThresholds.load(det.conf if conf is None else conf, default=det.conf)
        thresholds.check(self.class_names, f"{det.name}{' with its class map' if self.class_map else ''}")
        _, self.iou, self.max_det = det.settings(None, iou, max_det)
        self.run_conf, self.thresholds = thresholds.floor, thresholds.array(self.class_names)
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
        self.lock = threading.RLock()  # held by /predict (serve.app) and swap: a request sees one model throughout
        self._conf: Any = conf

    def swap(self, detector: Any) -> None:
        """Serve ``detector`` from the next request on (atomically: a running request finishes
        with the old model). Its classes are the project's labels: the class map and routing
        policy of the old model are dropped, per-class thresholds kept for classes it has.
        """
        from autolabel.detectors.thresholds import ClassThresholds

        loaded = ClassThresholds.load(detector.conf if self._conf is None else self._conf, default=detector.conf)
        thresholds = ClassThresholds(loaded.default, {c: v for c, v in loaded.classes.items() if c in detector.class_names})
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
        if hostname and self.images.url is None:
            log.warning("/setup named a Label Studio host; it is ignored (a host is never taken from a request): "
                        "start serve with --label-studio-url or $LABEL_STUDIO_URL to read /data/upload images")
        self.images.set_host(hostname, access_token)
        log.info("project %s set up: regions %s -> %s, %d labels", project, names.from_name, names.to_name, len(names.labels))
        return {"model_version": self.model_version}

    def region_names(self, label_config: str) -> RegionNames:
        """Parse ``label_config`` and check that it has every class the backend emits."""
        names = parse_label_config(label_config)
        check_labels(self.class_names, names)
        return names

    def names_for(self, label_config: Any = None, project: Any = None) -> RegionNames:
        """The region names of a request: from its ``label_config``, else those ``/setup``
        stored for ``project``.

        Raises:
            LabelConfigMismatch: no usable config (not XML text, not set up), or it lacks the model's classes.
        """
        if label_config is not None and not isinstance(label_config, str):
            raise LabelConfigMismatch(f"label_config must be the labeling config's XML text, got {type(label_config).__name__}")
        if label_config:
            return self.region_names(label_config)
        if project is not None and str(project) in self.projects:
            return self.projects[str(project)]
        raise LabelConfigMismatch(f"no labeling config for project {str(project)[:80]!r}: send label_config or call /setup")

    def predict(
        self, tasks: Sequence[Mapping[str, Any]], label_config: str | None = None, project: str | None = None,
        names: RegionNames | None = None, started: float | None = None,
    ) -> list[dict[str, Any]]:
        """One prediction (or ``{"error": reason}``) per task, in task order.

        Args:
            tasks: Label Studio tasks (``id``, ``data`` with the image URL).
            label_config: the project's config (sent with every request); else the one
                ``/setup`` stored for ``project``.
            project: Label Studio's project id.
            names: the request's region names, when already read (:meth:`names_for`).
            started: when the request arrived (``time.monotonic()``; default: now): the
                time limit counts from then, and a request whose time ran out before it
                started runs nothing (else at least one inference batch runs).

        Raises:
            LabelConfigMismatch: no usable config, or it lacks the model's classes.
        """
        names = names or self.names_for(label_config, project)
        start = time.monotonic() if started is None else started
        expired = started is not None and time.monotonic() - started >= self.time_limit  # it ran out while queued
        out: list[dict[str, Any] | None] = [None] * len(tasks)
        items, where = [], []
        for i, task in enumerate(tasks):
            tid = task.get("id", i) if isinstance(task, Mapping) else i
            data = task.get("data") if isinstance(task, Mapping) else None
            url = data.get(names.image_field) if isinstance(data, Mapping) else None
            try:
                items.append(self.images.item(f"task-{tid}-{i}", url))
                where.append(i)
            except RefusedURL as e:
                log.warning("task %s: %s", tid, e)
                out[i] = {"error": str(e)}
        done = self._detect([] if expired else items, start, len(tasks))
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
        batches = iter_prelabel(items, self.detector, self.run_conf, self.iou, self.max_det, workers=self.images.decode_threads)
        try:
            for batch in batches:
                for x in batch:
                    out.append(self.class_map(x, self.iou) if self.class_map and isinstance(x, Detections) else x)
                elapsed = time.monotonic() - start
                log.info("batch: %d/%d tasks in %.2f s", len(out), total, elapsed)
                if elapsed > self.time_limit and len(out) < len(items):
                    break
        finally:
            batches.close()  # a generator: stops its decode threads
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
        tasks = labelstudio_tasks(results, from_name=names.from_name, to_name=names.to_name,
                                  keypoint_name=names.keypoint_name)
        for task, extra in zip(tasks, routing):
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
        keys = [d.info.key for d in dets]
        rows = task_data(routed.manifest[cols], keys)
        return [{k.removeprefix("routing_"): v for k, v in rows[key].items()} for key in keys]
