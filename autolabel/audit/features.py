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

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from autolabel.boxes import batched_nms, box_area, box_iou
from autolabel.config import IOU_ACCEPT
from autolabel.core import Detections, Results
from autolabel.matching import ACCEPT, ADJUST, DELETE, IGNORE, Matching, align_classes, match, match_sweep
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
# NMS of the missing-box clusters: suppressed at IoU >= 0.5. batched_nms suppresses at IoU
# > its threshold (a float32 in OpenCV), so the threshold is the float32 just below 0.5.
_NMS_BELOW_HALF = float(np.nextafter(np.float32(0.5), np.float32(0.0)))


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
    missing_conf: float = 0.01,
    evidence_conf: float = 0.001,
    iou_accept: float = IOU_ACCEPT,
    calibrator: ClassCalibrator | None = None,
) -> Any:
    """Every candidate error with its kind, location and evidence.

    Args:
        pred: model predictions (all scores down to ``missing_conf`` or lower).
        labels: the human labels (COCO ``iscrowd`` regions are never suspects).
        conf: a prediction at least this confident is evidence (loose, wrong class).
        missing_conf: predictions from here on that no label pairs with are missing-candidates.
        evidence_conf: predictions from here on are evidence for or against a label.
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
    hi, lo = match_sweep(pred, labels, [conf, missing_conf], iou_accept=iou_accept, iou_min=LOOSE_IOU, relabel=True)
    n_labels_all = np.bincount(hi.gt_cls[~hi.gt_crowd], minlength=len(names)).astype(np.float64)
    ds = _Dataset(names, n_labels_all / max(n_labels_all.sum(), 1), conf, iou_accept,
                  _paired(hi, len(hi.gt_cls)), _paired(lo, len(lo.gt_cls)), hi, lo)
    g_start = np.searchsorted(hi.gt_image, np.arange(len(labels)))
    rows: list[dict[str, Any]] = []
    for i, (p, g) in enumerate(zip(pred, labels)):
        pcf = cal(p.scores, names[p.class_ids]) if len(p) else np.zeros(0)
        img = _Image(i, g, p, pcf, evidence_conf, conf, int(g_start[i]))
        rows += _label_candidates(img, ds)
        rows += _missing_candidates(img, ds)
    cols = ["image", "file_name", "kind", "x1", "y1", "x2", "y2", "category", "suggested", "label", "pred",
            "label_x1", "label_y1", "label_x2", "label_y2", *FEATURES]
    return pd.DataFrame(rows, columns=cols)


def _paired(m: Matching, n_gt: int) -> np.ndarray:
    """Per label (row of the matching's ground truth), its paired prediction's index in
    the matching's prediction arrays, -1 for none."""
    out = np.full(n_gt, -1, np.int64)
    k = np.flatnonzero(m.pred_gt >= 0)
    out[m.pred_gt[k][::-1]] = k[::-1]  # the first pairing wins, as a scan in order would find it
    return out


@dataclass(frozen=True)
class _Dataset:
    """What every image's candidates read: class names and frequencies, the thresholds,
    the two matchings and each label's pairing in them."""

    names: np.ndarray
    freq: np.ndarray
    conf: float
    iou_accept: float
    hi_pair: np.ndarray
    lo_pair: np.ndarray
    hi: Matching
    lo: Matching


class _Image:
    """One image: its labels ``g``, all predictions ``p_all`` (calibrated ``pcf``), the
    evidence ones ``p`` (``pc``, scores >= ``evidence_conf``), and the label x prediction
    evidence, for every label at once."""

    def __init__(self, i: int, g: Detections, p_all: Detections, pcf: np.ndarray, evidence_conf: float,
                 conf: float, g_start: int):
        self.i, self.g, self.p_all, self.pcf, self.g_start = i, g, p_all, pcf, g_start
        info = g.image
        self.file_name = info.file_name if info else str(i)
        self.area = float(info.width * info.height) if info and info.width else 1.0
        keep = p_all.scores >= evidence_conf
        self.p, self.pc = p_all[keep], pcf[keep]
        self.u = box_iou(g.xyxy, self.p.xyxy)
        self.same = g.class_ids[:, None] == self.p.class_ids[None, :]
        self.crowd = g.crowd
        self.n_lab, self.n_conf = int((~self.crowd).sum()), int((self.p.scores >= conf).sum())
        self.gl = box_iou(g.xyxy, g.xyxy)
        np.fill_diagonal(self.gl, 0)

    def label_features(self, iou_accept: float) -> dict[str, np.ndarray]:
        """The evidence columns of every label, (G,) each."""
        g, p, pc, u, same = self.g, self.p, self.pc, self.u, self.same
        same_cls = g.class_ids[:, None] == g.class_ids[None, :]
        several = len(g) > 1
        return dict(
            same50=_masked_max(pc[None], same & (u >= 0.5), 1),
            same30=_masked_max(pc[None], same & (u >= LOOSE_IOU), 1),
            same70=_masked_max(pc[None], same & (u >= iou_accept), 1),
            other50=_masked_max(pc[None], ~same & (u >= 0.5), 1),
            any10_raw=_masked_max(p.scores[None], u >= 0.1, 1),
            in_crowd=np.zeros(len(g)),
            dup_iou=np.where(same_cls, self.gl, 0).max(1) if several else np.zeros(len(g)),
            label_iou=self.gl.max(1) if several else np.zeros(len(g)),
            **_contexts(g.class_ids, g, p, pc, u, self.crowd, exclude=np.arange(len(g))),
        )


def _label_candidates(img: _Image, ds: _Dataset) -> list[dict[str, Any]]:
    """One candidate per label (its most likely kind), crowd regions left out."""
    g, feats = img.g, img.label_features(ds.iou_accept)
    same_cls = g.class_ids[:, None] == g.class_ids[None, :]
    first_dup = np.argmax(np.where(same_cls, img.gl, 0), 1) if len(g) else np.zeros(0, np.int64)
    rows = []
    for j in np.flatnonzero(~img.crowd).tolist():
        f = {k: float(v[j]) for k, v in feats.items()}
        kind, box, sugg, pj, score, c, piou = _paired_kind(img, ds, j)
        fit = np.flatnonzero(img.same[j] & (img.u[j] >= LOOSE_IOU))
        if kind in ("spurious", "loose", "ok") and len(fit):
            best = fit[np.argmax(img.pc[fit])]  # the model's most confident view of this object
            if img.u[j, best] < ds.iou_accept and img.pc[best] > f["same70"]:
                kind, box = "loose", (g.xyxy[j].astype(np.float64) + img.p.xyxy[best]) / 2
                score, c, piou = float(img.p.scores[best]), float(img.pc[best]), float(img.u[j, best])
        if f["dup_iou"] >= DUP_IOU and j > int(first_dup[j]):
            kind = "duplicate"
        if kind == "ok" and f["dup_iou"] < DUP_IOU:
            kind = "loose" if f["same70"] < 0.5 * f["same30"] else "spurious"  # let the ranker weigh it
        pick = _Pick(kind, box, ds.names[g.class_ids[j]], sugg, j, pj, g.xyxy[j], score, c, piou)
        rows.append(_row(img, pick, f, ds.freq[g.class_ids[j]]))
    return rows


def _paired_kind(img: _Image, ds: _Dataset, j: int) -> tuple[str, np.ndarray, str, int, float, float, float]:
    """Label ``j`` read from its pairing: kind, location, suggested class, prediction
    index, its score, calibrated score and IoU (``spurious`` when nothing pairs)."""
    g, p, names = img.g, img.p_all, ds.names
    row = img.g_start + j
    kind, box, sugg, pj, score, c, piou = "spurious", g.xyxy[j].astype(np.float64), names[g.class_ids[j]], -1, 0.0, 0.0, 0.0
    k, kl = ds.hi_pair[row], ds.lo_pair[row]
    if k >= 0:
        pj = int(ds.hi.pred_box[k])
        pb, piou = p.xyxy[pj].astype(np.float64), float(ds.hi.pred_iou[k])
        score, c = float(p.scores[pj]), float(img.pcf[pj])
        if p.class_ids[pj] != g.class_ids[j]:
            kind, sugg = "wrong_class", names[p.class_ids[pj]]
        elif piou < ds.iou_accept:
            kind, box = "loose", (box + pb) / 2
        else:
            kind = "ok"
    elif kl >= 0:
        pj = int(ds.lo.pred_box[kl])
        score, piou, c = float(p.scores[pj]), float(ds.lo.pred_iou[kl]), float(img.pcf[pj])
        if p.class_ids[pj] != g.class_ids[j] and piou >= 0.5:
            kind, sugg = "wrong_class", names[p.class_ids[pj]]
    return kind, box, sugg, pj, score, c, piou


def _missing_candidates(img: _Image, ds: _Dataset) -> list[dict[str, Any]]:
    """One candidate per cluster of low-threshold predictions no label pairs with, on a
    crowd region too (``in_crowd``: the matching's IoA with it); the clusters:
    class-agnostic greedy NMS by score, suppressed at IoU >= 0.5."""
    lo, p, g = ds.lo, img.p_all, img.g
    sel = (lo.pred_image == img.i) & np.isin(lo.pred_edit, (DELETE, IGNORE))  # IGNORE: on a crowd region
    if not sel.any():
        return []
    order = np.argsort(-p.scores[lo.pred_box[sel]], kind="stable")
    bj = lo.pred_box[sel][order]
    in_crowd = np.where(lo.pred_edit[sel] == IGNORE, lo.pred_iou[sel], 0.0)[order]
    pb = p.xyxy[bj]
    kept = np.sort(batched_nms(pb, p.scores[bj], np.zeros(len(bj), np.int64), _NMS_BELOW_HALF, len(bj)))
    labeled = ~img.crowd
    lab_iou = box_iou(pb, g.xyxy[labeled]) if img.n_lab else np.zeros((len(bj), 0))
    lab_same = p.class_ids[bj][:, None] == g.class_ids[labeled][None, :]
    ctx = _contexts(p.class_ids[bj], g, img.p, img.pc, box_iou(pb, img.p.xyxy), img.crowd)
    rows = []
    for r in kept.tolist():
        b = int(bj[r])
        s, c, cname = float(p.scores[b]), float(img.pcf[b]), ds.names[p.class_ids[b]]
        f = dict(same50=c, same30=c, same70=c, other50=0.0, any10_raw=s, in_crowd=float(in_crowd[r]),
                 dup_iou=float(_masked_max(lab_iou[r:r + 1], lab_same[r:r + 1], 1)[0]) if img.n_lab else 0.0,
                 label_iou=float(lab_iou[r].max()) if img.n_lab else 0.0, **{k: float(v[r]) for k, v in ctx.items()})
        pick = _Pick("missing", p.xyxy[b].astype(np.float64), cname, cname, -1, b, np.full(4, np.nan), s, c, 0.0)
        rows.append(_row(img, pick, f, ds.freq[p.class_ids[b]], rank=float(r)))
    return rows


def _contexts(cls: np.ndarray, g: Any, p: Any, pc: np.ndarray, u: np.ndarray, crowd: np.ndarray,
              exclude: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per spot (class ``cls[k]``, IoUs ``u[k]`` with the predictions): is the class
    plausible here (other labels of the class in the image, the best calibrated
    prediction of the class anywhere in it); how object-like the spot is (predictions of
    any class at IoU >= 0.5, the best IoU of any prediction, and ``cluster_or``:
    1 - prod(1 - p) over the calibrated predictions at IoU >= 0.5: a cluster of weak
    boxes on one spot is evidence of an object none of them proves). ``exclude[k]``: a
    label not to count for spot ``k`` (itself)."""
    same_lab = (g.class_ids[None, :] == cls[:, None]) & ~crowd[None, :]
    if exclude is not None:
        same_lab[np.arange(len(cls)), exclude] = False
    near = u >= 0.5
    return dict(class_labels=same_lab.sum(1).astype(np.float64),
                class_pred=_masked_max(pc[None], p.class_ids[None, :] == cls[:, None], 1),
                n_overlap=near.sum(1).astype(np.float64),
                any_iou=u.max(1) if u.shape[1] else np.zeros(len(cls)),
                cluster_or=1 - np.prod(np.where(near, 1 - pc[None, :], 1.0), axis=1))


class _Pick(NamedTuple):
    """A candidate: its kind and location, the label's class and the one the model sees,
    the label and prediction indices (-1: none), the label's box, and the prediction's
    score, calibrated score and IoU with the label."""

    kind: str
    box: np.ndarray
    category: str
    suggested: str
    label: int
    pred: int
    label_box: np.ndarray
    score: float
    cal: float
    pair_iou: float


def _row(img: _Image, pick: _Pick, f: dict[str, float], class_freq: float, rank: float = -1.0) -> dict[str, Any]:
    box, lb = pick.box, pick.label_box
    w, h = max(box[2] - box[0], 1e-3), max(box[3] - box[1], 1e-3)
    out: dict[str, Any] = {
        "image": img.i, "file_name": img.file_name, "kind": pick.kind,
        "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3], "category": pick.category,
        "suggested": pick.suggested, "label": pick.label, "pred": pick.pred, "label_x1": lb[0], "label_y1": lb[1],
        "label_x2": lb[2], "label_y2": lb[3],
    }
    out.update({f"is_{k}": float(pick.kind == k) for k in KINDS})
    out.update(score=pick.score, cal=pick.cal, pair_iou=pick.pair_iou, **f,
               log_area=float(np.log(box_area(box[None])[0] / img.area + 1e-9)),
               log_aspect=float(np.log(w / h)), n_labels=float(img.n_lab), n_confident=float(img.n_conf),
               class_freq=float(class_freq), rank=rank)
    return out
