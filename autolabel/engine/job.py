"""A pre-labeling batch job: source -> detector -> shard log -> atomic export."""

from __future__ import annotations

import csv
import json
import os
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from autolabel.config import EXIT_FAILED, EXIT_OK, EXIT_SKIPPED
from autolabel.core import Detections, Failure, Results
from autolabel.detectors import Detector, load_detector
from autolabel.detectors.thresholds import ClassThresholds
from autolabel.engine.log import LOG_DIR, LogResults, ShardLog, encode_record
from autolabel.engine.options import ENGINES, JobOptions
from autolabel.io.files import atomic_write, atomic_writer, fsync_dir
from autolabel.pipeline import iter_prelabel, tracked
from autolabel.sources import Item, NoImagesError, Source, open_source

__all__ = ["ENGINES", "JobOptions", "JobSummary", "Postprocess", "run_job", "export_log"]

Postprocess = Callable[[Results], Results]
"""Whole-input post-processing at export (e.g. tracking and refining a sequence's boxes:
``autolabel.video.tracking.track``): it gets every logged image at once, in memory, and
returns what is written. Passed in by the caller, so the engine never imports the video
layer above it."""


@dataclass
class JobSummary:
    """What a job did. ``status`` is ``"completed"``, ``"completed with N skipped"`` or
    ``"failed"`` (no input could be labeled); ``exit_code`` 0, 1 or 2 accordingly."""

    status: str
    exit_code: int
    out_dir: str
    model_id: str
    format: str
    images: int  # labeled images in the output (this run and earlier runs)
    skipped: int  # inputs that could not be read, listed in errors.csv
    boxes: int
    processed: int  # inputs this run processed
    already_done: int  # inputs found in the log and not processed again
    seconds: float
    written: list[str] = field(default_factory=list)
    torn_records: int = 0  # writes cut short by an earlier crash, ignored

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_second": round(self.images_per_second, 3)}


