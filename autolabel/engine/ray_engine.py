"""The Ray engine: the same job with the detector in a pool of Ray actors (Ray Data).

The driver lists the pending inputs (key and path) as a Ray dataset
(``ray.data.from_items``), ``map_batches`` sends ``batch_size`` of them at a time to a
pool of detector actors (``concurrency=actors``, each with ``num_cpus`` / ``num_gpus``),
each actor decodes and labels its batch with the local engine's code
(:func:`autolabel.pipeline.iter_prelabel`), and the driver appends the results to
the shard log as batches arrive (``iter_batches``, input order preserved). The log
and the export are therefore the same as the local engine's.

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

import numpy as np

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

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        j = self.job
        items = [Item(str(k), str(p)) for k, p in zip(batch["key"], batch["path"])]
        batches = iter_prelabel(items, self.detector, j.conf, j.iou, j.max_det, j.decode_threads)
        labeled = [x for b in batches for x in b]
        out = np.empty(len(labeled), object)
        out[:] = labeled
        return {"result": out}


def _model_spec(spec: str | os.PathLike | None) -> str:
    s = os.fspath(spec or DEFAULT_MODEL)
    return os.path.abspath(s) if os.path.isfile(s) else s


def iter_prelabel_ray(
    items: Iterable[Item],
    spec: str | os.PathLike | None,
    detector: Detector,
    conf: float,
    iou: float,
    max_det: int,
    options: RayOptions | dict[str, Any] | None = None,
    detector_options: dict[str, Any] | None = None,
) -> Iterator[list[Detections | Failure]]:
    """Like :func:`~autolabel.pipeline.iter_prelabel`, on Ray: batches of results in
    input order. ``detector`` is the driver's copy (for its id and defaults); every
    actor loads ``spec`` with ``detector_options``."""
    import ray

    opts = RayOptions.load(options or {})
    rows = []
    for item in items:
        if item.array is not None:
            raise ValueError("engine='ray' reads image files; decode video with engine='local'")
        rows.append({"key": item.key, "path": os.path.abspath(item.path or item.key)})
    if not rows:
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
    ctx = ray.data.DataContext.get_current()
    keep_order = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    try:
        ds = ray.data.from_items(rows).map_batches(
            _Labeler, fn_constructor_args=(job,), batch_size=opts.batch_size or detector.batch_size,
            batch_format="numpy", concurrency=max(1, actors), num_cpus=opts.num_cpus, num_gpus=opts.num_gpus,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield list(batch["result"])
    finally:
        ctx.execution_options.preserve_order = keep_order
