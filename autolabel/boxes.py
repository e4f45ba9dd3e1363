"""Box geometry kernels: the one place that computes areas, intersections and IoU.

Every stage (matching, NMS checks, scoring, temporal consistency, tracking, audit)
calls these, as torchvision keeps one ``_box_inter_union`` in ``ops/boxes.py``.
Boxes are ``xyxy`` (x1, y1, x2, y2) in pixels; results are float64. A box with
negative width or height has area 0; pairs whose union is 0 have IoU 0.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import numpy as np

__all__ = ["box_area", "safe_ratio", "box_inter_union", "box_iou", "paired_inter_union", "paired_iou", "best_same_class_iou", "batched_nms"]


def _xyxy(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float64).reshape(-1, 4)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of ``xyxy`` boxes.

    Args:
        boxes: (N, 4) ``xyxy``.

    Returns:
        (N,) float64 areas, 0 for degenerate boxes.
    """
    b = _xyxy(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den`` is 0 (IoU, IoA of empty boxes)."""
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def box_inter_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise intersection and union areas.

    Args:
        a: (N, 4) ``xyxy``.
        b: (M, 4) ``xyxy``.

    Returns:
        ``(inter, union)``, each (N, M) float64.
    """
    a, b = _xyxy(a), _xyxy(b)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(a)[:, None] + box_area(b)[None, :] - inter


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU.

    Args:
        a: (N, 4) ``xyxy``.
        b: (M, 4) ``xyxy``.

    Returns:
        (N, M) float64 IoU in [0, 1].
    """
    inter, union = box_inter_union(a, b)
    return safe_ratio(inter, union)


def paired_inter_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection and the two areas of the box pairs ``a[k], b[k]`` (no broadcast).

    Args:
        a: (K, 4) ``xyxy``.
        b: (K, 4) ``xyxy``.

    Returns:
        ``(inter, area_a, area_b)``, each (K,) float64.
    """
    a, b = _xyxy(a), _xyxy(b)
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    return wh[:, 0] * wh[:, 1], box_area(a), box_area(b)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the box pairs ``a[k], b[k]``.

    Args:
        a: (K, 4) ``xyxy``.
        b: (K, 4) ``xyxy``.

    Returns:
        (K,) float64 IoU.
    """
    inter, area_a, area_b = paired_inter_union(a, b)
    return safe_ratio(inter, area_a + area_b - inter)


def best_same_class_iou(
    a: np.ndarray, a_labels: ArrayLike, b: np.ndarray, b_labels: ArrayLike
) -> np.ndarray:
    """For every box of ``a``, the best IoU with a box of ``b`` of the same label.

    Args:
        a: (N, 4) ``xyxy``; ``a_labels``: N labels (names or ids).
        b: (M, 4) ``xyxy``; ``b_labels``: M labels.

    Returns:
        (N,) float64; 0 where ``b`` has no box of that label.
    """
    n = len(_xyxy(a))
    if n == 0 or len(_xyxy(b)) == 0:
        return np.zeros(n)
    same = np.asarray(a_labels, dtype=object)[:, None] == np.asarray(b_labels, dtype=object)[None, :]
    return np.where(same, box_iou(a, b), 0.0).max(axis=1)


def batched_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, max_det: int = 300
) -> np.ndarray:
    """Class-wise greedy NMS (boxes of different classes never suppress each other).

    Returns kept indices by descending score, at most ``max_det``. A box is suppressed
    when its IoU with a kept box of its class exceeds ``iou`` (OpenCV's C++ kernel).
    """
    import cv2

    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    b = np.asarray(boxes, np.float32)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), np.asarray(scores, np.float32).tolist(), np.asarray(class_ids, np.int32).tolist(),
        0.0, float(iou),
    )  # OpenCV's top_k caps candidates *before* NMS, so max_det is applied after
    return np.asarray(keep, np.int64).reshape(-1)[:max_det]

