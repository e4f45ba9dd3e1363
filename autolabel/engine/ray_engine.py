"""The Ray engine: the same job with the detector in a pool of Ray actors.

The driver reads the pending inputs (key and path) as they come and sends them
``batch_size`` at a time to a pool of detector actors (``actors`` of them, each with
``num_cpus`` / ``num_gpus``) through :class:`ray.util.ActorPool`; each actor decodes
and labels its batch with the local engine's code
(:func:`autolabel.pipeline.iter_prelabel`), and the driver appends the results to the
shard log as batches come back, in input order. At most ``2 * actors`` batches are in
flight: the driver never holds the whole input list, so memory stays flat as in the
local engine, and the log and the export are the same as the local engine's. Nothing
process-wide (no Ray ``DataContext`` setting) is changed.

Cluster: with ``RAY_ADDRESS`` set the driver joins that cluster, otherwise it starts
a local Ray (or uses the one already started in this process). Every node needs
``autolabel`` installed, the model at the same path (or findable by name through
``AUTOLABEL_MODEL_DIR``) and the input paths readable (a shared file system). Video
sources are decoded in one stream and run on the local engine only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


from autolabel.config import StrictModel
from autolabel.core import Detections, Failure
from autolabel.detectors import DEFAULT_MODEL, Detector, load_detector
from autolabel.pipeline import iter_prelabel
from autolabel.sources import Item

__all__ = ["RayOptions", "iter_prelabel_ray"]


class RayOptions(StrictModel):
    """Ray engine settings: ``actors`` (default: as many as the cluster's CPUs, or
    GPUs when ``num_gpus`` > 0, allow), CPUs and GPUs per actor, inputs per batch
    (default: the detector's batch size) and decode threads per actor."""

    actors: int | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int | None = None
    decode_threads: int = 2


@dataclass
class _Job:
    spec: str
    options: dict[str, Any]
    model_id: str
    conf: float
    iou: float
    max_det: int
    decode_threads: int


class _Labeler:
    """One Ray actor: loads the detector once, labels batches of (key, path)."""

    def __init__(self, job: _Job):
        self.job = job
        self.detector = load_detector(job.spec, **job.options)
        if self.detector.model_id != job.model_id:
            raise ValueError(f"{job.spec} on this node is {self.detector.model_id}, the driver's is {job.model_id}")

    def label(self, rows: list[tuple[str, str]]) -> list[Detections | Failure]:
        j = self.job
        items = [Item(k, p) for k, p in rows]
        return [x for b in iter_prelabel(items, self.detector, j.conf, j.iou, j.max_det, j.decode_threads) for x in b]


def _model_spec(spec: str | os.PathLike | Detector | None) -> str:
    if isinstance(spec, Detector):
        raise ValueError("engine='ray' needs the model as a path or name that each Ray actor loads, "
                         "not a loaded Detector")
    s = os.fspath(spec or DEFAULT_MODEL)
    return os.path.abspath(s) if os.path.isfile(s) else s


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[tuple[str, str]]]:
    """(key, absolute path) rows, ``size`` at a time, read from ``items`` as they come."""
    rows: list[tuple[str, str]] = []
    for item in items:
        if item.array is not None:
            raise ValueError("engine='ray' reads image files; decode video with engine='local'")
        rows.append((item.key, os.path.abspath(item.path or item.key)))
        if len(rows) == size:
            yield rows
            rows = []
    if rows:
        yield rows


def iter_prelabel_ray(
    items: Iterable[Item],
    spec: str | os.PathLike | Detector | None,
    detector: Detector,
    conf: float,
    iou: float,
    max_det: int,
    options: RayOptions | dict[str, Any] | None = None,
    detector_options: dict[str, Any] | None = None,
) -> Iterator[list[Detections | Failure]]:
    """Like :func:`~autolabel.pipeline.iter_prelabel`, on Ray: batches of results in
    input order, ``items`` read as the pool takes them.

    Args:
        items: the inputs (image files; video frames are refused).
        spec: what every actor loads (a path or a model name).
        detector: the driver's copy, for its id, batch size and backend.
        conf, iou, max_det: the job's settings.
        options: :class:`RayOptions`.
        detector_options: go to :func:`~autolabel.load_detector` on every actor.

    Yields:
        One list per batch: a :class:`Detections` per good image, a :class:`Failure`
        per unreadable one.

    Raises:
        ValueError: a video frame in ``items``, or an actor whose model differs.
        ray.exceptions.RayTaskError: an actor's error, with its remote traceback.
    """
    import ray
    from ray.util import ActorPool

    opts = RayOptions.load(options or {})
    chunks = _chunks(items, opts.batch_size or detector.batch_size)
    first = next(chunks, None)
    if first is None:
        return
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    det_opts = dict(detector_options or {})
    if detector.backend == "onnx":
        det_opts.setdefault("threads", max(1, int(opts.num_cpus)))
    job = _Job(_model_spec(spec), det_opts, detector.model_id, conf, iou, max_det, opts.decode_threads)
    actors = opts.actors
    if actors is None:
        res = ray.cluster_resources()
        actors = int(res.get("GPU", 0) // opts.num_gpus) if opts.num_gpus else int(res.get("CPU", 1) // opts.num_cpus)
    remote = ray.remote(num_cpus=opts.num_cpus, num_gpus=opts.num_gpus)(_Labeler)
    handles: list[Any] = [remote.remote(job) for _ in range(max(1, actors))]
    pool = ActorPool(handles)
    window = 2 * len(handles)
    try:
        pool.submit(lambda a, rows: a.label.remote(rows), first)
        pending = 1
        for rows in chunks:
            if pending >= window:
                yield pool.get_next()  # results come back in submission order
                pending -= 1
            pool.submit(lambda a, rows: a.label.remote(rows), rows)
            pending += 1
        while pool.has_next():
            yield pool.get_next()
    finally:
        for h in handles:
            ray.kill(h)
