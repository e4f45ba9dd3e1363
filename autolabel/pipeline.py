"""Pre-labeling: source -> detector -> :class:`~autolabel.core.Results`.

Images are decoded and preprocessed in a thread pool ahead of inference, through a
bounded window, so memory stays flat and the detector is kept busy. Unreadable inputs
are recorded as :class:`~autolabel.core.Failure` and skipped; the run goes on.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterator, Sequence

from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.detectors import Detector, load_detector
from autolabel.sources import ImageReadError, Item, Source, open_source

__all__ = ["prelabel", "iter_prelabel"]


def _load(detector: Detector, item: Item) -> tuple[Any, ImageInfo] | Failure:
    try:
        arr, info = item.load()
        return detector.prepare(arr), info
    except ImageReadError as e:
        return Failure(item.key, e.reason)
    except Exception as e:  # a decoder bug must not kill a 100,000-image run
        return Failure(item.key, f"{type(e).__name__}: {e}")


def iter_prelabel(
    source: Source,
    detector: Detector,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    workers: int | None = None,
    prefetch_batches: int = 4,
) -> Iterator[list[Detections | Failure]]:
    """Yield one list per batch, in input order: a :class:`Detections` per good image
    (with its :class:`ImageInfo`) and a :class:`Failure` per bad one."""
    conf = detector.conf if conf is None else conf
    iou = detector.iou if iou is None else iou
    max_det = detector.max_det if max_det is None else max_det
    bs = detector.batch_size
    workers = workers or min(8, os.cpu_count() or 1)
    window: deque[Future] = deque()
    items = iter(source)
    with ThreadPoolExecutor(workers, thread_name_prefix="autolabel-decode") as pool:

        def fill() -> None:
            while len(window) < bs * prefetch_batches:
                item = next(items, None)
                if item is None:
                    return
                window.append(pool.submit(_load, detector, item))

        fill()
        while window:
            loaded = [window.popleft().result() for _ in range(min(bs, len(window)))]
            fill()
            good = [x for x in loaded if not isinstance(x, Failure)]
            dets = iter(detector.predict_prepared([g[0] for g in good], conf, iou, max_det)) if good else iter(())
            yield [x if isinstance(x, Failure) else next(dets).with_image(x[1]) for x in loaded]


def prelabel(
    source: Source | str | os.PathLike | Sequence[str | os.PathLike],
    detector: Detector | str | os.PathLike | None = None,
    conf: float | None = None,
    iou: float | None = None,
    max_det: int | None = None,
    progress: bool = True,
    class_map: Any = None,
    **source_options: Any,
) -> Results:
    """Pre-label every image of ``source`` with ``detector`` (default: the bundled
    ``yolov5n.onnx``).

    ``source`` is anything :func:`autolabel.sources.open_source` accepts; ``detector``
    anything :func:`autolabel.load_detector` accepts. ``class_map`` (a
    :class:`~autolabel.classmap.ClassMap` or a YAML path) renames, merges and drops
    classes. Failed inputs are in ``Results.failures``.
    """
    from autolabel.classmap import ClassMap

    det = detector if isinstance(detector, Detector) else load_detector(detector)
    src = open_source(source, **source_options)
    cmap = None if class_map is None else ClassMap.load(class_map, det.class_names)
    out: list[Detections] = []
    failures: list[Failure] = []
    total = src.length
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=f"prelabel {det.name}", unit="img", disable=not progress) as bar:
        for batch in iter_prelabel(src, det, conf, iou, max_det):
            for x in batch:
                if isinstance(x, Failure):
                    failures.append(x)
                    bar.write(f"skipped {x.key}: {x.reason}")
                else:
                    out.append(cmap(x, iou if iou is not None else det.iou) if cmap else x)
            bar.update(len(batch))
            if failures:
                bar.set_postfix(failed=len(failures))
    names = cmap.target_names if cmap else det.class_names
    return Results(out, names, det.model_id, failures)
