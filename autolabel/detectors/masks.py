"""Instance masks of YOLOv8-seg style exports, as polygons in original-image pixels.

A box's mask is ``sigmoid(coefs @ prototypes) > 0.5`` cropped to the box (Ultralytics'
``process_mask``). We compute it only inside the box: the box's window of the prototype
grid is resized (bilinear, on the logits) straight to the box's size in original pixels,
so the letterbox is undone by the same resize, and OpenCV's ``findContours`` traces the
outlines. Polygons are stored per box in ``Detections.data["polygons"]``: an object array,
one entry per box, each a list of polygons, each a flat ``[x1, y1, x2, y2, ...]`` list of
floats: COCO's ``segmentation`` format (an empty list when the mask is empty).
"""

from __future__ import annotations

import numpy as np

__all__ = ["POLYGONS", "mask_polygons"]

POLYGONS = "polygons"  # the Detections.data key
_MAX_SIDE = 512  # rasterise a mask at most this many pixels on its longer side


def mask_polygons(
    coefs: np.ndarray,
    protos: np.ndarray,
    xyxy_input: np.ndarray,
    input_size: tuple[int, int],
    ratio: float,
    pad: tuple[float, float],
    width: int,
    height: int,
) -> np.ndarray:
    """Outline every box's mask.

    Args:
        coefs: (K, M) mask coefficients of the kept boxes.
        protos: (M, h, w) mask prototypes of the image (the model's second output).
        xyxy_input: (K, 4) boxes in letterboxed input pixels.
        input_size: (height, width) of the model input.
        ratio: letterbox scale (input pixels per original pixel).
        pad: letterbox (left, top) offset in input pixels.
        width: original image width in pixels.
        height: original image height in pixels.

    Returns:
        (K,) object array; entry k a list of flat ``[x, y, ...]`` polygons in original
        pixels, each with at least 3 points.
    """
    import cv2

    m, ph, pw = protos.shape
    sy, sx = ph / input_size[0], pw / input_size[1]  # prototype cells per input pixel
    out = np.empty(len(coefs), object)
    flat = protos.reshape(m, -1)
    for k, (c, b) in enumerate(zip(coefs, xyxy_input)):
        out[k] = []
        x0, x1 = int(np.floor(max(b[0], 0) * sx)), int(np.ceil(min(b[2], input_size[1]) * sx))
        y0, y1 = int(np.floor(max(b[1], 0) * sy)), int(np.ceil(min(b[3], input_size[0]) * sy))
        if x1 <= x0 or y1 <= y0:
            continue
        logits = (c @ flat).reshape(ph, pw)[y0:y1, x0:x1].astype(np.float32)
        # the window in original pixels
        ox0, oy0 = (x0 / sx - pad[0]) / ratio, (y0 / sy - pad[1]) / ratio
        ow, oh = (x1 - x0) / sx / ratio, (y1 - y0) / sy / ratio
        scale = min(1.0, _MAX_SIDE / max(ow, oh))  # raster pixels per original pixel
        rw, rh = max(1, int(round(ow * scale))), max(1, int(round(oh * scale)))
        mask = cv2.resize(logits, (rw, rh), interpolation=cv2.INTER_LINEAR) > 0
        # crop to the box itself (in raster pixels), as process_mask does
        bx0, by0, bx1, by1 = (
            ((b[0] - pad[0]) / ratio - ox0) * scale, ((b[1] - pad[1]) / ratio - oy0) * scale,
            ((b[2] - pad[0]) / ratio - ox0) * scale, ((b[3] - pad[1]) / ratio - oy0) * scale,
        )
        cols, rows = np.arange(rw) + 0.5, np.arange(rh) + 0.5
        mask &= ((rows >= by0) & (rows <= by1))[:, None] & ((cols >= bx0) & (cols <= bx1))[None, :]
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for ct in contours:
            if len(ct) < 3:
                continue
            pts = ct.reshape(-1, 2).astype(np.float64) / scale + (ox0, oy0)
            pts[:, 0] = pts[:, 0].clip(0, width)
            pts[:, 1] = pts[:, 1].clip(0, height)
            out[k].append([round(float(v), 2) for v in pts.reshape(-1)])
    return out
