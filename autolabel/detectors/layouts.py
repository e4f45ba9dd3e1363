"""Output layouts of detector exports, told apart from output shapes and metadata, and the
decoding of one image's raw outputs to boxes in the model's input pixels.

=============  ===================================  ==========================================
layout         output(s), per image                 decoding
=============  ===================================  ==========================================
``yolov5``     ``[N, 5 + C]``                       cx, cy, w, h, objectness, C class probs;
                                                    score = objectness x class prob; NMS
``yolov8``     ``[4 + C, N]``                       cx, cy, w, h, C class probs; NMS
``yolov8-seg`` ``[4 + C + M, N]`` + ``[M, h, w]``    as ``yolov8``, plus M mask coefficients per
                                                    box and M mask prototypes; NMS
``yolov8-pose`` ``[4 + C + K * D, N]``              as ``yolov8``, plus K keypoints of D values
                                                    (x, y[, visibility score]) per box; NMS
``end2end``    ``[K, 6]``                           x1, y1, x2, y2, score, class (YOLOv10,
                                                    YOLO26 NMS-free heads); no NMS
``rtdetr``     ``[K, 4 + C]``                       cx, cy, w, h *normalised* to 0..1, C class
                                                    scores (RT-DETR); no NMS
=============  ===================================  ==========================================

Detection rule: metadata ``end2end: True`` or a last dimension of 6 with more rows than
6 (at most 1,000 rows when the model has one class, which a YOLOv5 head would also fit)
-> ``end2end``; two outputs whose second is 4-D -> ``yolov8-seg`` (M = prototype
channels); metadata ``kpt_shape`` ``[K, D]`` and ``(4 + C + K * D) x N`` -> ``yolov8-pose``;
otherwise with C class names: ``N x (5 + C)`` -> ``yolov5``, ``(4 + C) x N`` ->
``yolov8``, ``K x (4 + C)`` -> ``rtdetr``. Anything else is refused with the shape named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.boxes import batched_nms

__all__ = ["Layout", "detect_layout", "decode_outputs", "raw_scores", "MAX_NMS_CANDIDATES"]

MAX_NMS_CANDIDATES = 30000
_MAX_END2END = 1000  # end-to-end heads keep max_det (300) boxes; raw YOLO heads have thousands


@dataclass(frozen=True)
class Layout:
    """How to read a model's outputs: ``name`` (see the module table), the class count,
    for segmentation the number of mask coefficients ``n_masks``, for pose models
    ``kpt_shape`` (K keypoints, D values each)."""

    name: str
    n_classes: int
    n_masks: int = 0
    kpt_shape: tuple[int, int] | None = None

    @property
    def nms(self) -> bool:
        """The raw boxes need NMS (``False`` for NMS-free end-to-end heads)."""
        return self.name in ("yolov5", "yolov8", "yolov8-seg", "yolov8-pose")

    def __str__(self) -> str:
        if self.kpt_shape:
            return f"{self.name} ({self.kpt_shape[0]} keypoints)"
        return self.name + (f" ({self.n_masks} masks)" if self.n_masks else "")


def _kpt_shape(meta: Mapping[str, str], path: str) -> tuple[int, int] | None:
    """Ultralytics' ``kpt_shape`` metadata ``"[17, 3]"`` as ``(17, 3)``; ``None`` when absent."""
    raw = meta.get("kpt_shape")
    if not raw:
        return None
    try:
        k, dims = (int(v) for v in str(raw).strip("[]() ").split(","))
    except ValueError:
        raise ValueError(f"{path}: metadata kpt_shape {raw!r} is not [keypoints, dims]") from None
    if k <= 0 or dims not in (2, 3):
        raise ValueError(f"{path}: metadata kpt_shape {raw!r}: need keypoints > 0 and dims 2 or 3")
    return k, dims


