"""Routing new images with a fitted policy: queues, the manifest, and the exports."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from autolabel.core import Results
from autolabel.routing.plots import plot_risk_coverage
from autolabel.routing.policy import SCORE_LABEL, FittedPolicy

__all__ = ["QUEUES", "Routing", "route", "task_data", "assign", "check_classes"]

QUEUES = ("auto_accept", "review", "scratch")
_EPS = 1e-6


def assign(policy: FittedPolicy, images: pd.DataFrame, budget_hours: float | None = None) -> pd.DataFrame:
    """Queue, reason, review priority and budget status for scored images (a manifest)."""
    m = images.copy()
    col, label = policy.accept_score, SCORE_LABEL[policy.accept_score]
    p = m[col].to_numpy()
    edit_s, scratch_s = m["expected_edit_s"].to_numpy(), m["expected_scratch_s"].to_numpy()
    margin = policy.config.scratch_margin
    auto = p >= policy.threshold if policy.threshold is not None else np.zeros(len(m), bool)
    scratch = ~auto & (edit_s > margin * scratch_s)
    m["queue"] = np.where(auto, "auto_accept", np.where(scratch, "scratch", "review"))
    thr = "none certified" if policy.threshold is None else f"{policy.threshold:.4g}"
    m["reason"] = [
        f"{label} {pi:.3f} >= threshold {thr}" if a
        else f"expected {e:.1f} s to fix > {margin:g} x {sc:.1f} s from scratch" if sr
        else f"{label} {pi:.3f} < threshold {thr}; fixing ({e:.1f} s) beats scratch ({sc:.1f} s)"
        for pi, a, sr, e, sc in zip(p, auto, scratch, edit_s, scratch_s)
    ]
    m["priority"] = np.where(m["queue"] == "review", (scratch_s - edit_s) / np.maximum(edit_s, _EPS), np.nan)
    review = m.index[m["queue"] == "review"][np.argsort(-m.loc[m["queue"] == "review", "priority"].to_numpy(), kind="stable")]
    m["review_rank"] = pd.Series(np.arange(1, len(review) + 1), index=review).reindex(m.index).astype("Int64")
    if budget_hours is not None:
        if budget_hours < 0:
            raise ValueError(f"budget_hours must be >= 0, got {budget_hours}")
        cum = m.loc[review, "expected_edit_s"].cumsum()
        m["in_budget"] = pd.Series(cum <= budget_hours * 3600, index=review).reindex(m.index)
    first = ["image", "file_name", "queue", "reason", *dict.fromkeys(["p_no_edit", col]), "expected_edit_s",
             "expected_scratch_s", "priority", "review_rank", *(["in_budget"] if budget_hours is not None else [])]
    return m[first + [c for c in m.columns if c not in first]]


@dataclass(eq=False)
class Routing:
    """Where every image goes: ``manifest`` (one row per image, in input order: queue,
    reason, scores, review rank, budget status), ``boxes`` (per-box scores) and the
    exports (:meth:`save`)."""

    predictions: Results
    policy: FittedPolicy
    manifest: pd.DataFrame
    boxes: pd.DataFrame
    budget_hours: float | None = None

    def queue(self, name: str) -> list[str]:
        """File names in one queue; the review queue in priority order."""
        if name not in QUEUES:
            raise ValueError(f"unknown queue {name!r}; choose from {', '.join(QUEUES)}")
        m = self.manifest[self.manifest["queue"] == name]
        if name == "review":
            m = m.sort_values("review_rank")
        return m["file_name"].tolist()

    def _subset(self, names: Sequence[str], prelabels_only: bool) -> Results:
        by_name = {d.image.file_name: d for d in self.predictions if d.image}
        conf = self.policy.config.prelabel_conf
        cert = self.boxes[self.boxes["certified"]].groupby("file_name")["box"].apply(np.asarray)
        dets = []
        for n in names:
            d = by_name[n]
            flag = np.zeros(len(d), bool)
            flag[np.asarray(cert.get(n, np.zeros(0)), np.int64)] = True
            d = replace(d, data={**d.data, "certified": flag})
            dets.append(d.filter(conf) if prelabels_only else d)
        return replace(self.predictions, detections=dets, failures=[])

    def auto_accepted(self) -> Results:
        """The final labels of the auto-accepted images: their pre-labels (score >= prelabel_conf),
        with ``Detections.data["certified"]`` (bool per box, see :meth:`review_queue`)."""
        return self._subset(self.queue("auto_accept"), True)

    def review_queue(self) -> Results:
        """The review queue's pre-labels in priority order. ``Detections.data["certified"]``
        marks the boxes whose calibrated probability of being right clears the policy's
        certified ``box_threshold`` (box precision >= 1 - box_alpha at 1 - delta): the
        reviewer checks the others and scans for misses."""
        return self._subset(self.queue("review"), True)

    def seconds(self) -> pd.DataFrame:
        """Expected human seconds per queue, routed in total, reviewing everything and
        labeling everything from scratch (images, seconds, hours)."""
        m = self.manifest
        cost = np.select(
            [m["queue"] == "review", m["queue"] == "scratch"], [m["expected_edit_s"], m["expected_scratch_s"]], 0.0
        )
        rows = [(q, int((m["queue"] == q).sum()), float(cost[m["queue"] == q].sum())) for q in QUEUES]
        rows += [
            ("routed total", len(m), float(cost.sum())),
            ("review everything", len(m), float(m["expected_edit_s"].sum())),
            ("scratch everything", len(m), float(m["expected_scratch_s"].sum())),
        ]
        df = pd.DataFrame(rows, columns=["plan", "images", "seconds"])
        df["hours"] = df["seconds"] / 3600
        return df

    def summary(self) -> dict[str, Any]:
        """Counts per queue, the policy's threshold and reason, seconds and budget status."""
        m = self.manifest
        out: dict[str, Any] = {
            "images": len(m),
            "model_id": self.predictions.model_id,
            "queues": {q: int((m["queue"] == q).sum()) for q in QUEUES},
            "threshold": self.policy.threshold,
            "risk": self.policy.config.risk,
            "alpha": self.policy.config.alpha,
            "delta": self.policy.config.delta,
            "reason": self.policy.reason,
            "expected_seconds": {r.plan: r.seconds for r in self.seconds().itertuples()},
        }
        if self.budget_hours is not None:
            review = m[m["queue"] == "review"]
            left = review[~review["in_budget"].astype(bool)]
            out["budget"] = {
                "hours": self.budget_hours,
                "reviewed_images": int(len(review) - len(left)),
                "reviewed_expected_s": float(review["expected_edit_s"].sum() - left["expected_edit_s"].sum()),
                "unreviewed_images": int(len(left)),
                "unreviewed_expected_s": float(left["expected_edit_s"].sum()),
                "unreviewed_expected_images_needing_edit": float((1 - left["p_no_edit"]).sum()),
                "unreviewed": left["file_name"].tolist(),
                "scratch_queue_s_not_in_budget": float(m.loc[m["queue"] == "scratch", "expected_scratch_s"].sum()),
            }
        return out

    def save(self, out_dir: str | os.PathLike, image_root_url: str = "") -> list[str]:
        """Write into ``out_dir``: ``manifest.csv``, ``auto_accepted.json`` (COCO),
        ``review_queue.json`` (Label Studio tasks in priority order, routing scores in each
        task's data; ``label_config.xml`` beside it), ``review_queue.txt`` and
        ``scratch_queue.txt`` (file names, one a line), ``seconds.csv``,
        ``summary.json``, ``boxes.csv`` (per pre-label: ``box`` index in its image's predictions,
        ``p_correct`` and ``certified``) and ``risk_coverage.png``. Returns the written paths."""
        os.makedirs(out_dir, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=".route-", dir=out_dir)
        try:  # everything is written into a staging folder first: a failure leaves no file half-replaced
            staged = self._write(stage, image_root_url)
            finals = [os.path.join(str(out_dir), os.path.relpath(p, stage)) for p in staged]
            for f in finals:  # the renames below then only fail where the disk does
                if os.path.isdir(f):
                    raise IsADirectoryError(f"cannot write {f}: a folder of that name is in the way")
            for p, f in zip(staged, finals):
                os.replace(p, f)
            written = finals
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return written

    def _write(self, folder: str, image_root_url: str) -> list[str]:
        from autolabel.formats import write_coco, write_labelstudio
        from autolabel.io.files import atomic_write

        def path(name: str) -> str:  # fixed names only, never names taken from the input
            return os.path.join(folder, name)

        m = self.manifest
        written = [atomic_write(path("manifest.csv"), m.drop(columns=["image"]).to_csv(index=False))]
        written += write_coco(self.auto_accepted(), path("auto_accepted.json"))
        review = self.queue("review")
        cols = ["queue", "review_rank", "priority", "p_no_edit", "expected_edit_s", "expected_scratch_s", "reason"]
        key = {d.image.file_name: d.image.key for d in self.predictions if d.image}
        extra = task_data(m.set_index("file_name").loc[review, cols], [key[f] for f in review])
        written += write_labelstudio(self.review_queue(), path("review_queue.json"), image_root_url, extra)
        written.append(atomic_write(path("review_queue.txt"), "".join(f"{f}\n" for f in review)))
        written.append(atomic_write(path("scratch_queue.txt"), "".join(f"{f}\n" for f in self.queue("scratch"))))
        written.append(atomic_write(path("seconds.csv"), self.seconds().to_csv(index=False)))
        pre = self.boxes[self.boxes["prelabel"]]
        cols = ["file_name", "box", "label", "score", "p_correct", "certified"]
        written.append(atomic_write(path("boxes.csv"), pre[cols].to_csv(index=False)))  # per pre-label: certified or not
        written.append(atomic_write(path("summary.json"), json.dumps(self.summary(), indent=1)))
        written.append(plot_risk_coverage(self.policy, path("risk_coverage.png")))
        return written


