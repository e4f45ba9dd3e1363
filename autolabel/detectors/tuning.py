"""Engine defaults picked from the machine and the model: inference streams, ONNX Runtime
threads per stream, decode workers.

Rule, for a thread-safe detector on a CPU (ONNX Runtime): ``streams = 2`` on 2 to 8
cores, ``cores // 4`` above, 1 on one core; ``threads = cores // streams``. Several
1- or 2-thread sessions beat one session with every core: a single session waits at a
barrier after each operator for its slowest thread, and with two streams one batch's
NMS, letterbox and log writing overlap the other's inference (measured by
``benchmarks/throughput.py``: on 2 cores 2 x 1 reaches ~0.9 of the ``session.run``
ceiling, 1 x 2 ~0.8). On a GPU, or for detectors that are not thread safe: one stream,
the backend's own threads. Decode workers: every core up to 8 (at least 2), at a lower
OS priority than inference (see :mod:`autolabel.pipeline`).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["cpu_cores", "cpu_streams", "cpu_threads", "engine_settings"]


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_streams(cores: int | None = None) -> int:
    """Concurrent inference batches on a CPU with ``cores`` cores (module rule)."""
    n = cpu_cores() if cores is None else cores
    return 1 if n < 2 else 2 if n <= 8 else n // 4


def cpu_threads(cores: int | None = None) -> int:
    """ONNX Runtime intra-op threads per stream."""
    n = cpu_cores() if cores is None else cores
    return max(1, n // cpu_streams(n))


def engine_settings(detector: Any, streams: int | None, workers: int | None) -> tuple[int, int]:
    """``(streams, workers)`` for a job: the given values, else the detector's tuned
    ``auto_streams`` (set by backends that sized their threads for it; 1 otherwise) and
    :func:`cpu_cores` decode workers (2..8)."""
    if streams is None:
        streams = int(getattr(detector, "auto_streams", 1)) if detector.thread_safe else 1
    if workers is None:
        workers = min(8, max(2, cpu_cores()))
    return streams, workers
