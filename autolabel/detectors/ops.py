"""Letterboxing: the resize YOLO models are fed with, and its inverse for boxes (NMS, box IoU and areas live in :mod:`autolabel.boxes`)."""

from __future__ import annotations

import numpy as np

__all__ = ["LETTERBOX_PAD", "letterbox", "letterbox_resize", "unletterbox", "unletterbox_points"]

LETTERBOX_PAD = 114  # the padding value YOLO models are trained with


def letterbox_resize(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The image part of a letterbox to ``size`` = (height, width), as YOLO does: ``image``
    resized keeping its aspect ratio, the scale ratio, and the (left, top) offset at which
    it sits in the padded ``size`` (the rest is padding)."""
    import cv2

    h, w = image.shape[:2]
    th, tw = size
    r = min(th / h, tw / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    if (nw, nh) != (w, h):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # an odd padding puts the extra pixel right / bottom
    return image, r, (int(round((tw - nw) / 2 - 0.1)), int(round((th - nh) / 2 - 0.1)))


def letterbox(
    image: np.ndarray, size: tuple[int, int], pad_value: int = LETTERBOX_PAD
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect ratio and pad to ``size`` = (height, width), as YOLO does.

    Returns the padded image, the scale ratio and the (left, top) padding.
    """
    region, r, (left, top) = letterbox_resize(image, size)
    out = np.full((*size, *image.shape[2:]), pad_value, image.dtype)
    out[top: top + region.shape[0], left: left + region.shape[1]] = region
    return out, r, (float(left), float(top))


def unletterbox(xyxy: np.ndarray, ratio: float, pad: tuple[float, float], width: int, height: int) -> np.ndarray:
    """Map boxes from letterboxed input pixels back to the original image, clipped to it."""
    b = xyxy.astype(np.float32, copy=True)
    b[:, [0, 2]] = ((b[:, [0, 2]] - pad[0]) / ratio).clip(0, width)
    b[:, [1, 3]] = ((b[:, [1, 3]] - pad[1]) / ratio).clip(0, height)
    return b


def unletterbox_points(points: np.ndarray, ratio: float, pad: tuple[float, float], width: int, height: int) -> np.ndarray:
    """Map (..., >= 2) points (x, y first; other columns kept) from letterboxed input pixels back to the
    original image, clipped to it (as Ultralytics' ``scale_coords`` does for keypoints)."""
    p = points.astype(np.float32, copy=True)
    p[..., 0] = ((p[..., 0] - pad[0]) / ratio).clip(0, width)
    p[..., 1] = ((p[..., 1] - pad[1]) / ratio).clip(0, height)
    return p