class _Writer:
    """Encodes batches and appends them to the log in a background thread, through a
    bounded queue, so that ``fsync`` never stalls the detector."""

    def __init__(self, log: ShardLog, model_id: str, depth: int = 4):
        self.log, self.model_id = log, model_id
        self.queue: queue.Queue[list[Detections | Failure] | None] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="autolabel-log-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.log.append([encode_record(x, self.model_id) for x in batch])
                except BaseException as e:  # re-raised in the job's thread
                    self.error = e

    def put(self, batch: list[Detections | Failure]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(batch)

    def close(self) -> None:
        """Write what is queued, stop, and raise a write error if there was one."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Pending:
    """Items not yet in the log, each key once (a repeated input is labeled once);
    counts the inputs found done."""

    def __init__(self, source: Iterable[Item], done: set[str]):
        self.source, self.done, self.already_done = source, done, 0

    def __iter__(self) -> Iterator[Item]:
        seen: set[str] = set()
        for item in self.source:
            if item.key in self.done:
                self.already_done += 1
            elif item.key not in seen:
                seen.add(item.key)
                yield item


def export_log(
    out_dir: str | os.PathLike, format: str = "coco", class_map: Any = None, iou: float | None = None,
    postprocess: Postprocess | None = None, **format_options: Any,
) -> tuple[LogResults | Results, list[str]]:
    """Write the export, ``errors.csv`` and (for video) ``frames.csv`` from ``OUT``'s log.

    The log is read as the files are written, one image at a time, so memory does not
    grow with the number of images. Every file is first written under
    ``OUT/.autolabel/export.tmp`` and then moved in place with an atomic rename, so
    readers see the old file or the new one, never a partial one; an export cut short is
    redone by the next run. ``class_map`` is applied here (the log keeps the model's own
    classes). Returns the exported results as a :class:`~autolabel.engine.log.LogResults`
    view of the log (without class probabilities, which no format writes) and the
    written paths. ``postprocess`` (see :data:`Postprocess`) reads the whole log into
    memory and transforms it before the export; it is re-run from the log on every
    export, so a resumed job writes exactly what an uninterrupted one does.

    Raises:
        LogError: no log in ``out_dir``, or a corrupt record (named by shard and line).
        ValueError: a bad format or class map.
    """
    from autolabel.classmap import ClassMap
    from autolabel.formats import write
    from autolabel.engine.temporal import frame_table

    out = Path(out_dir)
    log = ShardLog(out)
    results: LogResults | Results = log.view(probs=False)
    has_frames = results.has_frames  # type: ignore[union-attr]
    if class_map is not None:
        cmap = ClassMap.load(class_map, results.class_names)
        nms_iou = log.manifest()["iou"] if iou is None else iou
        results = results.map(lambda d: cmap(d, nms_iou), cmap.target_names)  # type: ignore[union-attr]
    if postprocess is not None:
        results = postprocess(Results(list(results), results.class_names, results.model_id, list(results.failures)))
    stage = out / LOG_DIR / "export.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    staged = [Path(p) for p in write(results, str(stage), format, **format_options)]
    with atomic_writer(stage / "errors.csv") as f:
        rows = csv.writer(f, lineterminator="\n")
        rows.writerow(["key", "reason"])
        rows.writerows([x.key, x.reason] for x in results.failures)
    staged.append(stage / "errors.csv")
    if has_frames:  # (pandas only when needed: ~100 MB)
        frame_table(results).to_csv(stage / "frames.csv", index=False)
        staged.append(stage / "frames.csv")
    root = stage.resolve()
    written = [str(out / Path(p).resolve().relative_to(root)) for p in staged]
    parents = set()
    for dirpath, _, files in os.walk(stage):
        for name in files:
            src = Path(dirpath) / name
            dest = out / src.resolve().relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(src, dest)
            parents.add(dest.parent)
    for d in parents:
        fsync_dir(d)
    shutil.rmtree(stage, ignore_errors=True)
    return results, written


def _status(images: int, skipped: int) -> tuple[str, int]:
    if skipped and not images:
        return "failed", EXIT_FAILED
    if skipped:
        return f"completed with {skipped} skipped", EXIT_SKIPPED
    return "completed", EXIT_OK


@dataclass
class _Plan:
    """What a job runs, settled before any input is read."""

    det: Detector
    src: Source
    conf: ClassThresholds
    iou: float
    max_det: int
    workers: int
    streams: int


def _plan(source: Any, detector: Any, format: str, opts: JobOptions) -> _Plan:
    """Load the model and check every setting and the source, before any work.

    Raises:
        ValueError: a bad format, class map, thresholds (ConfigError) or source (NoImagesError).
        ModelNotFoundError: the model cannot be found.
    """
    from autolabel.classmap import ClassMap
    from autolabel.detectors.slicing import with_slicing
    from autolabel.detectors.tuning import engine_settings
    from autolabel.formats import check_format

    check_format(format)
    if opts.engine == "ray" and isinstance(detector, Detector):
        raise ValueError("engine='ray' needs the model as a path or name that each Ray actor loads, "
                         "not a loaded Detector")
    if opts.engine == "ray" and opts.slice:
        raise ValueError("sliced inference needs engine='local'")
    det = load_detector(detector, **opts.detector_options)
    if opts.engine == "local":
        det = with_slicing(det, opts.slice)
    if opts.class_map is not None:
        ClassMap.load(opts.class_map, det.class_names)  # a bad class map fails before any work
    streams, workers = engine_settings(det, opts.streams, opts.workers)  # defaults from cores and model
    conf, iou, max_det = det.settings(opts.conf, opts.iou, opts.max_det)
    if conf.per_class and opts.engine == "ray":
        raise ValueError("per-class thresholds need engine='local'")
    src = open_source(source, **opts.source_options).require_items()  # before the log is made
    return _Plan(det, src, conf, iou, max_det, workers, streams)


def run_job(
    source: Source | str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    detector: Detector | str | os.PathLike | None = None,
    format: str = "coco",
    options: JobOptions | None = None,
    **kwargs: Any,
) -> JobSummary:
    """Pre-label ``source`` into ``out`` as a resumable, crash-safe batch job.

    Results stream into the shard log ``out/.autolabel/`` (:mod:`autolabel.engine.log`);
    when every input is done the export (``format``, :mod:`autolabel.formats`),
    ``errors.csv``, ``frames.csv`` (video) and ``summary.json`` are written from the log.
    Run it again with the same ``out`` and it skips what is done. How it runs (threshold,
    engine, resume, workers, ...) is a :class:`JobOptions`: ``options``, with any of its
    fields given as keywords on top (``run_job(src, out, conf=0.3, workers=4)``), and
    source keywords (``every=30``, ``split="val"``) for :func:`~autolabel.sources.open_source`.
    The model is loaded, and every setting and the source checked, before any input is
    read; then the output directory is made.

    Returns:
        The :class:`JobSummary` (also written to ``out/.autolabel/summary.json``).

    Raises:
        TypeError: a keyword that is no option (named).
        ValueError: a bad option, format, class map, thresholds or source; no images
            (``NoImagesError``, ``out`` left untouched).
        ModelNotFoundError: the model cannot be found.
        ResumeError: ``out`` holds a log of another model or other settings.
        Exception: a detector error (a bug), unchanged with its traceback: the batches
            finished before it are in the log, and the same call resumes after them.
    """
    t0 = time.perf_counter()
    opts = JobOptions.from_call(options, kwargs)
    p = _plan(source, detector, format, opts)
    manifest = {"model_id": p.det.model_id, "class_names": p.det.class_names, "conf": p.conf.as_conf(), "iou": p.iou,
                "max_det": p.max_det}
    if p.det.keypoint_spec is not None:
        manifest["keypoint_spec"] = p.det.keypoint_spec.to_dict()
    with ShardLog(out).open(manifest, resume=opts.resume) as log:
        done = log.done_keys(opts.retry_failed)
        pending = _Pending(p.src, done)
        if opts.engine == "local":
            batches: Iterable[list[Detections | Failure]] = iter_prelabel(
                pending, p.det, p.conf, p.iou, p.max_det, p.workers, streams=p.streams)
        else:
            from autolabel.engine.ray_engine import iter_prelabel_ray

            spec = None if isinstance(detector, Detector) else detector  # (_plan refused a loaded one)
            batches = iter_prelabel_ray(pending, spec, p.det, p.conf.default, p.iou, p.max_det, opts.ray_options,
                                        opts.detector_options)
        total = None if p.src.length is None else max(p.src.length - len(done), 0)
        processed = _write(log, p.det, batches, total, opts.progress)
        if processed == 0 and not pending.already_done:
            raise NoImagesError(f"no images found in {p.src.description}")
        if opts.export:
            results, written = export_log(out, format, opts.class_map, p.iou, opts.postprocess, **opts.format_options)
        else:
            results, written = log.view(probs=False), []
        torn = len(log.torn)
    status, code = _status(len(results), len(results.failures))
    summary = JobSummary(
        status, code, str(out), p.det.model_id, format, len(results), len(results.failures), results.num_boxes,
        processed, pending.already_done, time.perf_counter() - t0, written, torn,
    )
    atomic_write(Path(out) / LOG_DIR / "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n", durable=True)
    return summary


def _write(log: ShardLog, det: Detector, batches: Iterable[list[Detections | Failure]], total: int | None,
           progress: bool) -> int:
    """Append every batch to ``log`` (a writer thread), with a progress bar; returns the inputs processed."""
    processed = 0
    writer = _Writer(log, det.model_id)
    try:
        for batch in tracked(batches, total, f"prelabel {det.name}", progress):
            writer.put(batch)
            processed += len(batch)
    finally:
        writer.close()
    return processed
