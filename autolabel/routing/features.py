"""Per-box and per-image features of a detector's output, and the targets they are fitted to.

**Per box** (:func:`box_table`): the detector ``score``; ``entropy`` and ``margin`` of the
class-probability vector where the backend exposes one (``Detections.class_probs``; NaN
otherwise). YOLO heads give *independent* per-class sigmoid probabilities, so each row is
first normalised to sum to one; ``entropy`` is divided by ``log(C)`` (0 = certain, 1 =
uniform) and ``margin`` is top-1 minus top-2 of the normalised row.

**Targets** (:func:`match_targets`) read one :class:`autolabel.matching.Matching` of the
pre-labels: a box is ``located`` (IoU >= iou_min with an object, any class), ``correct``
(right class too) or ``exact`` (no edit); boxes below the pre-label threshold are matched,
in one more vectorised pass, to the objects no pre-label found (``found``: evidence of a miss).

**Per image** (:func:`image_features`): the plain features of the detector output that the
learned image scorer (:mod:`autolabel.routing.scorers`) reads (:data:`IMAGE_FEATURES`).

**Keypoint evidence** (:func:`keypoint_features`, pose models): per image, the least and
the mean share of a pre-labeled person's keypoints the model shows, and the largest share
of shown keypoints lying outside their own box (keypoints that disagree with the box).

**Optional signals** (more inference, off by default): :func:`tta_agreement` (stability of
each box under a horizontal flip and one rescale) and :func:`detector_agreement` (best
same-class IoU with the boxes of other detectors), per box in [0, 1].
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from autolabel.boxes import best_same_class_iou, box_area, box_iou
from autolabel.config import IOU_ACCEPT, IOU_MIN
from autolabel.core import Detections, Results

__all__ = [
    "class_entropy", "class_margin", "box_table", "match_targets", "IMAGE_FEATURES", "image_features",
    "tta_agreement", "detector_agreement", "KEYPOINT_FEATURES", "keypoint_features",
]

# -- class-probability uncertainty ------------------------------------------------------
def _normalised(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, np.float64), 0, None)
    s = p.sum(1, keepdims=True)
    return np.where(s > 0, p / np.where(s > 0, s, 1), 1.0 / max(p.shape[1], 1))


def class_entropy(probs: np.ndarray | None, n: int = 0) -> np.ndarray:
    """Entropy of each row of ``probs`` (normalised to sum 1) divided by ``log(C)``;
    ``n`` NaNs when ``probs`` is None (backend without a class distribution)."""
    if probs is None:
        return np.full(n, np.nan)
    p = _normalised(probs)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return h / np.log(p.shape[1])


def class_margin(probs: np.ndarray | None, n: int = 0) -> np.ndarray:
    """Top-1 minus top-2 probability of each normalised row (1 = certain); NaN without probs."""
    if probs is None:
        return np.full(n, np.nan)
    p = _normalised(probs)
    if p.shape[1] < 2:
        return np.ones(len(p))
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


# -- per-box table ------------------------------------------------------------------------------
def box_table(
    results: Results, prelabel_conf: float = 0.0, agreement: Sequence[np.ndarray] | None = None
):
    """One row per predicted box: ``image`` (position in ``results``), ``file_name``,
    ``box`` (index in its image), ``label``, ``score``, ``entropy``, ``margin``,
    ``prelabel`` (``score >= prelabel_conf``) and, with ``agreement`` (one array per image,
    one value per box, as :func:`tta_agreement` returns), ``agreement``. A DataFrame."""
    import pandas as pd

    if agreement is not None and len(agreement) != len(results):
        raise ValueError(f"agreement has {len(agreement)} entries for {len(results)} images")
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("image", "box", "label", "score", "entropy", "margin")}
    names, agree = [], []
    for i, d in enumerate(results):
        n = len(d)
        cols["image"].append(np.full(n, i))
        cols["box"].append(np.arange(n))
        cols["label"].append(np.asarray(d.labels, dtype=object))
        cols["score"].append(d.scores.astype(np.float64))
        cols["entropy"].append(class_entropy(d.class_probs, n))
        cols["margin"].append(class_margin(d.class_probs, n))
        names.append(np.full(n, d.image.file_name if d.image else str(i), dtype=object))
        if agreement is not None:
            a = np.asarray(agreement[i], np.float64)
            if a.shape != (n,):
                raise ValueError(f"{names[-1][0] if n else i}: agreement has shape {a.shape} for {n} boxes")
            agree.append(a)
    table = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    table["file_name"] = np.concatenate(names) if names else np.zeros(0, object)
    table["prelabel"] = table["score"] >= prelabel_conf
    if agreement is not None:
        table["agreement"] = np.concatenate(agree) if agree else np.zeros(0)
    order = ["image", "file_name", "box", "label", "score", "entropy", "margin", "prelabel"]
    return pd.DataFrame(table)[order + (["agreement"] if agreement is not None else [])]


_FOUND = ("accept", "adjust", "relabel", "adjust_relabel")


def match_targets(
    predictions: Results,
    ground_truth: Results,
    prelabel_conf: float = 0.0,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    agreement: Sequence[np.ndarray] | None = None,
    evidence_conf: float = 0.0,
    min_gt_area: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Label every predicted box and image against ground truth, for calibration.

    The pre-labels (``score >= prelabel_conf``) are matched once by
    :func:`autolabel.matching.match` (images in the ground truth's order; both sides must
    hold the same images). Boxes below ``prelabel_conf`` (down to ``evidence_conf``) are
    matched, in one more vectorised :func:`~autolabel.matching.match`, to the objects no
    pre-label found: ``found`` marks those that found one. Pre-labels on crowd (or
    don't-care) regions get edit ``ignore`` and NaN targets.

    Args:
        predictions, ground_truth: the same images (any order).
        prelabel_conf: pre-label threshold. evidence_conf: lower boxes are left out.
        iou_accept, iou_min: the matching's IoU thresholds.
        agreement: per image (predictions' order), per box, a signal in [0, 1].
        min_gt_area: ground-truth boxes smaller than this (pixels²) are don't-care regions.

    Returns:
        ``(boxes, images)``: :func:`box_table` plus ``located``, ``correct``, ``exact``
        (1.0/0.0/NaN), ``edit`` and ``found``; one row per image with ``image``,
        ``file_name``, ``n_gt`` (objects that are not crowd or don't-care), one count
        column per edit kind and ``needs_edit``.

    Raises:
        ValueError: images or classes that do not line up (from the matcher).
    """
    from autolabel.matching import EDIT_CODES, EDIT_KINDS, match

    m = match(predictions, ground_truth, prelabel_conf, iou_accept, iou_min, min_gt_area=min_gt_area)
    boxes = box_table(predictions, prelabel_conf, agreement)  # features from the predictions as given
    position = {f: i for i, f in enumerate(m.images)}
    boxes["image"] = boxes["file_name"].map(position).to_numpy()
    boxes = boxes[boxes["score"] >= evidence_conf].sort_values(["image", "box"], kind="stable").reset_index(drop=True)
    width = int(boxes["box"].max()) + 1 if len(boxes) else 1
    key = boxes["image"].to_numpy(np.int64) * width + boxes["box"].to_numpy(np.int64)  # ascending
    edit = np.full(len(boxes), "", dtype=object)
    edit[np.searchsorted(key, m.pred_image * width + m.pred_box)] = np.array(EDIT_CODES, dtype=object)[m.pred_edit]

    # evidence boxes against the objects the pre-labels missed (crowd regions stay, as they are never paired)
    sub = boxes[~boxes["prelabel"]]
    found = np.zeros(len(boxes), bool)
    if len(sub):
        g_start = np.searchsorted(m.gt_image, np.arange(len(m)))
        g_end = np.searchsorted(m.gt_image, np.arange(len(m)), side="right")
        by_image = sub.groupby("image")["box"].apply(np.asarray)
        idx = [by_image.get(i, np.zeros(0, np.int64)) for i in range(len(m))]
        ev = Results([m.pred[i][np.asarray(b, np.int64)] for i, b in enumerate(idx)], m.pred.class_names)
        unfound = Results([g[~m.gt_matched[g_start[i]:g_end[i]]] for i, g in enumerate(m.gt)], m.gt.class_names)
        m2 = match(ev, unfound, None, iou_accept, iou_min, min_gt_area=min_gt_area)
        hit = np.isin(np.array(EDIT_CODES)[m2.pred_edit], _FOUND)
        orig_box = np.concatenate([np.asarray(b, np.int64) for b in idx])[
            np.cumsum([0] + [len(b) for b in idx])[m2.pred_image] + m2.pred_box]
        found[np.searchsorted(key, m2.pred_image * width + orig_box)] = hit

    counts = m.image_counts
    images = pd.DataFrame(counts, columns=list(EDIT_KINDS))
    images.insert(0, "n_gt", np.bincount(m.gt_image[~m.gt_crowd], minlength=len(m)))
    images.insert(0, "file_name", list(m.images))
    images.insert(0, "image", np.arange(len(m)))
    images["needs_edit"] = m.needs_edit
    scored = np.isin(edit, ("", "ignore"), invert=True)
    for name, kinds in (("located", _FOUND), ("correct", ("accept", "adjust")), ("exact", ("accept",))):
        boxes[name] = np.where(scored, np.isin(edit, kinds), np.nan)
    boxes["edit"] = edit
    boxes["found"] = found
    return boxes, images


