"""Load-time checks of a detector export: its numeric precision, and a health check on a
synthetic image that catches broken exports before they label a single image.

A broken export runs without error and writes empty labels for every image (e.g. a static
quantization of the output tensor that rounds every class score to 0). The check runs the
model once on :func:`check_image` and refuses the file when its scores are not finite,
lie outside [0, 1], or are all (almost) zero.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

__all__ = ["BrokenModelError", "check_image", "check_scores", "onnx_precision", "MIN_MAX_SCORE"]

#: a working detector's best candidate on the check image scores at least this (measured:
#: every shared COCO model scores > 0.04 there; the broken export scores exactly 0)
MIN_MAX_SCORE = 1e-4
_SCORE_SLACK = 1e-3  # quantized sigmoids overshoot 1 by a rounding step


class BrokenModelError(ValueError):
    """A model file that loads and runs but cannot detect anything (the message says why)."""


def check_image(height: int = 480, width: int = 640) -> np.ndarray:
    """A deterministic synthetic RGB ``uint8`` (height, width, 3) scene: a gradient
    background with filled shapes of several colours and sizes (edges and blobs that any
    working detector scores above zero)."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([90 + 80 * xx / width, 110 + 60 * yy / height, 140 - 50 * xx / width], -1).astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(24):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        s = int(rng.integers(20, 160))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.5, 2))), color, -1)
        else:
            cv2.ellipse(img, (x, y), (s // 2, int(s * rng.uniform(0.3, 1))), float(rng.uniform(0, 180)), 0, 360, color, -1)
    return img


def check_scores(scores: np.ndarray, path: str) -> float:
    """Validate the class scores a model gave the check image.

    Args:
        scores: every candidate's scores, any shape.
        path: the model file, named in the error.

    Returns:
        The highest score.

    Raises:
        BrokenModelError: scores not finite, outside [0, 1], or all below :data:`MIN_MAX_SCORE`.
    """
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        raise BrokenModelError(f"{path}: broken export: the model returned no candidate boxes on the check image")
    if not np.isfinite(s).all():
        raise BrokenModelError(f"{path}: broken export: {int((~np.isfinite(s)).sum())} class scores are NaN or infinite")
    lo, hi = float(s.min()), float(s.max())
    if lo < -_SCORE_SLACK or hi > 1 + _SCORE_SLACK:
        raise BrokenModelError(
            f"{path}: broken export: class scores range over [{lo:.3g}, {hi:.3g}], outside [0, 1] "
            "(a head exported without its sigmoid, or an output that is not a score)")
    if hi < MIN_MAX_SCORE:
        what = "every class score is exactly 0" if hi == 0 else f"the highest class score is {hi:.2g}"
        raise BrokenModelError(
            f"{path}: broken export: {what} on the check image, so it would label every image with nothing "
            "(typically a quantized output tensor; re-export without quantizing the head)")
    return hi


def onnx_precision(path: str) -> str:
    """The numeric precision of an ONNX file, from its operators and weights.

    Returns:
        ``"fp32"``, ``"fp16"``, ``"int8 QDQ"`` (static: Quantize/DequantizeLinear pairs),
        ``"int8 QOperator"`` (QLinearConv ...), ``"int8 dynamic (u8 weights)"`` or
        ``"int8 dynamic (s8 weights)"`` (ConvInteger / MatMulInteger; on x86 CPUs signed
        weights run several times slower), or ``"unknown"`` without the ``onnx`` package.
    """
    try:
        import onnx
    except ImportError:
        return "unknown"
    model = onnx.load(path, load_external_data=False)
    ops = collections.Counter(n.op_type for n in model.graph.node)
    if ops["ConvInteger"] or ops["MatMulInteger"]:
        inits = {i.name: i.data_type for i in model.graph.initializer}
        wtypes = {inits.get(n.input[1]) for n in model.graph.node if n.op_type in ("ConvInteger", "MatMulInteger")}
        signed = onnx.TensorProto.INT8 in wtypes
        return f"int8 dynamic ({'s8' if signed else 'u8'} weights)"
    if ops["QLinearConv"] or ops["QLinearMatMul"]:
        return "int8 QOperator"
    if ops["QuantizeLinear"] or ops["DequantizeLinear"]:
        return "int8 QDQ"
    types: Any = {i.data_type for i in model.graph.initializer}
    return "fp16" if onnx.TensorProto.FLOAT16 in types else "fp32"
