"""Candidate label errors and the evidence for each, read from one :class:`Matching`.

The human labels play the ground truth and the model's predictions the pre-labels:
:func:`autolabel.matching.match_sweep` pairs them once at a *confident* threshold and
once at a *low* one (``iou_min`` 0.3, wrong-class pairs allowed). From its edits:

- a label whose most confident same-class prediction (IoU >= 0.3, at any threshold)
  fits it at IoU < ``iou_accept`` and beats every tight one is a *loose* box (read with
  the box kernels from the low-threshold evidence; the matched pair when confident); the
  location is the midpoint of the label and that prediction (the box nearest both the
  label as drawn and the object as the model sees it);
- a confident prediction of another class paired to a label makes it *wrong_class*;
- a label no prediction pairs with, even at the low threshold, is *spurious*;
- a low-threshold prediction paired with no label is *missing* (predictions on the
  same spot are merged: class-agnostic NMS at IoU 0.5), on a crowd region too
  (``in_crowd``: its IoA with the region; the ranker learns how rarely that is an error);
- two labels of one class at IoU >= 0.8 make the second a *duplicate*.

Every label gets one candidate (its most likely kind), every unpaired prediction
cluster one; the ranker (:mod:`autolabel.audit.ranker`) scores them from the evidence
columns of :data:`FEATURES`: the best calibrated confidence (routing's
:class:`~autolabel.routing.calibrators.ClassCalibrator`: P(box correct | score, class)) of
same-class and other-class predictions at several IoUs, the IoUs, box size, image
crowding and class frequency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autolabel.boxes import box_area, box_iou
from autolabel.config import IOU_ACCEPT
from autolabel.core import Results
from autolabel.matching import ACCEPT, ADJUST, DELETE, IGNORE, align_classes, match, match_sweep
from autolabel.routing.calibrators import ClassCalibrator

__all__ = ["KINDS", "FEATURES", "candidates", "box_calibrator"]

KINDS = ("missing", "spurious", "wrong_class", "loose", "duplicate")
FEATURES = (
    "is_missing", "is_spurious", "is_wrong_class", "is_loose", "is_duplicate",
    "score", "cal", "pair_iou", "same50", "same30", "same70", "other50", "any10_raw",
    "dup_iou", "label_iou", "log_area", "log_aspect", "n_labels", "n_confident", "class_freq", "rank",
    "class_labels", "class_pred", "n_overlap", "any_iou", "cluster_or", "in_crowd",
)
LOOSE_IOU = 0.3  # the low end of a loose box (the spec's [0.3, tau))
DUP_IOU = 0.8


def box_calibrator(pred: Results, labels: Results) -> ClassCalibrator:
    """Routing's box calibration fitted on the labels being audited: P(prediction right
    class at IoU >= 0.5 | score, class), isotonic per class."""
    m = match(pred, labels, conf=None, relabel=False)
    ok = np.isin(m.pred_edit, (ACCEPT, ADJUST))
    keep = m.pred_edit != IGNORE
    names = np.asarray(labels.class_names, dtype=object)
    return ClassCalibrator.fit(m.pred_score[keep], ok[keep], names[m.pred_cls[keep]], what="predictions")


def _masked_max(values: np.ndarray, mask: np.ndarray, axis: int) -> np.ndarray:
    if mask.shape[axis] == 0:
        return np.zeros(mask.shape[1 - axis])
    return np.where(mask, values, 0.0).max(axis=axis)


def candidates(
    pred: Results,
    labels: Results,
    conf: float = 0.25,
    low_conf: float = 0.01,
    support_conf: float = 0.001,
    iou_accept: float = IOU_ACCEPT,
    calibrator: ClassCalibrator | None = None,
) -> Any:
    """Every candidate error with its kind, location and evidence.

    Args:
        pred: model predictions (all scores down to ``low_conf`` or lower).
        labels: the human labels (COCO ``iscrowd`` regions are never suspects).
        conf: a prediction at least this confident is evidence (loose, wrong class).
        low_conf: predictions from here on that no label pairs with are missing-candidates.
        support_conf: predictions from here on are evidence for or against a label.
        iou_accept: tau, the IoU from which a label fits the object.
        calibrator: P(correct | score, class); default :func:`box_calibrator`.

    Returns:
        A DataFrame, one row per candidate: ``image``, ``file_name``, ``kind``,
        ``x1, y1, x2, y2`` (location, pixels), ``category`` (the label's class; the
        prediction's for missing), ``suggested`` (the class the model sees),
        ``label`` / ``pred`` (box index in its image, -1 none), ``label_x1..y2``
        and the :data:`FEATURES` columns.
    """
    import pandas as pd

    pred, labels = align_classes(pred, labels)
    cal = calibrator or box_calibrator(pred, labels)
    names = np.asarray(labels.class_names, dtype=object)
    hi, lo = match_sweep(pred, labels, [conf, low_conf], iou_accept=iou_accept, iou_min=LOOSE_IOU, relabel=True)
    n_labels_all = np.bincount(hi.gt_cls[~hi.gt_crowd], minlength=len(names)).astype(np.float64)
    freq = n_labels_all / max(n_labels_all.sum(), 1)
    g_start = np.searchsorted(hi.gt_image, np.arange(len(labels)))
    rows: list[dict[str, Any]] = []
    for i, (p, g) in enumerate(zip(pred, labels)):
        info = g.image
        area_img = float(info.width * info.height) if info and info.width else 1.0
        pcf = cal(p.scores, names[p.class_ids]) if len(p) else np.zeros(0)
        keep = p.scores >= support_conf
        p, pc = p[keep], pcf[keep]
        u = box_iou(g.xyxy, p.xyxy)
        same = g.class_ids[:, None] == p.class_ids[None, :]
        crowd = g.crowd
        n_lab = int((~crowd).sum())
        n_conf = int((p.scores >= conf).sum())
        gl = box_iou(g.xyxy, g.xyxy)
        np.fill_diagonal(gl, 0)
        # -- one candidate per label ----------------------------------------------------
        sel_hi = hi.pred_image == i
        for j in np.flatnonzero(~crowd):
            row = g_start[i] + j
            f = dict(
                same50=_masked_max(pc[None], same[j:j + 1] & (u[j:j + 1] >= 0.5), 1)[0],
                same30=_masked_max(pc[None], same[j:j + 1] & (u[j:j + 1] >= LOOSE_IOU), 1)[0],
                same70=_masked_max(pc[None], same[j:j + 1] & (u[j:j + 1] >= iou_accept), 1)[0],
                other50=_masked_max(pc[None], ~same[j:j + 1] & (u[j:j + 1] >= 0.5), 1)[0],
                any10_raw=_masked_max(p.scores[None], u[j:j + 1] >= 0.1, 1)[0], in_crowd=0.0,
                dup_iou=float(np.where(g.class_ids == g.class_ids[j], gl[j], 0).max()) if len(g) > 1 else 0.0,
                label_iou=float(gl[j].max()) if len(g) > 1 else 0.0,
                **_context(g.class_ids[j], g, p, pc, u[j], crowd, exclude=int(j)),
            )
            k = np.flatnonzero(sel_hi & (hi.pred_gt == row))
            kind, box, sugg, pj, score, c, piou = "spurious", g.xyxy[j].astype(np.float64), names[g.class_ids[j]], -1, 0.0, 0.0, 0.0
            if len(k):
                pj = int(hi.pred_box[k[0]])
                pb, piou = pred[i].xyxy[pj].astype(np.float64), float(hi.pred_iou[k[0]])
                score = float(pred[i].scores[pj])
                c = float(pcf[pj])
                if pred[i].class_ids[pj] != g.class_ids[j]:
                    kind, sugg = "wrong_class", names[pred[i].class_ids[pj]]
                elif piou < iou_accept:
                    kind, box = "loose", (box + pb) / 2
                else:
                    kind = "ok"
            elif lo.gt_matched[row]:
                kl = np.flatnonzero((lo.pred_image == i) & (lo.pred_gt == row))
                pj = int(lo.pred_box[kl[0]])
                score, piou = float(pred[i].scores[pj]), float(lo.pred_iou[kl[0]])
                c = float(pcf[pj])
                if pred[i].class_ids[pj] != g.class_ids[j] and piou >= 0.5:
                    kind, sugg = "wrong_class", names[pred[i].class_ids[pj]]
            fit = np.flatnonzero(same[j] & (u[j] >= LOOSE_IOU))
            if kind in ("spurious", "loose", "ok") and len(fit):
                best = fit[np.argmax(pc[fit])]  # the model's most confident view of this object
                if u[j, best] < iou_accept and pc[best] > f["same70"]:
                    kind, box = "loose", (g.xyxy[j].astype(np.float64) + p.xyxy[best]) / 2
                    score, c, piou = float(p.scores[best]), float(pc[best]), float(u[j, best])
            if f["dup_iou"] >= DUP_IOU and j > int(np.argmax(np.where(g.class_ids == g.class_ids[j], gl[j], 0))):
                kind = "duplicate"
            if kind == "ok" and f["dup_iou"] < DUP_IOU:
                kind = "loose" if f["same70"] < 0.5 * f["same30"] else "spurious"  # let the ranker weigh it
            rows.append(_row(i, info, kind, box, names[g.class_ids[j]], sugg, int(j), pj, g.xyxy[j], score, c, piou, f,
                             area_img, n_lab, n_conf, freq[g.class_ids[j]]))
        # -- one candidate per unpaired prediction cluster ---------------------------------
        sel = (lo.pred_image == i) & np.isin(lo.pred_edit, (DELETE, IGNORE))  # IGNORE: on a crowd region
        if sel.any():
            order = np.argsort(-pred[i].scores[lo.pred_box[sel]], kind="stable")
            bj = lo.pred_box[sel][order]
            in_crowd = np.where(lo.pred_edit[sel] == IGNORE, lo.pred_iou[sel], 0.0)[order]
            pb = pred[i].xyxy[bj]
            iou_pp = box_iou(pb, pb)
            alive = np.ones(len(bj), bool)
            lab_iou = box_iou(pb, g.xyxy[~crowd]) if n_lab else np.zeros((len(bj), 0))
            lab_same = (pred[i].class_ids[bj][:, None] == g.class_ids[~crowd][None, :])
            for r, b in enumerate(bj):
                if not alive[r]:
                    continue
                alive[r + 1:] &= iou_pp[r, r + 1:] < 0.5
                s = float(pred[i].scores[b])
                cname = names[pred[i].class_ids[b]]
                c = float(pcf[b])
                f = dict(same50=c, same30=c, same70=c, other50=0.0, any10_raw=s, in_crowd=float(in_crowd[r]),
                         dup_iou=float(_masked_max(lab_iou[r:r + 1], lab_same[r:r + 1], 1)[0]) if n_lab else 0.0,
                         label_iou=float(lab_iou[r].max()) if n_lab else 0.0,
                         **_context(pred[i].class_ids[b], g, p, pc, box_iou(pb[r:r + 1], p.xyxy)[0], crowd))
                rows.append(_row(i, info, "missing", pred[i].xyxy[b].astype(np.float64), cname, cname, -1, int(b),
                                 np.full(4, np.nan), s, c, 0.0, f, area_img, n_lab, n_conf, freq[pred[i].class_ids[b]],
                                 rank=float(r)))
    cols = ["image", "file_name", "kind", "x1", "y1", "x2", "y2", "category", "suggested", "label", "pred",
            "label_x1", "label_y1", "label_x2", "label_y2", *FEATURES]
    return pd.DataFrame(rows, columns=cols)


def _context(cls: int, g: Any, p: Any, pc: np.ndarray, u: np.ndarray, crowd: np.ndarray, exclude: int = -1) -> dict[str, float]:
    """Is the class plausible here: other labels of the class in the image, the best
    calibrated prediction of the class anywhere in it; how object-like the spot is:
    predictions (any class) at IoU >= 0.5, the best IoU of any prediction, and
    ``cluster_or``: 1 - prod(1 - p) over the calibrated predictions at IoU >= 0.5 (a
    cluster of weak boxes on one spot is evidence of an object none of them proves)."""
    same_lab = (g.class_ids == cls) & ~crowd
    if 0 <= exclude < len(same_lab):
        same_lab[exclude] = False
    of_cls = p.class_ids == cls
    return dict(class_labels=float(same_lab.sum()), class_pred=float(pc[of_cls].max()) if of_cls.any() else 0.0,
                n_overlap=float((u >= 0.5).sum()), any_iou=float(u.max()) if len(u) else 0.0,
                cluster_or=float(1 - np.prod(1 - pc[u >= 0.5])))


def _row(i: int, info: Any, kind: str, box: np.ndarray, category: str, suggested: str, label: int, pred: int,
         label_box: np.ndarray, score: float, cal: float, pair_iou: float, f: dict[str, float], area_img: float,
         n_lab: int, n_conf: int, class_freq: float, rank: float = -1.0) -> dict[str, Any]:
    w, h = max(box[2] - box[0], 1e-3), max(box[3] - box[1], 1e-3)
    out: dict[str, Any] = {
        "image": i, "file_name": info.file_name if info else str(i), "kind": kind,
        "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "category": category, "suggested": suggested,
        "label": label, "pred": pred, "label_x1": label_box[0], "label_y1": label_box[1],
        "label_x2": label_box[2], "label_y2": label_box[3],
    }
    out.update({f"is_{k}": float(kind == k) for k in KINDS})
    out.update(score=score, cal=cal, pair_iou=pair_iou, **f, log_area=float(np.log(box_area(box[None])[0] / area_img + 1e-9)),
               log_aspect=float(np.log(w / h)), n_labels=float(n_lab), n_confident=float(n_conf),
               class_freq=float(class_freq), rank=rank)
    return out