def detect_layout(
    shapes: Sequence[Sequence[Any]], names: Sequence[str] | None, meta: Mapping[str, str], path: str
) -> Layout:
    """The :class:`Layout` of outputs of ``shapes`` (with batch dimension).

    Args:
        shapes: every output's shape, as ONNX Runtime reports it (ints once probed).
        names: the class names, when known (metadata or the caller).
        meta: the model's custom metadata (Ultralytics writes ``end2end``, ``task``).
        path: the model file, for messages.

    Returns:
        The layout.

    Raises:
        ValueError: naming the file and the shape when no layout fits.
    """
    first = tuple(shapes[0])
    if len(first) != 3 or not all(isinstance(d, int) for d in first[1:]):
        raise ValueError(f"{path}: expected a 3-D detection output [batch, a, b], got shape {list(first)}")
    _, d1, d2 = first
    c = len(names) if names is not None else None
    e2e = str(meta.get("end2end", "")).lower() == "true"
    # [K, 6]: end-to-end, unless it is a 1-class YOLOv5 head ([N, 5 + 1], N in the thousands)
    if d2 == 6 and len(shapes) == 1 and (e2e or (d1 > 6 and (c != 1 or d1 <= _MAX_END2END))):
        return Layout("end2end", c or 0)
    if len(shapes) >= 2 and len(shapes[1]) == 4:
        m = shapes[1][1]
        if not isinstance(m, int):
            raise ValueError(f"{path}: mask prototypes of shape {list(shapes[1])}: unknown channel count")
        n_cls = c if c is not None else d1 - 4 - m
        if d1 == 4 + n_cls + m and n_cls > 0:
            return Layout("yolov8-seg", n_cls, m)
        raise ValueError(f"{path}: output shapes {[list(s) for s in shapes]} do not fit "
                         f"{n_cls} classes + {m} mask coefficients in a YOLOv8-seg layout")
    kpt = _kpt_shape(meta, path)
    if kpt is not None:
        n_cls = c if c is not None else d1 - 4 - kpt[0] * kpt[1]
        if d1 == 4 + n_cls + kpt[0] * kpt[1] and n_cls > 0 and d1 < d2:
            return Layout("yolov8-pose", n_cls, kpt_shape=kpt)
        raise ValueError(f"{path}: output shape {list(first)} does not fit {n_cls} classes + {kpt[0]} x {kpt[1]} "
                         f"keypoint values (metadata kpt_shape) in a YOLOv8-pose layout [B, 4 + C + K * D, N]")
    if c is None:
        if d1 < d2:
            return Layout("yolov8", d1 - 4)
        raise ValueError(f"{path}: cannot tell the output layout of shape {list(first)}; pass class_names")
    if d2 == 5 + c:
        return Layout("yolov5", c)
    if d1 == 4 + c:
        return Layout("yolov8", c)
    if d2 == 4 + c:
        return Layout("rtdetr", c)
    raise ValueError(
        f"{path}: output shape {list(first)} fits none of the layouts for {c} classes: YOLOv5 [B, N, {5 + c}], "
        f"YOLOv8 [B, {4 + c}, N], RT-DETR [B, K, {4 + c}], NMS-free end-to-end [B, K, 6], YOLOv8-seg "
        f"[B, {4 + c}+M, N] + [B, M, h, w]"
    )


def raw_scores(layout: Layout, out: np.ndarray) -> np.ndarray:
    """Every candidate's class scores of one image's first output, (N, C) or (K,) for
    ``end2end`` (used by the load-time health check)."""
    if layout.name in ("yolov8", "yolov8-seg", "yolov8-pose"):
        return out[4: 4 + layout.n_classes].T
    if layout.name == "yolov5":
        return out[:, 5:] * out[:, 4:5]
    if layout.name == "end2end":
        return out[:, 4]
    return out[:, 4:]


def _cxcywh(b: np.ndarray) -> np.ndarray:
    return np.concatenate([b[:, :2] - b[:, 2:4] / 2, b[:, :2] + b[:, 2:4] / 2], axis=1)


