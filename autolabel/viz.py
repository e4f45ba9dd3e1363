"""Drawing detections for notebooks (matplotlib)."""

from __future__ import annotations

from typing import Any

import numpy as np

from autolabel.core import Detections

__all__ = ["plot_detections"]


def plot_detections(det: Detections, image: np.ndarray | str | None = None, ax=None, conf: float = 0.0):
    """Draw the boxes scoring at least ``conf`` with ``label score`` captions on the
    image; returns the matplotlib axes.

    ``image`` is an RGB array or a path; by default the detections' own ``image.path``.
    """
    import matplotlib.pyplot as plt

    from autolabel.io.images import load_image

    if image is None:
        if det.image is None or det.image.path is None:
            raise ValueError("no image given and the detections carry no image path")
        image = det.image.path
    arr = load_image(image) if isinstance(image, str) else image
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 8 * arr.shape[0] / max(arr.shape[1], 1)))
    ax.imshow(arr)
    colors = plt.get_cmap("tab20")
    shown = det[det.scores >= conf]
    for (x1, y1, x2, y2), score, cid, label in zip(shown.xyxy, shown.scores, shown.class_ids, shown.labels):
        c = colors(int(cid) % 20)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=1.5))
        ax.text(x1, y1, f"{label} {score:.2f}", color="white", fontsize=7, va="bottom",
                bbox={"facecolor": c, "alpha": 0.8, "pad": 1, "linewidth": 0})
    if shown.keypoints is not None and shown.keypoint_spec is not None:
        _plot_keypoints(ax, shown.keypoints, shown.keypoint_spec.skeleton, colors)
    ax.set_axis_off()
    if det.image is not None:
        ax.set_title(f"{det.image.key}: {len(shown)} boxes", fontsize=9)
    return ax


def _plot_keypoints(ax: Any, keypoints: np.ndarray, skeleton: tuple, colors: Any, visibility: float = 0.5) -> None:
    """Each box's visible keypoints as dots and the skeleton edges between visible pairs."""
    for k, kp in enumerate(keypoints):
        vis = kp[:, 2] >= visibility
        c = colors(k % 20)
        for a, b in skeleton:
            if vis[a] and vis[b]:
                ax.plot(kp[[a, b], 0], kp[[a, b], 1], color=c, linewidth=1.2)
        ax.scatter(kp[vis, 0], kp[vis, 1], s=9, color=c, edgecolors="white", linewidths=0.5, zorder=3)
