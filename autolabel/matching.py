"""Matching predictions to ground truth: done once, into one :class:`Matching` that every
analysis reads (savings, threshold sweeps, routing calibration, cost fitting, the Label
Studio pull, the label audit, video savings).

**Rule** (pycocotools' semantics, made optimal): per image, predictions and non-crowd
ground truth are paired one-to-one by an optimal assignment
(``scipy.optimize.linear_sum_assignment``) over pairs with IoU >= ``iou_min``. The
assignment maximises, in this order: right-class pairs (COCO's hits), pairs, summed IoU.
A wrong-class box is worth pairing (relabelling is cheaper than delete + draw) but never
at the cost of a right-class pair. COCO's crowd rule: an unpaired prediction covering a
crowd region of its class (intersection over the prediction's area >= ``iou_min``) is
*ignored*, neither a hit nor a false alarm. Boxes are put in a canonical order first, so
nothing depends on the order they come in.

**Edits** (:data:`EDIT_KINDS`): ``accept`` (right class, IoU >= iou_accept), ``adjust``
(right class, iou_min <= IoU < iou_accept), ``relabel`` (wrong class, IoU >= iou_accept),
``adjust_relabel`` (wrong class, lower IoU), ``delete`` (unpaired or duplicate
prediction), ``draw`` (missed object); predictions on crowd regions get ``ignore``.

**Join key**: images are paired by ``ImageInfo.file_name``, the name every format writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autolabel.boxes import box_area, paired_inter_union, safe_ratio
from autolabel.classmap import align_classes  # public here too: every matching starts with it
from autolabel.config import IOU_ACCEPT, IOU_MIN
from autolabel.core import Detections, Results

__all__ = ["EDIT_KINDS", "EDIT_CODES", "ImageMatch", "Matching", "match", "match_sweep", "match_image", "align_classes",
           "check_ious"]

EDIT_KINDS = ("accept", "adjust", "relabel", "adjust_relabel", "delete", "draw")
EDIT_CODES = EDIT_KINDS + ("ignore",)  # a prediction's edit code indexes this
ACCEPT, ADJUST, RELABEL, ADJUST_RELABEL, DELETE, DRAW, IGNORE = range(7)
_PRED_EDITS = np.array(EDIT_CODES)


@dataclass(eq=False)
class ImageMatch:
    """How one image's predictions pair with its ground truth.

    ``pred_edit``: per prediction, one of accept/adjust/relabel/adjust_relabel/delete or
    ``ignore`` (on a crowd region); ``pred_gt``: the paired ground-truth index (the crowd
    region for ``ignore``) or -1; ``pred_iou``: IoU with it (intersection over the
    prediction's area for ``ignore``); ``gt_matched``: per ground-truth box, paired or
    not (crowd regions: never); ``counts``: number of each of :data:`EDIT_KINDS`, where
    ``draw`` counts unpaired non-crowd ground truth.
    """

    pred_edit: np.ndarray
    pred_gt: np.ndarray
    pred_iou: np.ndarray
    gt_matched: np.ndarray
    counts: dict[str, int]


def _check_boxes(d: Detections, what: str) -> None:
    b = d.xyxy
    bad = ~np.isfinite(b).all(1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = "is not finite" if not np.isfinite(b[i]).all() else "has negative width or height"
        where = repr(d.image.file_name) if d.image else "(no image info)"
        raise ValueError(f"{what} image {where}, box {i}: xyxy {b[i].tolist()} {why}")


def check_ious(iou_accept: float, iou_min: float) -> None:
    """Raise ``ValueError`` unless ``0 < iou_min <= iou_accept <= 1``."""
    if not 0 < iou_min <= iou_accept <= 1:
        raise ValueError(f"need 0 < iou_min <= iou_accept <= 1, got iou_min={iou_min}, iou_accept={iou_accept}")


def _check_all(boxes: np.ndarray, dets: Sequence[Detections], what: str) -> None:
    """Validate every image's boxes at once (``boxes``: theirs, concatenated)."""
    if not (np.isfinite(boxes).all() and (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()):
        for d in dets:
            _check_boxes(d, what)


@dataclass
class _Boxes:
    """Boxes of many images concatenated image after image: ``img`` is ascending."""

    xyxy: np.ndarray
    cls: np.ndarray
    img: np.ndarray
    score: np.ndarray  # predictions (1 for ground truth)
    crowd: np.ndarray  # ground truth (False for predictions)

    @classmethod
    def of(cls, dets: Sequence[Detections], what: str, ground_truth: bool) -> _Boxes:
        def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts) if parts else empty

        xyxy = cat([d.xyxy for d in dets], np.zeros((0, 4), np.float32))
        _check_all(xyxy, dets, what)
        img = np.repeat(np.arange(len(dets)), [len(d) for d in dets])
        cl = cat([d.class_ids for d in dets], np.zeros(0, np.int64))
        if ground_truth:
            return cls(xyxy, cl, img, np.ones(len(xyxy), np.float32), cat([d.crowd for d in dets], np.zeros(0, bool)))
        return cls(xyxy, cl, img, cat([d.scores for d in dets], np.zeros(0, np.float32)), np.zeros(len(xyxy), bool))

    def __getitem__(self, keep: np.ndarray) -> _Boxes:
        return _Boxes(self.xyxy[keep], self.cls[keep], self.img[keep], self.score[keep], self.crowd[keep])


def _match(
    p: _Boxes, g: _Boxes, n_img: int, iou_accept: float, iou_min: float, relabel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match every image at once: edit codes (indices into EDIT_KINDS, 6 = ignore), paired
    GT index (or the crowd region), IoU (IoA for crowd), GT paired.

    All (prediction, GT) pairs of each image are scored in one vectorised pass. An
    image whose candidate pairs (IoU >= iou_min) share no box needs no assignment:
    every candidate pair is taken. The others get ``linear_sum_assignment`` on their
    block, in a canonical box order so that input order never matters.
    """
    po = np.lexsort((*p.xyxy.T[::-1], p.cls, -p.score, p.img))
    go = np.lexsort((*g.xyxy.T[::-1], g.cls, g.crowd, g.img))
    p, g = p[po], g[go]
    n_p, n_g = np.bincount(p.img, minlength=n_img), np.bincount(g.img, minlength=n_img)
    g_start = np.cumsum(n_g) - n_g
    per_pred = n_g[p.img]
    pair_start = np.cumsum(per_pred) - per_pred
    pi = np.repeat(np.arange(len(po)), per_pred)  # every (prediction, GT) pair of each image
    gi = g_start[p.img[pi]] + np.arange(len(pi)) - pair_start[pi]
    inter, area_p, area_g = paired_inter_union(p.xyxy[pi], g.xyxy[gi])
    iou = safe_ratio(inter, area_p + area_g - inter)
    same = p.cls[pi] == g.cls[gi]
    crowd = g.crowd[gi]
    edge = ~crowd & (iou >= iou_min) & (same | relabel)

    conflict = np.zeros(n_img, bool)  # a box in two candidate pairs
    conflict[p.img[np.bincount(pi[edge], minlength=len(po)) > 1]] = True
    conflict[g.img[np.bincount(gi[edge], minlength=len(go)) > 1]] = True
    hard = np.flatnonzero(conflict)
    first_pred = np.cumsum(n_p) - n_p
    sel = np.concatenate([np.flatnonzero(edge & ~conflict[p.img[pi]]),
                          *_assigned(n_p[hard], n_g[hard], pair_start[first_pred[hard]], edge, iou, same)])

    code = np.full(len(po), DELETE, np.int64)
    pred_gt = np.full(len(po), -1, np.int64)
    pred_iou = np.zeros(len(po))
    gt_matched = np.zeros(len(go), bool)
    code[pi[sel]] = np.where(same[sel], ACCEPT, RELABEL) + (iou[sel] < iou_accept)  # +1: adjust(_relabel)
    pred_gt[pi[sel]], pred_iou[pi[sel]] = gi[sel], iou[sel]
    gt_matched[gi[sel]] = True
    # COCO's crowd rule: an unpaired prediction on a crowd region of its class is ignored
    ioa = safe_ratio(inter, area_p)
    on_crowd = np.flatnonzero(crowd & same & (ioa >= iou_min) & (code[pi] == DELETE))
    if len(on_crowd):
        on_crowd = on_crowd[np.lexsort((-ioa[on_crowd], pi[on_crowd]))]
        first = on_crowd[np.unique(pi[on_crowd], return_index=True)[1]]  # best crowd region per prediction
        code[pi[first]], pred_gt[pi[first]], pred_iou[pi[first]] = IGNORE, gi[first], ioa[first]

    out_code, out_gt, out_iou, out_matched = (np.empty_like(a) for a in (code, pred_gt, pred_iou, gt_matched))
    out_code[po], out_iou[po], out_matched[go] = code, pred_iou, gt_matched  # back to the input order
    out_gt[po] = np.where(pred_gt >= 0, go[np.maximum(pred_gt, 0)] if len(go) else -1, -1)
    return out_code, out_gt, out_iou, out_matched


def _assigned(n_p: np.ndarray, n_g: np.ndarray, starts: np.ndarray, edge: np.ndarray, iou: np.ndarray,
              same: np.ndarray) -> list[np.ndarray]:
    """The pairs ``linear_sum_assignment`` takes in each image whose candidate pairs share
    a box (``n_p`` x ``n_g`` pairs from ``starts``), weighted in tiers: right-class pairs,
    then pairs, then IoU."""
    from scipy.optimize import linear_sum_assignment

    chosen = []
    for rows, cols, start in zip(n_p.tolist(), n_g.tolist(), starts.tolist()):  # the image's block of pairs
        blk = slice(start, start + rows * cols)
        ok = edge[blk].reshape(rows, cols)
        base = min(rows, cols) + 2.0
        w = np.where(ok, iou[blk].reshape(rows, cols) + base + base**2 * same[blk].reshape(rows, cols), 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        keep = ok[r, c]
        chosen.append(start + r[keep] * cols + c[keep])
    return chosen


def match_image(
    pred: Detections, gt: Detections, iou_accept: float = IOU_ACCEPT, iou_min: float = IOU_MIN, relabel: bool = True
) -> ImageMatch:
    """Pair one image's predictions with its ground truth and name the edit for each box.

    ``pred`` and ``gt`` class ids must index the same class names (see
    :func:`align_classes`); ``gt.iscrowd`` marks crowd regions. Filter ``pred`` by
    confidence first (``pred.filter(conf)``). ``relabel=False`` pairs boxes of the same
    class only (as COCO evaluation does): a wrong-class box is then a delete.
    """
    check_ious(iou_accept, iou_min)
    if pred.class_names and gt.class_names and pred.class_names != gt.class_names:
        raise ValueError("predictions and ground truth use different class names; align them with align_classes()")
    p, g = _Boxes.of([pred], "predictions", False), _Boxes.of([gt], "ground truth", True)
    code, pred_gt, pred_iou, gt_matched = _match(p, g, 1, iou_accept, iou_min, relabel)
    n = np.bincount(code, minlength=IGNORE + 1)
    n[DRAW] = int((~gt_matched & ~g.crowd).sum())
    return ImageMatch(_PRED_EDITS[code], pred_gt, pred_iou, gt_matched, dict(zip(EDIT_KINDS, map(int, n))))


@dataclass(eq=False)
class Matching:
    """Every image's predictions matched to its ground truth, at one pre-label threshold.

    Boxes of all images are concatenated image after image, images in the ground
    truth's order. Per prediction (P,) with ``score >= conf``: ``pred_image`` (image
    position), ``pred_box`` (index in ``pred[image]``), ``pred_score``, ``pred_cls``
    (ground-truth class index), ``pred_edit`` (code into :data:`EDIT_CODES`),
    ``pred_gt`` (paired ground-truth row, the crowd region for ``ignore``, or -1) and
    ``pred_iou`` (IoU with it; intersection over the prediction's area for ``ignore``).
    Per ground-truth box (G,): ``gt_image``, ``gt_cls``, ``gt_crowd``, ``gt_matched``.

    ``pred`` holds the predictions aligned to the ground truth (class names, image
    order, all scores); ``gt`` the ground truth.
    """

    pred: Results
    gt: Results
    conf: float | None
    iou_accept: float
    iou_min: float
    relabel: bool
    pred_image: np.ndarray
    pred_box: np.ndarray
    pred_score: np.ndarray
    pred_cls: np.ndarray
    pred_edit: np.ndarray
    pred_gt: np.ndarray
    pred_iou: np.ndarray
    gt_image: np.ndarray
    gt_cls: np.ndarray
    gt_crowd: np.ndarray
    gt_matched: np.ndarray

    @property
    def images(self) -> tuple[str, ...]:
        """The join key of every image (``ImageInfo.file_name``), in order."""
        return tuple(d.image.file_name for d in self.gt)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.gt.class_names

    def __len__(self) -> int:
        return len(self.gt)

    @property
    def gt_drawn(self) -> np.ndarray:
        """(G,) bool: objects no prediction found (they must be drawn)."""
        return ~self.gt_matched & ~self.gt_crowd

    @property
    def image_counts(self) -> np.ndarray:
        """(images, 6) int64 counts of each of :data:`EDIT_KINDS` per image."""
        n = len(self.gt)
        edit = self.pred_edit != IGNORE
        keys = np.concatenate([self.pred_image[edit] * len(EDIT_KINDS) + self.pred_edit[edit],
                               self.gt_image[self.gt_drawn] * len(EDIT_KINDS) + DRAW])
        return np.bincount(keys, minlength=n * len(EDIT_KINDS)).reshape(n, len(EDIT_KINDS))

    @property
    def ignored(self) -> np.ndarray:
        """(images,) int64: predictions ignored on crowd regions."""
        return np.bincount(self.pred_image[self.pred_edit == IGNORE], minlength=len(self.gt))

    @property
    def needs_edit(self) -> np.ndarray:
        """(images,) bool: any edit other than ``accept``."""
        return self.image_counts[:, 1:].sum(1) > 0

    def class_counts(self) -> np.ndarray:
        """(images, classes, 6) int64 edit counts; a paired edit counts under the
        ground-truth class, a delete under the predicted class."""
        n_img, n_cls, n_k = len(self.gt), len(self.gt.class_names), len(EDIT_KINDS)
        edit = self.pred_edit != IGNORE
        cls = self.pred_cls.copy()
        paired = self.pred_gt >= 0
        cls[paired] = self.gt_cls[self.pred_gt[paired]]
        drawn = self.gt_drawn
        keys = np.concatenate([
            (self.pred_image * n_cls + cls)[edit] * n_k + self.pred_edit[edit],
            (self.gt_image * n_cls + self.gt_cls)[drawn] * n_k + DRAW,
        ])
        return np.bincount(keys, minlength=n_img * n_cls * n_k).reshape(n_img, n_cls, n_k)

    def image(self, i: int) -> ImageMatch:
        """The matching of image ``i`` (indices local to that image)."""
        p = self.pred_image == i
        g0 = int(np.searchsorted(self.gt_image, i))
        g = self.gt_image == i
        local_gt = np.where(self.pred_gt[p] >= 0, self.pred_gt[p] - g0, -1)
        return ImageMatch(_PRED_EDITS[self.pred_edit[p]], local_gt, self.pred_iou[p], self.gt_matched[g],
                          dict(zip(EDIT_KINDS, map(int, self.image_counts[i]))))

    def to_pandas(self) -> Any:
        """One row per matched prediction: ``image``, ``file_name``, ``box``, ``label``,
        ``score``, ``edit``, ``gt`` (row in the ground truth, -1 none), ``iou``."""
        import pandas as pd

        names = np.array(self.images, dtype=object)
        labels = np.array(self.gt.class_names, dtype=object)
        return pd.DataFrame({
            "image": self.pred_image, "file_name": names[self.pred_image] if len(names) else [],
            "box": self.pred_box, "label": labels[self.pred_cls] if len(labels) else [],
            "score": self.pred_score, "edit": _PRED_EDITS[self.pred_edit], "gt": self.pred_gt, "iou": self.pred_iou,
        })

    def __repr__(self) -> str:
        c = self.image_counts.sum(0)
        kinds = ", ".join(f"{k} {int(v)}" for k, v in zip(EDIT_KINDS, c))
        return (f"Matching({len(self.gt)} images, {len(self.pred_score)} predictions >= {self.conf}, "
                f"{len(self.gt_cls)} ground-truth boxes; {kinds})")


def match_sweep(
    pred: Results,
    gt: Results,
    thresholds: Sequence[float | None],
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    relabel: bool = True,
    min_gt_area: float = 0.0,
) -> list[Matching]:
    """:func:`match` at each pre-label threshold, aligning and checking the boxes once.

    Args:
        pred: predictions (any class names the ground truth also has; any image order).
        gt: ground truth; ``Detections.iscrowd`` marks crowd regions.
        thresholds: pre-label score thresholds (``None``: every prediction).
        iou_accept: IoU from which a right-class box needs no edit.
        iou_min: IoU from which a box counts as finding an object.
        relabel: pair wrong-class boxes (``False``: COCO evaluation's same-class pairs).
        min_gt_area: ground-truth boxes with a smaller area (pixels²) become don't-care
            regions, as labeling specs that skip tiny objects treat them: like crowd regions,
            never drawn, and a prediction on one (intersection over its area >= iou_min)
            counts neither way. 0 (default): every box counts.

    Returns:
        One :class:`Matching` per threshold (``gt_crowd`` includes the don't-care boxes).

    Raises:
        ValueError: images or classes that do not line up, a non-finite or inverted box,
            or ``not 0 < iou_min <= iou_accept <= 1``.
    """
    check_ious(iou_accept, iou_min)
    pred, gt = align_classes(pred, gt)
    p = _Boxes.of(pred.detections, "predictions", False)
    g = _Boxes.of(gt.detections, "ground truth", True)
    if min_gt_area < 0:
        raise ValueError(f"min_gt_area must be >= 0, got {min_gt_area}")
    if min_gt_area > 0:
        g.crowd = g.crowd | (box_area(g.xyxy) < min_gt_area)
    box = np.concatenate([np.arange(len(d)) for d in pred]) if len(pred) else np.zeros(0, np.int64)
    out = []
    for t in thresholds:
        keep: np.ndarray = np.ones(len(p.cls), bool) if t is None else np.asarray(p.score >= t)
        q = p[keep]
        code, pred_gt, pred_iou, gt_matched = _match(q, g, len(gt), iou_accept, iou_min, relabel)
        out.append(Matching(
            pred, gt, t, iou_accept, iou_min, relabel, q.img, box[keep].astype(np.int64), q.score, q.cls,
            code, pred_gt, pred_iou, g.img, g.cls, g.crowd, gt_matched,
        ))
    return out


def match(
    pred: Results,
    gt: Results,
    conf: float | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    relabel: bool = True,
    min_gt_area: float = 0.0,
) -> Matching:
    """Match the pre-labels (``score >= conf``) of every image to its ground truth.

    Args and Raises as :func:`match_sweep`, with one threshold ``conf``.

    Returns:
        The :class:`Matching`.
    """
    return match_sweep(pred, gt, [conf], iou_accept, iou_min, relabel, min_gt_area)[0]