#: Per-image features of the learned scorer (:func:`image_features`), in column order.
IMAGE_FEATURES = (
    "n_prelabels", "min_score", "mean_score", "log_prod_score", "n_evidence", "max_evidence", "sum_evidence",
    "n_lone_evidence", "max_lone_evidence", "min_area_share", "max_area_share", "sum_area_share", "image_area",
    "max_pair_iou", "n_pairs_iou_03", "n_small", "n_medium", "n_large", "max_entropy", "min_margin",
    "n_score_03_05", "mean_agreement", "min_agreement",
)


def image_features(
    results: Results, prelabel_conf: float, evidence_conf: float = 0.0,
    agreement: Sequence[np.ndarray] | None = None,
) -> pd.DataFrame:
    """Plain per-image features of a detector's output (:data:`IMAGE_FEATURES`).

    Pre-labels are boxes with ``score >= prelabel_conf``; evidence boxes score in
    ``[evidence_conf, prelabel_conf)``. "Lone" evidence overlaps no pre-label of its class
    (IoU < 0.5): a candidate missed object. Area shares are box area / image area; sizes are
    COCO's buckets (< 32², < 96², larger, in pixels²); crowding is the largest IoU between two
    pre-labels and the count of pairs above 0.3. Entropy and margin (NaN without class
    probabilities) and agreement (NaN without ``agreement``) are -1 when missing.

    Args:
        results: one detection set per image (image sizes from ``ImageInfo``).
        prelabel_conf, evidence_conf: score thresholds.
        agreement: per image, per box, a signal in [0, 1].

    Returns:
        DataFrame, one row per image in ``results`` order, columns :data:`IMAGE_FEATURES`.
    """
    rows = []
    for i, d in enumerate(results):
        d = d[d.scores >= evidence_conf]
        s = d.scores.astype(np.float64)
        pre = s >= prelabel_conf
        ev = s[~pre]
        w, h = (d.image.width, d.image.height) if d.image else (1, 1)
        area = box_area(d.xyxy[pre]).astype(np.float64)
        share = area / max(1.0, float(w) * float(h))
        lone = ~pre
        if pre.any() and lone.any():
            lab = np.asarray(d.labels, dtype=object)
            lone[lone] = best_same_class_iou(d.xyxy[~pre], lab[~pre], d.xyxy[pre], lab[pre]) < 0.5
        iou = box_iou(d.xyxy[pre], d.xyxy[pre]) if pre.sum() > 1 else np.zeros((0, 0))
        upper = iou[np.triu_indices(len(iou), 1)] if len(iou) else np.zeros(0)
        ent, mar = class_entropy(d.class_probs, len(d))[pre], class_margin(d.class_probs, len(d))[pre]
        agr = np.asarray(agreement[i], np.float64)[results[i].scores >= evidence_conf][pre] if agreement is not None else np.zeros(0)
        rows.append((
            int(pre.sum()), s[pre].min(initial=1.0), s[pre].mean() if pre.any() else 1.0, np.log(s[pre]).sum(),
            len(ev), ev.max(initial=0.0), ev.sum(), int(lone.sum()), s[lone].max(initial=0.0),
            share.min(initial=0.0) if pre.any() else 0.0, share.max(initial=0.0), share.sum(), float(w) * float(h),
            upper.max(initial=0.0), int((upper > 0.3).sum()),
            int((area < 32**2).sum()), int(((area >= 32**2) & (area < 96**2)).sum()), int((area >= 96**2).sum()),
            _or(np.nanmax, ent), _or(np.nanmin, mar), int(((s >= 0.3) & (s < 0.5)).sum()),
            _or(np.mean, agr), _or(np.min, agr),
        ))
    return pd.DataFrame(rows, columns=list(IMAGE_FEATURES), dtype=np.float64)


