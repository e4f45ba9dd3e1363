"""Keypoint evidence for the label audit: persons whose labeled keypoints disagree with their
box, and persons labeled without keypoints that a pose model sees clearly.

* ``keypoints_outside_box``: a labeled person (non-crowd) whose labeled keypoints (COCO
  ``v > 0``) lie outside its box grown by ``margin`` (a keypoint dragged onto a neighbour,
  or a box drawn around the wrong person); ranked by the share of such keypoints.
* ``missing_keypoints``: a labeled person without a single labeled keypoint, paired (the one
  :class:`~autolabel.matching.Matching` of the boxes) with a prediction that shows at least
  ``min_visible`` keypoints with visibility >= ``visibility``; ranked by that count over K.
  COCO leaves keypoints off small or heavily occluded persons by design, so check the
  ``area`` column before acting on a small one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autolabel.core import Results
from autolabel.keypoints import keypoint_box_agreement
from autolabel.matching import DELETE, match

__all__ = ["KEYPOINT_ISSUES", "keypoint_label_issues"]

KEYPOINT_ISSUES = ("keypoints_outside_box", "missing_keypoints")


def keypoint_label_issues(
    labels: Results,
    predictions: Results | None = None,
    conf: float = 0.25,
    visibility: float = 0.5,
    min_visible: int = 8,
    margin: float = 0.1,
) -> Any:
    """Suspected keypoint errors in human labels, ranked (see the module docs).

    Args:
        labels: the labels, with ``keypoints`` (COCO flags).
        predictions: a pose model's predictions on the same images (``missing_keypoints``
            needs them; ``None``: only ``keypoints_outside_box``).
        conf: box threshold of the predictions.
        visibility: a predicted keypoint is shown from this score.
        min_visible: shown keypoints from which a person labeled without any is suspect.
        margin: slack around a box, as a fraction of its size.

    Returns:
        DataFrame: ``file_name``, ``box`` (index in the image's labels), ``issue``,
        ``suspicion`` (0..1, higher first), ``area`` (box, pixels²), sorted by suspicion.

    Raises:
        ValueError: labels without keypoints, or predictions that do not line up.
    """
    import pandas as pd

    if labels.keypoint_spec is None:
        raise ValueError("keypoint_label_issues needs labels with keypoints (a COCO person_keypoints file)")
    rows: list[tuple[str, int, str, float, float]] = []
    for d in labels:
        if d.keypoints is None or not len(d):
            continue
        agree = keypoint_box_agreement(d.xyxy, d.keypoints, t=1e-9, margin=margin)  # labeled: v > 0
        for j in np.flatnonzero((agree[:, 1] > 0) & ~d.crowd):
            rows.append((d.image.file_name, int(j), KEYPOINT_ISSUES[0], float(agree[j, 1]), float(d.area[j])))
    if predictions is not None:
        rows += _missing(labels, predictions, conf, visibility, min_visible)
    df = pd.DataFrame(rows, columns=["file_name", "box", "issue", "suspicion", "area"])
    return df.sort_values(["suspicion", "area"], ascending=False, ignore_index=True)


def _missing(labels: Results, predictions: Results, conf: float, visibility: float, min_visible: int) -> list:
    """``missing_keypoints`` rows: persons without labeled keypoints whose paired prediction shows many."""
    m = match(predictions, labels, conf)
    paired = (m.pred_gt >= 0) & (m.pred_edit < DELETE)
    g_start = np.searchsorted(m.gt_image, np.arange(len(m.gt)))
    out = []
    for p in np.flatnonzero(paired):
        i, g = int(m.pred_image[p]), int(m.pred_gt[p])
        lab, pred = m.gt[i], m.pred[i]
        j = g - int(g_start[i])
        if lab.keypoints is None or pred.keypoints is None or (lab.keypoints[j, :, 2] > 0).any():
            continue
        shown = int((pred.keypoints[m.pred_box[p], :, 2] >= visibility).sum())
        if shown >= min_visible:
            out.append((lab.image.file_name, j, KEYPOINT_ISSUES[1], shown / lab.keypoints.shape[1], float(lab.area[j])))  # type: ignore[union-attr]
    return out
