"""Pre-labeling: source -> detector -> :class:`~autolabel.core.Results`.

Images are decoded and preprocessed in a thread pool ahead of inference, through a
bounded window, so memory stays flat and the detector is kept busy. Unreadable inputs
(read and decode errors) are recorded as :class:`~autolabel.core.Failure` and skipped;
the run goes on. Any other error (a bug in a backend or here) stops the run with its
traceback.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generator, Iterable, Iterator, Mapping, Sequence

from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.detectors import Detector, load_detector
from autolabel.detectors.thresholds import ClassThresholds
from autolabel.detectors.tuning import engine_settings
from autolabel.sources import Item, Source, open_source
from autolabel.io.images import ImageReadError

__all__ = ["prelabel", "iter_prelabel", "tracked"]


DECODE_NICENESS = 10


def _lower_priority() -> None:
    """Decode threads yield the CPU to inference (Linux thread niceness): on a machine
    with few cores they then fill the detector's idle gaps instead of preempting
    its threads, which would stall every parallel section of the model."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), DECODE_NICENESS)
        except OSError:  # not permitted in some sandboxes; only a speed hint
            pass


def _load(detector: Detector, item: Item) -> tuple[Any, ImageInfo] | Failure:
    """Decode and prepare one input. Only a read or decode error (the input's fault:
    :class:`ImageReadError`) is a per-image failure; any other error is a bug (ours or
    the backend's) and propagates with its traceback, stopping the run."""
    try:
        return detector.prepare_item(item)
    except ImageReadError as e:
        return Failure(item.key, e.reason)


def iter_prelabel(
    source: Source | Iterable[Item],
    detector: Detector,
    conf: float | Mapping[str, Any] | ClassThresholds | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    workers: int | None = None,
    prefetch_batches: int = 4,
    streams: int | None = None,
) -> Generator[list[Detections | Failure], None, None]:
    """Pre-label ``source`` batch by batch, decoding ahead of inference.

    ``workers`` threads decode and :meth:`~Detector.prepare` up to ``prefetch_batches``
    batches ahead while the detector runs (onnxruntime and torch release the GIL),
    at a lower OS priority than inference. ``streams`` > 1 keeps that many batches in
    inference at once, for :attr:`~Detector.thread_safe` detectors (on a CPU, two
    1-thread ONNX streams beat one 2-thread stream: no barrier waits between cores).

    Args:
        source: the inputs (a :class:`~autolabel.sources.Source` or any iterable of items).
        detector: the loaded detector.
        conf, iou, max_det: score threshold, NMS IoU, boxes per image (default: the
            detector's).
        workers: decode threads (default: from the cores and the model, autolabel.detectors.tuning).
        prefetch_batches: batches decoded ahead.
        streams: batches in inference at once (default: as workers).

    Yields:
        One list per batch, in input order: a :class:`Detections` (boxes in input
        pixels, xyxy) with its :class:`ImageInfo` per good image, a :class:`Failure`
        per input that could not be read or decoded.

    Raises:
        ValueError: ``streams > 1`` for a detector that is not thread safe.
        Exception: any error of the detector or of ``prepare`` (a bug, not a bad
            input), unchanged, with its traceback; batches yielded before it stand.
    """
    streams, workers = engine_settings(detector, streams, workers)  # defaults: autolabel.detectors.tuning
    if streams > 1 and not detector.thread_safe:
        raise ValueError(f"{type(detector).__name__} cannot run concurrent batches; use streams=1")
    thresholds, iou, max_det = detector.settings(conf, iou, max_det)  # per class: run at the lowest, then filter
    bs = detector.batch_size
    window: deque[Future] = deque()
    items = iter(source)

    def label(loaded: list[tuple[Any, ImageInfo] | Failure]) -> list[Detections | Failure]:
        good = [x for x in loaded if not isinstance(x, Failure)]
        found = detector.predict_prepared([g[0] for g in good], thresholds.floor, iou, max_det) if good else []
        dets = iter([thresholds.apply(d) for d in found] if thresholds.per_class else found)
        return [x if isinstance(x, Failure) else next(dets).with_image(x[1]) for x in loaded]

    with ThreadPoolExecutor(workers, "autolabel-decode", initializer=_lower_priority) as pool:

        def fill() -> None:
            while len(window) < bs * prefetch_batches:
                item = next(items, None)
                if item is None:
                    return
                window.append(pool.submit(_load, detector, item))

        def next_batch() -> list[tuple[Any, ImageInfo] | Failure]:
            loaded = [window.popleft().result() for _ in range(min(bs, len(window)))]
            fill()
            return loaded

        fill()
        if streams <= 1:
            while window:
                yield label(next_batch())
            return
        inflight: deque[Future] = deque()
        with ThreadPoolExecutor(streams, "autolabel-infer") as infer:
            while window or inflight:
                while window and len(inflight) < streams:
                    inflight.append(infer.submit(label, next_batch()))
                yield inflight.popleft().result()