def decode_outputs(
    layout: Layout, outs: Sequence[np.ndarray], input_size: tuple[int, int], conf: float, iou: float, max_det: int
) -> dict[str, Any]:
    """One image's raw outputs -> its detections in letterboxed input pixels.

    Args:
        layout: from :func:`detect_layout`.
        outs: the image's slice of every output (batch dimension removed).
        input_size: (height, width) of the model input, for normalised layouts.
        conf: keep scores above this.
        iou: class-wise NMS IoU (layouts that need NMS).
        max_det: at most this many boxes, by descending score.

    Returns:
        ``xyxy`` (K, 4) float32 input pixels, ``scores`` (K,), ``class_ids`` (K,) int64,
        ``class_probs`` (K, C) or ``None`` (end-to-end heads give one score),
        ``mask_coefs`` (K, M) or ``None``, ``keypoints`` (K, P, 3) input pixels and
        visibility score (1 where the model has no visibility channel) or ``None``.
    """
    pred = outs[0]
    coefs = None
    if layout.name == "end2end":
        keep = pred[:, 4] > conf
        p = pred[keep]
        order = np.argsort(-p[:, 4], kind="stable")[:max_det]
        p = p[order]
        return {"xyxy": p[:, :4].astype(np.float32), "scores": p[:, 4], "class_ids": p[:, 5].astype(np.int64),
                "class_probs": None, "mask_coefs": None, "keypoints": None}
    if layout.name == "rtdetr":
        probs = pred[:, 4:]
        scores = probs.max(1)
        keep = scores > conf
        p, probs, scores = pred[keep], probs[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[:max_det]
        h, w = input_size
        xyxy = _cxcywh(p[order, :4]) * np.array([w, h, w, h], np.float32)
        return {"xyxy": xyxy.astype(np.float32), "scores": scores[order], "class_ids": probs[order].argmax(1),
                "class_probs": probs[order], "mask_coefs": None, "keypoints": None}
    if layout.name in ("yolov8", "yolov8-seg", "yolov8-pose"):
        c = layout.n_classes
        scores = pred[4: 4 + c].max(0)
        keep = scores > conf
        p = pred[:, keep].T
        scores = scores[keep]
        probs = p[:, 4: 4 + c]
        if layout.n_masks or layout.kpt_shape:
            coefs = p[:, 4 + c:]  # mask coefficients or keypoint values, kept with their boxes
    else:  # yolov5: objectness bounds the score, filter on it first, then on the product
        p = pred[pred[:, 4] > conf]
        scores = (p[:, 5:] * p[:, 4:5]).max(1)
        keep = scores > conf
        p, scores = p[keep], scores[keep]
        probs = p[:, 5:]
    cls = probs.argmax(1)
    if len(scores) > MAX_NMS_CANDIDATES:
        top = np.argsort(-scores)[:MAX_NMS_CANDIDATES]
        p, probs, scores, cls = p[top], probs[top], scores[top], cls[top]
        coefs = None if coefs is None else coefs[top]
    xyxy = _cxcywh(p[:, :4])
    k = batched_nms(xyxy, scores, cls, iou, max_det)
    extra = None if coefs is None else coefs[k]
    return {"xyxy": xyxy[k], "scores": scores[k], "class_ids": cls[k], "class_probs": probs[k], "mask_coefs":
            extra if layout.n_masks else None, "keypoints": _keypoints(layout, extra)}


def _keypoints(layout: Layout, values: np.ndarray | None) -> np.ndarray | None:
    """(K, P * D) keypoint values -> (K, P, 3) with visibility 1 where the head has none."""
    if layout.kpt_shape is None or values is None:
        return None
    kp = values.reshape(len(values), *layout.kpt_shape).astype(np.float32)
    if layout.kpt_shape[1] == 2:
        kp = np.concatenate([kp, np.ones((*kp.shape[:2], 1), np.float32)], axis=2)
    return kp