def task_data(rows: pd.DataFrame, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Manifest rows as annotation-tool task data: ``{key: {"routing_<column>": value}}``
    (JSON scalars; NaN becomes ``None``), one row per key in order."""
    return {
        k: {f"routing_{c}": _json_scalar(v) for c, v in zip(rows.columns, row)}
        for k, row in zip(keys, rows.itertuples(index=False))
    }


def _json_scalar(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def check_classes(names: Sequence[str], policy_names: Sequence[str]) -> None:
    """Raise ``ValueError`` unless the predictions' class names are the policy's, in order
    (a renamed or reordered category would be scored with another class's calibrator)."""
    if tuple(names) == tuple(policy_names):
        return
    extra = [n for n in names if n not in policy_names]
    missing = [n for n in policy_names if n not in names]
    detail = (f"not in the policy: {extra[:10]}; " if extra else "") + (f"missing: {missing[:10]}" if missing else "")
    raise ValueError(
        "the predictions' class names are not the ones the policy was fitted on "
        f"({detail or 'same names in another order'}); route predictions of the policy's model with its class names"
    )


def route(
    predictions: Results,
    policy: FittedPolicy | str | os.PathLike,
    budget_hours: float | None = None,
    agreement: Sequence[np.ndarray] | None = None,
    check_model: bool = True,
) -> Routing:
    """Send every image of ``predictions`` to one queue with a fitted policy.

    Args:
        predictions: the policy model's predictions at the policy's ``evidence_conf``.
        policy: a :class:`~autolabel.routing.policy.FittedPolicy` or its JSON path.
        budget_hours: human hours for the review queue (priority order; the rest is
            reported unreviewed), or None.
        agreement: per image, per box signal, when the policy was fitted with one.
        check_model: refuse predictions of another model (``model_id``).

    Returns:
        The :class:`Routing` (manifest, per-box scores with ``certified``, exports).

    Raises:
        ValueError: another model's predictions, other class names than the policy's,
            invalid boxes, a policy whose threshold, alpha and bound disagree, or
            predictions thresholded above the policy's evidence boxes (predict at
            ``evidence_conf``).
    """
    from autolabel.formats._common import check_boxes

    pol = policy if isinstance(policy, FittedPolicy) else FittedPolicy.load(policy)
    pol.verify()
    if check_model:
        pol.check_model(predictions.model_id)
    check_classes(predictions.class_names, pol.class_names)
    check_boxes(predictions, "predictions")
    boxes, images = pol.score(predictions, agreement)
    if pol.found is not None and boxes["prelabel"].any() and boxes["prelabel"].all():
        raise ValueError(
            f"the predictions hold no box scoring below the pre-label threshold {pol.config.prelabel_conf}, but the "
            f"policy counts such boxes (down to {pol.config.evidence_conf}) as evidence of missed objects: predict "
            f"at conf {pol.config.evidence_conf} as for calibration (autolabel prelabel --conf {pol.config.evidence_conf})"
        )
    return Routing(predictions, pol, assign(pol, images, budget_hours), boxes, budget_hours)