#: Per-image keypoint evidence of a pose model's pre-labels (:func:`keypoint_features`).
KEYPOINT_FEATURES = ("kp_min_visible_share", "kp_mean_visible_share", "kp_max_outside_share")


def keypoint_features(results: Results, prelabel_conf: float, visibility: float = 0.5) -> pd.DataFrame:
    """Keypoint evidence per image (:data:`KEYPOINT_FEATURES`; -1 for an image without
    pre-labels or keypoints): of the pre-labels (``score >= prelabel_conf``), the least and mean
    share of keypoints shown (visibility >= ``visibility``: few shown means keypoints to add),
    and the largest share of shown keypoints outside their box (see
    :func:`autolabel.keypoints.keypoint_box_agreement`). DataFrame, one row per image."""
    from autolabel.keypoints import keypoint_box_agreement

    rows = []
    for d in results:
        d = d[d.scores >= prelabel_conf]
        a = keypoint_box_agreement(d.xyxy, d.keypoints, visibility) if d.keypoints is not None else np.zeros((0, 2))
        rows.append((_or(np.min, a[:, 0]), _or(np.mean, a[:, 0]), _or(np.max, a[:, 1])))
    return pd.DataFrame(rows, columns=list(KEYPOINT_FEATURES), dtype=np.float64)


