"""Scoring candidate errors: a ranker learned from errors injected into copies of the
labels themselves, and an optional calibration on a reviewed reference.

**Self-supervised ranker** (:func:`fit_ranker`): the labels being audited are corrupted
a few times with :func:`~autolabel.audit.corrupt.corrupt_labels` (known answers); the
candidates of each corrupted copy are labelled by whether they find an injected error
(:func:`hits`), and one L2-regularised logistic regression per kind (scikit-learn,
:class:`KindLogit`) learns P(candidate is an error | evidence, kind): each kind's
probability is fitted on that kind's own candidates, so the scores of different kinds
are in the same units and one list ranks them all. A linear model on standardised
evidence, not gradient boosting: on held-back coco-person images boosted trees (300
rounds) learned the quirks of the training copies and ranked worse (box AP 0.44 against
0.64 with yolo11n-int8; ``benchmarks/reports/audit.md``); strong L2 (``C`` 0.01, chosen on
the benchmark's coco-person choice part) ranks best with all three models tried there. No outside labels are used; errors already in the labels are (wrongly) negatives, which
shrinks the probabilities but keeps their order. Scores are therefore *uncalibrated*. :func:`~autolabel.audit.audit`
fits it twice by default: the second time on copies of the labels with the first
ranker's suspects fixed (:func:`~autolabel.audit.core.cleaned_labels`), fewer of those
false negatives.

**Calibration** (:func:`calibrate`): given reviewed labels of some images, each of those
images' candidates is checked against the review (:func:`reference_truth`, through
:func:`autolabel.matching.match`) and routing's :class:`~autolabel.routing.calibrators.ClassCalibrator`
(isotonic, one model per kind with enough examples) maps the ranker's score to the
probability that the suspect is a real error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autolabel.boxes import box_iou
from autolabel.core import Results
from autolabel.matching import ACCEPT, align_classes, match
from autolabel.routing.calibrators import ClassCalibrator

from autolabel.audit.corrupt import Injected, corrupt_labels
from autolabel.audit.features import FEATURES, candidates

__all__ = ["Ranker", "KindLogit", "fit_ranker", "hits", "average_precision", "reference_truth", "calibrate", "rule_score"]

HIT_IOU = 0.5


def hits(cand: Any, injected: Injected, order: np.ndarray | None = None, either: bool = False) -> np.ndarray:
    """Which candidates find an injected error: same image, IoU >= 0.5 with its box (for
    a loose box, the original one; ``either``: or the shifted one), each error found
    once, candidates taken in ``order`` (default: as given). Returns (candidates,) bool."""
    order = np.arange(len(cand)) if order is None else np.asarray(order)
    out = np.zeros(len(cand), bool)
    if not len(cand) or not len(injected):
        return out
    img = cand["image"].to_numpy()
    box = cand[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    taken = np.zeros(len(injected), bool)
    rows: dict[int, list[int]] = {}
    for e, i in enumerate(injected.image):
        rows.setdefault(int(i), []).append(e)
    by_img = {i: np.asarray(e) for i, e in rows.items()}
    ious = {i: box_iou(box[img == i], injected.xyxy[e]) for i, e in by_img.items()}
    if either:
        ious = {i: np.maximum(v, box_iou(box[img == i], injected.alt[by_img[i]])) for i, v in ious.items()}
    local = np.zeros(len(cand), np.int64)
    for i in by_img:
        local[img == i] = np.arange(int((img == i).sum()))
    for c in order:
        i = int(img[c])
        if i not in by_img:
            continue
        members = by_img[i]
        u = np.where(taken[members], -1, ious[i][local[c]])
        k = int(np.argmax(u))
        if u[k] >= HIT_IOU:
            taken[members[k]], out[c] = True, True
    return out


def average_precision(found: np.ndarray, n_positive: int) -> float:
    """Average precision of a ranked list: mean over all ``n_positive`` targets of the
    precision at the rank each is found (0 for targets never found), as VOC's
    non-interpolated AP. ``found``: (K,) bool in rank order. Hand-written because
    scikit-learn's AP cannot count targets the list never reaches."""
    found = np.asarray(found, bool)
    if n_positive <= 0:
        return float("nan")
    prec = np.cumsum(found) / np.arange(1, len(found) + 1)
    return float(prec[found].sum() / n_positive)


def rule_score(cand: Any) -> np.ndarray:
    """The plain rule: the evidence's own confidence, per kind (missing: the
    prediction's calibrated score; wrong class / loose: the paired prediction's; spurious:
    one minus the best support; duplicate: the IoU)."""
    k = cand["kind"].to_numpy()
    return np.select(
        [k == "missing", k == "wrong_class", k == "loose", k == "spurious", k == "duplicate"],
        [cand["cal"], cand["cal"], cand["cal"] * (1 - cand["pair_iou"]), 1 - cand["any10_raw"], cand["dup_iou"]], 0.0,
    )


