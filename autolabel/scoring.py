"""Uncertainty scores for pre-labels, and the calibration that turns them into probabilities.

**Per box** (:func:`box_table`): the detector ``score``; ``entropy`` and ``margin`` of the
class-probability vector where the backend exposes one (``Detections.class_probs``;
NaN otherwise). YOLO heads give *independent* per-class sigmoid probabilities, so each row
is first normalised to sum to one (a categorical distribution over classes given that an
object is there); ``entropy`` is divided by ``log(C)`` (0 = certain, 1 = uniform) and
``margin`` is top-1 minus top-2 of the normalised row.

**Calibration**: a :class:`ClassCalibrator` maps a box feature (the detector score, or
score x agreement, see below) to a probability, with one isotonic (pool-adjacent-violators)
or Platt model per class that has at least ``min_class_boxes`` calibration boxes and a
global model for every other class (including classes never seen in calibration).
Calibration targets come from :func:`autolabel.savings.match_image` via
:func:`match_targets`: a box is **correct** when it has the right class and IoU >= 0.5
with a ground-truth box (edit ``accept`` or ``adjust``). :func:`detection_ece` measures
how far confidence is from precision (equal-width confidence bins).

**Optional signals** (more inference, off by default): :func:`tta_agreement` (stability of
each box under a horizontal flip and one rescale) and :func:`detector_agreement` (best
same-class IoU with the boxes of other detectors). Both give a per-box value in [0, 1]
that the routing policy can multiply into the box feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from autolabel.core import Detections, Results
from autolabel.boxes import best_same_class_iou

__all__ = [
    "class_entropy",
    "class_margin",
    "IsotonicCalibrator",
    "PlattCalibrator",
    "ClassCalibrator",
    "detection_ece",
    "reliability_table",
    "match_targets",
    "box_table",
    "tta_agreement",
    "detector_agreement",
]

Method = Literal["isotonic", "platt"]
_EPS = 1e-6


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


# -- one-dimensional calibrators ----------------------------------------------------------
@dataclass(frozen=True)
class IsotonicCalibrator:
    """Non-decreasing step map fitted by pool-adjacent-violators; linear between blocks,
    constant beyond the fitted range (as scikit-learn's ``IsotonicRegression``)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, target: np.ndarray) -> IsotonicCalibrator:
        x = np.asarray(x, np.float64)
        t = np.asarray(target, np.float64)
        from scipy.optimize import isotonic_regression  # pool adjacent violators

        ux, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        fit = isotonic_regression(np.bincount(inv, weights=t) / counts, weights=counts.astype(np.float64))
        first, last = fit.blocks[:-1], fit.blocks[1:] - 1
        kx = np.stack([ux[first], ux[last]], 1).reshape(-1)
        ky = np.repeat(fit.x[first], 2)
        keep = np.append(True, kx[1:] != kx[:-1])  # one-point blocks appear twice
        return cls(tuple(kx[keep].tolist()), tuple(ky[keep].tolist()))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(x, np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # overflow-free


@dataclass(frozen=True)
class PlattCalibrator:
    """``sigmoid(a * logit(x) + b)``, fitted by logistic regression with Platt's smoothed
    targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (finite even when all labels agree)."""

    a: float
    b: float

    @classmethod
    def fit(cls, x: np.ndarray, target: np.ndarray) -> PlattCalibrator:
        from scipy.optimize import minimize

        z = _logit(x)
        t = np.asarray(target, bool)
        npos, nneg = int(t.sum()), int((~t).sum())
        y = np.where(t, (npos + 1) / (npos + 2), 1 / (nneg + 2))

        def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
            s = ab[0] * z + ab[1]
            # log(1 + e^s) - y*s, stable
            f = np.logaddexp(0, s) - y * s
            g = _sigmoid(s) - y
            return float(f.sum()), np.array([(g * z).sum(), g.sum()])

        res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        return cls(float(res.x[0]), float(res.x[1]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self.a * _logit(x) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}


Calibrator = IsotonicCalibrator | PlattCalibrator


def _calibrator_from_dict(d: Mapping[str, Any]) -> Calibrator:
    if d.get("method") == "isotonic":
        return IsotonicCalibrator(tuple(d["x"]), tuple(d["y"]))
    if d.get("method") == "platt":
        return PlattCalibrator(float(d["a"]), float(d["b"]))
    raise ValueError(f"unknown calibrator {d.get('method')!r}; expected 'isotonic' or 'platt'")


@dataclass(frozen=True)
class ClassCalibrator:
    """Per-class calibrators with a global fallback.

    ``per_class`` holds a model for each class with at least ``min_class_boxes``
    calibration boxes; every other class (few or no examples, or a class first seen at
    prediction time) uses ``global_``. ``counts`` records the calibration boxes per class.
    """

    global_: Calibrator
    per_class: Mapping[str, Calibrator]
    counts: Mapping[str, int]

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        target: np.ndarray,
        labels: Sequence[str],
        method: Method = "isotonic",
        min_class_boxes: int = 30,
        what: str = "boxes",
    ) -> ClassCalibrator:
        """Fit on feature ``x`` (N,), boolean ``target`` (N,) and class name ``labels`` (N,).

        Raises ``ValueError`` when there is nothing to fit (``what`` names the boxes in
        the message)."""
        x = np.asarray(x, np.float64)
        target = np.asarray(target, bool)
        labels = np.asarray(labels, dtype=object)
        if not len(x):
            raise ValueError(f"no calibration {what}: cannot fit a calibrator on an empty set")
        fit = IsotonicCalibrator.fit if method == "isotonic" else PlattCalibrator.fit
        names, counts = np.unique(labels, return_counts=True)
        per = {
            str(n): fit(x[labels == n], target[labels == n])
            for n, c in zip(names, counts)
            if c >= min_class_boxes
        }
        return cls(fit(x, target), per, {str(n): int(c) for n, c in zip(names, counts)})

    def __call__(self, x: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        x = np.asarray(x, np.float64)
        labels = np.asarray(labels, dtype=object)
        out = self.global_(x)
        for name, cal in self.per_class.items():
            m = labels == name
            if m.any():
                out[m] = cal(x[m])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "global": self.global_.to_dict(),
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassCalibrator:
        return cls(
            _calibrator_from_dict(d["global"]),
            {k: _calibrator_from_dict(v) for k, v in d["per_class"].items()},
            dict(d.get("counts", {})),
        )


# -- calibration error -----------------------------------------------------------------------
def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10):  # type: ignore[no-untyped-def]
    """Boxes binned by confidence (equal-width bins on [0, 1]): per bin the count, the
    mean confidence and the precision (fraction of boxes correct). A pandas DataFrame."""
    import pandas as pd

    c = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    b = np.clip((c * n_bins).astype(int), 0, n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(b, weights=c, minlength=n_bins) / n
        prec = np.bincount(b, weights=ok.astype(float), minlength=n_bins) / n
    edges = np.linspace(0, 1, n_bins + 1)
    return pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "n": n, "mean_confidence": conf, "precision": prec})


def detection_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Detection expected calibration error: ``sum_b n_b / N * |mean confidence_b -
    precision_b|`` over equal-width confidence bins. NaN for no boxes."""
    t = reliability_table(confidence, correct, n_bins)
    t = t[t.n > 0]
    if not len(t):
        return float("nan")
    return float((t.n * (t.mean_confidence - t.precision).abs()).sum() / t.n.sum())


# -- per-box table and calibration targets ------------------------------------------------------
def box_table(
    results: Results, prelabel_conf: float = 0.0, agreement: Sequence[np.ndarray] | None = None
):  # type: ignore[no-untyped-def]
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


def match_targets(
    predictions: Results,
    ground_truth: Results,
    prelabel_conf: float = 0.0,
    iou_accept: float = 0.7,
    iou_min: float = 0.5,
    agreement: Sequence[np.ndarray] | None = None,
    evidence_conf: float = 0.0,
):  # type: ignore[no-untyped-def]
    """Label every predicted box and image against ground truth, for calibration.

    Images are paired by file name and put in the ground truth's order
    (:func:`autolabel.savings.align_classes`; both sides must hold the same images). Pre-labels
    (``score >= prelabel_conf``) are matched to the ground truth with
    :func:`autolabel.savings.match_image`; each gets its ``edit`` and the targets
    ``located`` (IoU >= ``iou_min`` with an object, any class), ``correct`` (right class
    too: edit accept or adjust) and ``exact`` (no edit: accept, IoU >= ``iou_accept``).
    Boxes below ``prelabel_conf`` (and at least ``evidence_conf``; lower ones are left
    out) are matched to the objects no pre-label found; ``found`` marks those that found
    one (evidence of a missed object). Pre-labels
    matching a crowd region get edit ``ignore`` and no targets (NaN).

    Returns ``(boxes, images)``: :func:`box_table` plus those columns, and one row per
    image with ``n_gt`` (non-crowd objects), a column per edit kind (counts of the
    pre-labels' edits, ``draw`` = objects no pre-label found) and ``needs_edit`` (any
    count other than ``accept`` above zero).
    """
    import pandas as pd

    from autolabel.matching import EDIT_KINDS, align_classes, match_image

    pred, gt = align_classes(predictions, ground_truth)
    # features from the predictions as given (align_classes may drop class_probs), in GT order
    boxes = box_table(predictions, prelabel_conf, agreement)
    position = {d.image.file_name: i for i, d in enumerate(pred)}  # type: ignore[union-attr]
    boxes["image"] = boxes["file_name"].map(position).to_numpy()
    boxes = boxes[boxes["score"] >= evidence_conf].sort_values(["image", "box"], kind="stable").reset_index(drop=True)
    edit = np.full(len(boxes), "", dtype=object)
    found = np.zeros(len(boxes), bool)
    rows = []
    start = 0
    for d, g in zip(pred, gt):
        d = d[d.scores >= evidence_conf]
        pre = d.scores >= prelabel_conf
        idx = start + np.arange(len(d))
        start += len(d)
        m = match_image(d[pre], g, iou_accept=iou_accept, iou_min=iou_min)
        edit[idx[pre]] = m.pred_edit
        rest = ~pre
        if rest.any():
            unfound = g[~m.gt_matched]
            found[idx[rest]] = np.isin(match_image(d[rest], unfound, iou_accept, iou_min).pred_edit, _FOUND)
        rows.append({"file_name": d.image.file_name, "n_gt": int((~g.crowd).sum()), **{k: m.counts[k] for k in EDIT_KINDS}})
    images = pd.DataFrame(rows, columns=["file_name", "n_gt", *EDIT_KINDS])
    images.insert(0, "image", np.arange(len(images)))
    images["needs_edit"] = images[[k for k in EDIT_KINDS if k != "accept"]].sum(axis=1) > 0
    scored = np.isin(edit, ("", "ignore"), invert=True)
    for name, kinds in (("located", _FOUND), ("correct", ("accept", "adjust")), ("exact", ("accept",))):
        boxes[name] = np.where(scored, np.isin(edit, kinds), np.nan)
    boxes["edit"] = edit
    boxes["found"] = found
    return boxes, images


_FOUND = ("accept", "adjust", "relabel", "adjust_relabel")


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
