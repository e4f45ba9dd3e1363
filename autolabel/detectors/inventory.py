"""What each model the resolver can find is: layout, input size, precision, health, and
(when asked) its measured speed on this machine. Backs ``autolabel models``."""

from __future__ import annotations

import os
import time
from typing import Any

from autolabel.detectors import list_models

__all__ = ["describe_model", "model_table"]


def describe_model(path: str | os.PathLike, bench: bool = False, bench_images: int = 8) -> dict[str, Any]:
    """One model file's properties.

    Args:
        path: a model file (``.onnx`` files are loaded and health-checked; others are
            described by their backend only, loading a checkpoint runs its pickle).
        bench: also time :meth:`~autolabel.Detector.predict` on ``bench_images`` copies of
            the synthetic check image (one warm-up batch first).
        bench_images: images timed.

    Returns:
        ``backend``, ``layout``, ``input`` ("HxW"), ``precision``, ``classes``, ``status``
        ("ok", or "BROKEN: <why>", or "error: <why>"), and with ``bench``
        ``ms_per_image`` and ``images_per_second`` (wall clock, this machine, now).
    """
    from autolabel.detectors.health import BrokenModelError, check_image

    p = str(path)
    row: dict[str, Any] = {"backend": "", "layout": "", "input": "", "precision": "", "classes": None, "status": "ok"}
    if not p.endswith(".onnx"):
        row.update(backend="ultralytics", status="not loaded (a pickle)")
        return row
    from autolabel.detectors.onnx import OnnxDetector

    row["backend"] = "onnx"
    try:
        det = OnnxDetector(p)
    except BrokenModelError as e:
        row["status"] = "BROKEN: " + str(e).split("broken export: ", 1)[-1].split(" on the check image")[0]
        return row
    except ValueError as e:
        row["status"] = f"error: {e}"
        return row
    row.update(layout=str(det.layout), input="x".join(map(str, det.input_size or ())), precision=det.precision,
               classes=len(det.class_names))
    if bench:
        images = [check_image()] * max(bench_images, det.batch_size)
        det.predict(images[: det.batch_size])  # warm-up: allocations, kernel selection
        t0 = time.perf_counter()
        det.predict(images)
        dt = (time.perf_counter() - t0) / len(images)
        row.update(ms_per_image=round(1000 * dt, 1), images_per_second=round(1 / dt, 2))
    return row


def model_table(bench: bool = False) -> Any:
    """DataFrame: every model :func:`~autolabel.detectors.list_models` finds (name,
    origin, path, shadowed) with :func:`describe_model`'s columns."""
    import pandas as pd

    rows = [{**r, **describe_model(r["path"], bench)} for r in list_models()]
    return pd.DataFrame(rows)