@dataclass
class KindLogit:
    """One logistic regression per candidate kind over standardised :data:`FEATURES`
    (scikit-learn ``StandardScaler`` + ``LogisticRegression``, L2 strength ``1 / C``);
    a kind whose training candidates are all one way gets that constant rate."""

    C: float = 0.01
    models: dict[str, Any] | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, kinds: np.ndarray) -> KindLogit:
        """Fit on ``x`` (N, F), ``y`` (N,) bool, ``kinds`` (N,) str; returns ``self``."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.models = {}
        for k in np.unique(kinds):
            m = kinds == k
            if 0 < y[m].sum() < m.sum():
                self.models[str(k)] = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(x[m], y[m])
            else:
                self.models[str(k)] = float(y[m].mean())
        return self

    def predict(self, x: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """(N,) P(error) for ``x`` (N, F) of ``kinds`` (N,); 0 for a kind never trained on."""
        if self.models is None:
            raise RuntimeError("KindLogit.predict before fit")
        out = np.zeros(len(x))
        for k in np.unique(kinds):
            m, model = kinds == k, self.models.get(str(k), 0.0)
            out[m] = model if isinstance(model, float) else model.predict_proba(x[m])[:, 1]
        return out


@dataclass
class Ranker:
    """A fitted error ranker: ``model`` (:class:`KindLogit` over :data:`FEATURES`),
    ``calibrator`` (score -> P(real error) per kind, or None: uncalibrated)."""

    model: KindLogit
    calibrator: ClassCalibrator | None = None
    n_train: int = 0

    def score(self, cand: Any) -> np.ndarray:
        """(candidates,) scores in [0, 1]: calibrated probabilities when a calibrator is fitted."""
        if not len(cand):
            return np.zeros(0)
        s = self.model.predict(cand[list(FEATURES)].to_numpy(np.float64), cand["kind"].to_numpy())
        if self.calibrator is not None:
            s = self.calibrator(s, cand["kind"].to_numpy())
        return s

    @property
    def calibrated(self) -> bool:
        return self.calibrator is not None


def fit_ranker(
    pred: Results, labels: Results, seeds: tuple[int, ...] = (101, 102, 103), rates: dict[str, float] | None = None,
    **candidate_options: Any,
) -> Ranker:
    """Fit the ranker on copies of ``labels`` with injected errors (one copy per seed).

    Args:
        pred: model predictions on the labels' images.
        labels: the labels to audit (or any labels from the same source).
        seeds: corruption seeds, one training copy each.
        rates: corruption rates (default :data:`~autolabel.audit.corrupt.DEFAULT_RATES`).
        candidate_options: passed to :func:`~autolabel.audit.features.candidates`.

    Returns:
        An uncalibrated :class:`Ranker`.
    """
    pred, labels = align_classes(pred, labels)
    xs, ys, ks = [], [], []
    for seed in seeds:
        bad, inj = corrupt_labels(labels, seed, rates)
        cand = candidates(pred, bad, **candidate_options)
        xs.append(cand[list(FEATURES)].to_numpy(np.float64))
        ks.append(cand["kind"].to_numpy())
        ys.append(hits(cand, inj, np.argsort(-rule_score(cand), kind="stable")))
    x, y = np.concatenate(xs), np.concatenate(ys)
    if y.all() or not y.any():
        raise ValueError(f"cannot fit the audit ranker: {int(y.sum())} of {len(y)} training candidates are errors")
    return Ranker(KindLogit().fit(x, y, np.concatenate(ks)), None, len(y))


def reference_truth(cand: Any, labels: Results, reference: Results) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates are real errors according to reviewed labels.

    ``reference`` holds the reviewed (correct) labels of some images (by file name). The
    labels of those images are matched to the review (:func:`autolabel.matching.match`):
    a label-candidate is a real error when its label is not ``accept``-ed (right class,
    IoU >= 0.7); a missing-candidate when it covers (IoU >= 0.5) a reviewed box no label
    matched. Returns ``(reviewed, real)``: (candidates,) bool each.
    """
    import dataclasses

    keys = {d.image.file_name for d in reference}
    sub = dataclasses.replace(labels, detections=[d for d in labels if d.image.file_name in keys])
    if len(sub) != len(reference):
        raise ValueError(f"reference has {len(reference)} images, {len(sub)} of them in the labels")
    lab, ref = align_classes(sub, reference)
    m = match(lab, ref, relabel=True)
    pos = {d.image.file_name: i for i, d in enumerate(lab)}
    reviewed = cand["file_name"].isin(keys).to_numpy()
    real = np.zeros(len(cand), bool)
    for c in np.flatnonzero(reviewed):
        row = cand.iloc[c]
        i = pos[row["file_name"]]
        if row["label"] >= 0:
            k = np.flatnonzero((m.pred_image == i) & (m.pred_box == row["label"]))
            real[c] = not (len(k) and m.pred_edit[k[0]] == ACCEPT)
        else:
            g = np.flatnonzero((m.gt_image == i) & m.gt_drawn)
            g0 = int(np.searchsorted(m.gt_image, i))
            if len(g):
                box = np.array([[row["x1"], row["y1"], row["x2"], row["y2"]]])
                real[c] = bool((box_iou(box, ref[i].xyxy[g - g0]) >= HIT_IOU).any())
    return reviewed, real


def calibrate(ranker: Ranker, cand: Any, labels: Results, reference: Results, min_kind: int = 30) -> Ranker:
    """``ranker`` with a calibrator fitted on the candidates of the reviewed images:
    isotonic P(real error | ranker score), per kind with at least ``min_kind`` examples."""
    reviewed, real = reference_truth(cand, labels, reference)
    if not reviewed.any():
        raise ValueError("no candidate falls on a reviewed image: nothing to calibrate on")
    raw = Ranker(ranker.model, None, ranker.n_train).score(cand[reviewed])
    cal = ClassCalibrator.fit(raw, real[reviewed], cand["kind"].to_numpy()[reviewed], min_class_boxes=min_kind,
                              what="reviewed candidates")
    return Ranker(ranker.model, cal, ranker.n_train)