def prelabel(
    source: Source | str | os.PathLike | Sequence[str | os.PathLike],
    detector: Detector | str | os.PathLike | None = None,
    conf: float | Mapping[str, Any] | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    progress: bool = True,
    class_map: Any = None,
    slice: bool | None = False,
    **source_options: Any,
) -> Results:
    """Pre-label every image of ``source`` with ``detector`` (default: the bundled
    ``yolov5n.onnx``), in memory.

    Args:
        source: anything :func:`autolabel.sources.open_source` accepts.
        detector: anything :func:`autolabel.load_detector` accepts.
        conf: one score threshold, or per class: ``{class name: threshold}`` (optionally
            ``"default"``), a YAML of :mod:`autolabel.savings.thresholds`, or a ``ClassThresholds``.
        iou, max_det: NMS IoU, boxes per image.
        progress: show a progress bar.
        class_map: a :class:`~autolabel.classmap.ClassMap` or a YAML path: renames,
            merges and drops classes.
        slice: sliced inference (:mod:`autolabel.detectors.slicing`): True every image,
            False none (the default for images: slicing costs several detector passes a
            frame), None only frames too large for the model input (the default of
            tracked video, :func:`autolabel.video.tracking.prelabel_tracks`).
        source_options: go to :func:`~autolabel.sources.open_source`.

    Returns:
        :class:`Results`: one :class:`Detections` per readable image, unreadable
        inputs in ``Results.failures``.

    Raises:
        ModelNotFoundError, ValueError: a model, class map or thresholds that cannot be used.
        NoImagesError: ``source`` holds no image.
        Exception: a detector error, unchanged (see :func:`iter_prelabel`).
    """
    from autolabel.classmap import ClassMap

    from autolabel.detectors.slicing import with_slicing

    det = with_slicing(detector if isinstance(detector, Detector) else load_detector(detector), slice)
    src = open_source(source, **source_options).require_items()
    cmap = None if class_map is None else ClassMap.load(class_map, det.class_names)
    thresholds, iou, max_det = det.settings(conf, iou, max_det)
    out: list[Detections] = []
    failures: list[Failure] = []
    for batch in tracked(iter_prelabel(src, det, thresholds, iou, max_det), src.length, f"prelabel {det.name}", progress):
        for x in batch:
            if isinstance(x, Failure):
                failures.append(x)
            else:
                out.append(cmap(x, iou) if cmap else x)
    names = cmap.target_names if cmap else det.class_names
    return Results(out, names, det.model_id, failures)


def tracked(
    batches: Iterable[list[Detections | Failure]], total: int | None, desc: str, progress: bool = True
) -> Iterator[list[Detections | Failure]]:
    """Pass batches through, showing a progress bar; every skipped input is named on
    stderr (also without the bar)."""
    from tqdm.auto import tqdm

    failed = 0
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for batch in batches:
            for x in batch:
                if isinstance(x, Failure):
                    failed += 1
                    bar.write(f"skipped {x.key}: {x.reason}", file=sys.stderr)
            bar.update(len(batch))
            if failed:
                bar.set_postfix(failed=failed)
            yield batch
