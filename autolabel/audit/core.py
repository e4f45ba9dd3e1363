"""``autolabel.audit``: rank the suspected errors of human labels against a model's
predictions, with a per-image label-quality score and the outputs a review team uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from autolabel.boxes import box_iou
from autolabel.core import Detections, Results
from autolabel.matching import align_classes

from autolabel.audit.corrupt import add_boxes
from autolabel.audit.features import KINDS, candidates
from autolabel.audit.ranker import Ranker, calibrate, fit_ranker

__all__ = ["Audit", "audit", "SUSPECT_COLUMNS", "cleaned_labels"]

SUSPECT_COLUMNS = ("file_name", "kind", "x", "y", "w", "h", "category", "score")
_EVIDENCE = ("cal", "pair_iou", "same50", "same70", "other50", "any10_raw", "dup_iou", "label_iou", "class_pred")


def _results(x: Results | str | os.PathLike, what: str) -> Results:
    if isinstance(x, Results):
        return x
    from autolabel.formats import read_coco

    if not os.path.isfile(x):
        raise FileNotFoundError(f"{what}: no such COCO file: {x}")
    return read_coco(x)


def _shadowed(sus: Any, iou: float) -> np.ndarray:
    """(suspects,) bool: at ``iou`` or more with a higher-ranked suspect of the same image
    (``sus`` sorted by score, highest first)."""
    out = np.zeros(len(sus), bool)
    xyxy = sus[["x", "y", "w", "h"]].to_numpy(np.float64).copy()
    xyxy[:, 2:] += xyxy[:, :2]
    for idx in sus.groupby("image").indices.values():
        idx = np.sort(idx)
        u = np.triu(box_iou(xyxy[idx], xyxy[idx]) >= iou, 1)
        for a in range(len(idx)):
            if not out[idx[a]]:
                out[idx[u[a]]] = True
    return out


def cleaned_labels(labels: Results, suspects: Any) -> Results:
    """A copy of ``labels`` with ``suspects`` (rows of :func:`candidates`) taken as
    right: a missing box added (the prediction's box and class), a spurious or duplicate
    label removed, a wrong class replaced by the class the model sees, a loose box
    replaced by the prediction it was measured against."""
    index = {n: k for k, n in enumerate(labels.class_names)}
    by_img = {i: g for i, g in suspects.groupby("image")}
    dets = []
    for i, d in enumerate(labels):
        g = by_img.get(i)
        if g is None:
            dets.append(d)
            continue
        xyxy, cls, keep, add = d.xyxy.astype(np.float64), d.class_ids.copy(), np.ones(len(d), bool), []
        for r in g.itertuples(index=False):
            box = np.array([r.x1, r.y1, r.x2, r.y2], np.float64)
            if r.kind == "missing":
                add.append((box, index[r.category]))
            elif r.kind in ("spurious", "duplicate"):
                keep[r.label] = False
            elif r.kind == "wrong_class":
                cls[r.label] = index[r.suggested]
            elif r.kind == "loose":  # the location is the midpoint of the label and the prediction
                xyxy[r.label] = 2 * box - np.array([r.label_x1, r.label_y1, r.label_x2, r.label_y2])
        dets.append(add_boxes(replace(d, xyxy=xyxy.astype(d.xyxy.dtype), class_ids=cls)[keep], add))
    return replace(labels, detections=dets)


def _evidence(c: Any) -> list[str]:
    """One readable line of evidence per candidate."""
    out = []
    for r in c.itertuples(index=False):
        if r.kind == "missing":
            e = f"unlabeled {r.category} predicted at p={r.cal:.2f} (score {r.score:.2f}); best label IoU {r.label_iou:.2f}"
        elif r.kind == "wrong_class":
            e = f"model sees {r.suggested} (p={r.other50:.2f}) where labeled {r.category} (p={r.same50:.2f})"
        elif r.kind == "loose":
            e = f"confident {r.category} (p={r.cal:.2f}) overlaps at IoU {r.pair_iou:.2f}; tight support p={r.same70:.2f}"
        elif r.kind == "duplicate":
            e = f"another {r.category} label at IoU {r.dup_iou:.2f}"
        else:
            e = f"no prediction supports it: best {r.category} p={r.same50:.2f}, any class score {r.any10_raw:.3f}"
        out.append(e)
    return out


@dataclass(eq=False)
class Audit:
    """What :func:`audit` found.

    ``suspects``: one row per suspected error, columns :data:`SUSPECT_COLUMNS`
    (``x, y, w, h`` pixels; ``score`` the probability of a real error when
    ``calibrated``, else the uncalibrated ranker score), then ``calibration``,
    ``suggested`` (the class the model sees), ``evidence``, ``label`` (box index in the
    image's labels, -1 for missing), ``label_x, label_y, label_w, label_h``, ``image``
    and the raw evidence columns; sorted by score, highest first. ``images``: one row per
    image: ``file_name``, ``quality`` (P(no error) = prod(1 - score) over its suspects),
    ``suspects``, ``top_kind``, ``top_score``; lowest quality first.
    """

    suspects: Any
    images: Any
    labels: Results
    calibrated: bool
    ranker: Ranker

    def __repr__(self) -> str:
        k = self.suspects["kind"].value_counts().to_dict() if len(self.suspects) else {}
        how = "calibrated" if self.calibrated else "uncalibrated"
        return f"Audit({len(self.images)} images, {len(self.suspects)} suspects {k}, scores {how})"

    def _repr_html_(self) -> str:
        return f"<p><code>{self!r}</code></p>" + self.suspects.head(20)[list(SUSPECT_COLUMNS)].to_html(index=False)

    def top(self, k: int = 20, min_score: float = 0.0) -> Any:
        """The ``k`` highest-scored suspects at ``score >= min_score`` (a DataFrame)."""
        return self.suspects[self.suspects["score"] >= min_score].head(k)

    def review_queue(self, min_score: float = 0.1) -> tuple[Results, list[str], dict[str, dict[str, Any]]]:
        """The labels with suspect regions added for review: ``(results, order, task_data)``.

        Each suspect at ``score >= min_score`` becomes an extra box labeled
        ``"suspect: <kind>"`` (its score the suspect's) beside the human labels (score 1);
        ``order`` lists the images holding such suspects, lowest quality first;
        ``task_data`` gives each its ``audit_quality``, ``audit_suspects`` and
        ``audit_evidence``. Push it with ``autolabel.labelstudio.push(results, project, order=order, task_data=data)`` or write it with ``results.save(out, "labelstudio")``."""
        names = tuple(self.labels.class_names) + tuple(f"suspect: {k}" for k in KINDS)
        s = self.suspects[self.suspects["score"] >= min_score]
        by_img = {f: g for f, g in s.groupby("file_name")}
        dets = []
        for d in self.labels:
            base = replace(d, class_names=names, class_probs=None, data={}, track_id=None,
                           scores=np.ones(len(d), np.float32))
            g = by_img.get(d.image.file_name)  # type: ignore[union-attr]
            if g is not None:
                xywh = g[["x", "y", "w", "h"]].to_numpy(np.float32)
                add = Detections.from_xywh(xywh, g["score"].to_numpy(np.float32),
                                           np.array([len(self.labels.class_names) + KINDS.index(k) for k in g["kind"]]),
                                           class_names=names, image=d.image,
                                           iscrowd=np.zeros(len(g), bool) if d.iscrowd is not None else None)
                base = Detections.concat([base, add])
            dets.append(base)
        q = self.images.set_index("file_name")
        order = [f for f in q.index if f in by_img]
        data = {f: {"audit_quality": float(q.loc[f, "quality"]), "audit_suspects": int(len(by_img[f])),
                    "audit_evidence": "; ".join(by_img[f]["evidence"].head(5))} for f in order}
        keys = {d.image.file_name: d.image.key for d in self.labels}  # type: ignore[union-attr]
        return (Results(dets, names, "audit"), [keys[f] for f in order], {keys[f]: v for f, v in data.items()})

    def save(self, out_dir: str | os.PathLike, image_root: str | os.PathLike | None = None, examples: int = 12,
             min_score: float = 0.1) -> list[str]:
        """Write ``suspects.csv``, ``images.csv``, the Label Studio review queue
        (``review/tasks.json`` + ``label_config.xml``), ``summary.md`` / ``summary.html``
        and, with ``image_root`` (where the labels' file names are), ``examples/*.png``:
        the ``examples`` top suspects drawn. Returns the written paths."""
        from autolabel.audit.report import write_audit

        return write_audit(self, out_dir, image_root, examples, min_score)


def audit(
    labels: Results | str | os.PathLike,
    predictions: Results | str | os.PathLike,
    reference: Results | str | os.PathLike | None = None,
    ranker: Ranker | None = None,
    conf: float = 0.25,
    seeds: Sequence[int] = (101, 102, 103),
    min_score: float = 0.01,
    clean_score: float | None = 0.2,
    dedup_iou: float | None = 0.5,
) -> Audit:
    """Rank the suspected errors in human labels.

    Args:
        labels: the human labels (Results or a COCO JSON path).
        predictions: a model's predictions on the same images (Results or COCO JSON),
            kept down to a low confidence (0.001-0.01): weak predictions are evidence too.
        reference: reviewed, correct labels of some of the images (Results or COCO JSON):
            scores are then calibrated to P(real error) on them; without it they are
            uncalibrated ranker scores.
        ranker: a fitted :class:`~autolabel.audit.ranker.Ranker`; default: fitted here on
            copies of ``labels`` with injected errors (one per seed in ``seeds``).
        conf: a prediction at least this confident is evidence of a loose box or a wrong
            class.
        seeds: corruption seeds for the ranker's training copies.
        min_score: suspects below this score are left out of ``suspects`` (the image
            quality still counts them).
        clean_score: with the default ranker, fit it twice: the first ranker's suspects
            from this score are fixed in a copy of the labels (:func:`cleaned_labels`),
            and the second ranker is fitted on corrupted copies of that cleaner copy, so
            fewer of the labels' own errors pose as correct examples. ``None``: once.
        dedup_iou: a suspect at this IoU or more with a higher-scored suspect of the
            same image (any kind: the same object) is left out of ``suspects``; ``None``
            keeps them all. The image quality still counts them.

    Returns:
        An :class:`Audit`.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: images or classes of the two sides that do not line up (see
            :func:`autolabel.matching.align_classes`), or a reference with images the
            labels lack.
    """
    lab, pred = _results(labels, "labels"), _results(predictions, "predictions")
    pred, lab = align_classes(pred, lab)
    rk = ranker or fit_ranker(pred, lab, tuple(seeds), conf=conf)
    cand = candidates(pred, lab, conf=conf)
    if ranker is None and clean_score is not None:
        first = cand[cand["kind"] != "ok"]
        fixed = cleaned_labels(lab, first[rk.score(first) >= clean_score])
        rk = fit_ranker(pred, fixed, tuple(seeds), conf=conf)
    if reference is not None:
        rk = calibrate(rk, cand, lab, _results(reference, "reference"))
    cand = cand[cand["kind"] != "ok"].reset_index(drop=True)
    cand["score"] = rk.score(cand)
    cand = cand.sort_values(["score", "image"], ascending=[False, True], kind="stable").reset_index(drop=True)
    import pandas as pd

    box = cand[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    lbox = cand[["label_x1", "label_y1", "label_x2", "label_y2"]].to_numpy(np.float64)
    sus = pd.DataFrame({
        "file_name": cand["file_name"], "kind": cand["kind"], "x": box[:, 0], "y": box[:, 1],
        "w": box[:, 2] - box[:, 0], "h": box[:, 3] - box[:, 1], "category": cand["category"], "score": cand["score"],
        "calibration": "calibrated" if rk.calibrated else "uncalibrated", "suggested": cand["suggested"],
        "evidence": _evidence(cand), "label": cand["label"], "label_x": lbox[:, 0], "label_y": lbox[:, 1],
        "label_w": lbox[:, 2] - lbox[:, 0], "label_h": lbox[:, 3] - lbox[:, 1], "image": cand["image"],
    })
    for k in _EVIDENCE:
        sus[k] = cand[k].to_numpy()
    names = [d.image.file_name for d in lab]  # type: ignore[union-attr]
    logq = np.zeros(len(lab))
    np.add.at(logq, sus["image"].to_numpy(), np.log1p(-np.clip(sus["score"].to_numpy(), 0, 1 - 1e-9)))
    n = np.bincount(sus["image"].to_numpy(), minlength=len(lab))
    first = sus.drop_duplicates("image").set_index("image")
    images = pd.DataFrame({
        "file_name": names, "quality": np.exp(logq), "suspects": n,
        "top_kind": [first["kind"].get(i, "") for i in range(len(lab))],
        "top_score": [float(first["score"].get(i, 0.0)) for i in range(len(lab))],
    }).sort_values(["quality", "file_name"], kind="stable").reset_index(drop=True)
    keep = sus["score"].to_numpy() >= min_score
    if dedup_iou is not None:
        keep &= ~_shadowed(sus, dedup_iou)
    sus = sus[keep].reset_index(drop=True)
    return Audit(sus, images, lab, rk.calibrated, rk)