def _or(f: Any, x: np.ndarray, missing: float = -1.0) -> float:
    """``f(x)``, or ``missing`` for an empty or all-NaN ``x``."""
    x = x[np.isfinite(x)]
    return float(f(x)) if len(x) else missing


# -- optional agreement signals ---------------------------------------------------------------
def detector_agreement(detections: Detections, others: Sequence[Detections]) -> np.ndarray:
    """Per box of ``detections``: the best IoU with a box of the same class name from
    each other detector on the same image, averaged over ``others`` (0 = no detector
    agrees, 1 = all found the identical box)."""
    if not others:
        raise ValueError("detector_agreement needs at least one other detector's detections")
    return np.mean([best_same_class_iou(detections.xyxy, detections.labels, o.xyxy, o.labels) for o in others], axis=0)


def tta_agreement(
    detector: Any,
    images: Sequence[np.ndarray],
    detections: Sequence[Detections],
    scale: float = 0.75,
    conf: float = 0.1,
) -> list[np.ndarray]:
    """Per image, per box: how stable the box is under test-time augmentation.

    ``detector`` re-detects each RGB image horizontally flipped and resized by ``scale``
    (at ``conf``); boxes are mapped back and each original box gets the mean, over the
    two views, of its best same-class IoU there. Costs two extra inference passes."""
    import cv2

    if len(images) != len(detections):
        raise ValueError(f"{len(images)} images for {len(detections)} detections")
    flips = detector.predict([np.ascontiguousarray(im[:, ::-1]) for im in images], conf=conf)
    resized = [cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for im in images]
    small = detector.predict(resized, conf=conf)
    out = []
    for im, r, d, f, s in zip(images, resized, detections, flips, small):
        h, w = im.shape[:2]
        back = np.array([w, h, w, h], np.float32) / np.array([r.shape[1], r.shape[0]] * 2, np.float32)
        unflip = f.xyxy[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32) + np.array([w, 0, w, 0], np.float32)
        views = [best_same_class_iou(d.xyxy, d.labels, v, lab) for v, lab in ((unflip, f.labels), (s.xyxy * back, s.labels))]
        out.append(np.mean(views, axis=0))
    return out
