"""Segment routing that is learned: which segments of refined tracks to auto-accept.

A fixed rule (:class:`autolabel.video.routing.SegmentPolicy`: min score, every frame
detected) does not predict whether a segment is right: confident boxes swap ids where
people cross, and a box can be confident and loose. :func:`calibrate` learns it from
sequences with ground truth:

* **Label**: a segment *holds* when every frame's box pairs with the same ground-truth
  object at IoU >= ``iou`` (the preset ``video-factory-pass-90``: 0.5, the QC tolerance of
  image routing's ``factory-pass-90``); else it holds an error
  (:func:`autolabel.video.routing.segment_errors`).
* **Model**: a logistic regression (scikit-learn, standardised features) on the segment
  features of :data:`autolabel.video.routing.FEATURES` (score statistics, smoothing
  residuals, overlap with other tracks, detector support, fragment joins, box size,
  border contact, track length, distance to the track's end). Few sequences and a few
  hundred correlated segments call for a model with few degrees of freedom.
* **Gates**: with ``review_breaks`` (the preset), a segment where its track starts or
  ends inside the sequence always goes to review: there trackers and annotators
  disagree most (people entering, leaving, occluded), whatever the features say; so
  does a segment with a box scored below ``min_score``, a frame no detection supports
  (``min_agreement``) or a track shorter than ``min_track_frames``. The gates hold where the model cannot learn: calibration
  sequences without errors of some kind give it nothing to learn them from.
* **Threshold**: chosen on *held-out* predictions: each sequence is scored by the model
  fitted on the others (leave one sequence out), and the threshold is the lowest whose
  accepted segments hold errors in at most ``fit_error`` (2%) of cases (a margin below the
  target ``max_error`` for sequences unlike the calibration ones). The final model is
  then fitted on every sequence.
* **Bound**: sequences are the independent units (frames and segments of one sequence
  fail together). The Clopper-Pearson bound on the share of sequences whose accepted
  segments hold any error is reported; with fewer than about 20 sequences it is near 1,
  i.e. no guarantee: the policy's ``note`` says so plainly.

The fitted :class:`VideoPolicy` is plain JSON (no pickle): coefficients, scaling and the
threshold.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from autolabel.config import VideoRoutingConfig
from autolabel.core import Results
from autolabel.routing import clopper_pearson_upper
from autolabel.video.routing import FEATURES, check_frames, segment_errors, segments

__all__ = ["VideoPolicy", "calibrate", "route_tracks", "leave_one_out"]


@dataclass
class VideoPolicy:
    """A fitted segment-routing policy.

    Attributes:
        config: the :class:`VideoRoutingConfig` it was fitted with (as a dict).
        features: feature names, in coefficient order.
        mean, scale: feature standardisation.
        coef, intercept: logistic model of P(segment holds).
        threshold: accept when P >= threshold.
        calibration: held-out statistics (segments, errors, coverage, units, bound, note).
    """

    config: dict[str, Any]
    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    calibration: dict[str, Any] = field(default_factory=dict)

    def probability(self, segs: Any) -> np.ndarray:
        """(n,) P(segment holds) of a segment table (:func:`autolabel.video.routing.segments`)."""
        x = (_matrix(segs, self.features) - np.array(self.mean)) / np.array(self.scale)
        return 1.0 / (1.0 + np.exp(-(x @ np.array(self.coef) + self.intercept)))

    def route(self, segs: Any) -> Any:
        """``segs`` with ``p_hold`` and ``route`` (``accept`` / ``review``)."""
        p = self.probability(segs) if len(segs) else np.zeros(0)
        return segs.assign(p_hold=p, route=np.where(self.eligible(segs) & (p >= self.threshold), "accept", "review"))

    def eligible(self, segs: Any) -> np.ndarray:
        """(n,) bool: segments the model may accept: ``min_score``, ``min_agreement`` and
        ``min_track_frames`` reached and, with ``review_breaks``, no track break inside."""
        if not len(segs):
            return np.ones(0, bool)
        c = self.config
        ok = ((segs["min_score"].to_numpy(float) >= c.get("min_score", 0.0))
              & (segs["agreement"].to_numpy(float) >= c.get("min_agreement", 0.0))
              & (segs["log_track_frames"].to_numpy(float) >= np.log(c.get("min_track_frames", 1))))
        if c.get("review_breaks", True):
            ok &= ~(segs["break_start"].to_numpy(bool) | segs["break_end"].to_numpy(bool))
        return ok

    def save(self, path: str | os.PathLike) -> None:
        """Write the policy as JSON (atomically)."""
        from autolabel.io.files import atomic_write

        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> VideoPolicy:
        """Read a policy written by :meth:`save`.

        Raises:
            ValueError: not a policy file (named).
        """
        from autolabel.io.files import load_json

        d, _ = load_json(path)
        try:
            return cls(**d)
        except (TypeError, AttributeError) as e:
            raise ValueError(f"{path}: not a video routing policy ({e})") from None

    def __repr__(self) -> str:
        c = self.calibration
        return (f"VideoPolicy(threshold {self.threshold:.3f}; held out: {c.get('accepted_segments')} accepted "
                f"segments, error share {c.get('error_share', float('nan')):.3f}, coverage "
                f"{c.get('coverage', float('nan')):.3f}; {c.get('units')} sequences)")


def _matrix(segs: Any, names: Sequence[str]) -> np.ndarray:
    return segs[list(names)].astype(float).to_numpy() if len(segs) else np.zeros((0, len(names)))


def _labeled(tracked: Sequence[Results], gts: Sequence[Results], cfg: VideoRoutingConfig) -> list[Any]:
    if len(tracked) != len(gts):
        raise ValueError(f"{len(tracked)} track sets for {len(gts)} ground-truth sequences: give one per sequence")
    return [segment_errors(segments(t, cfg.max_frames), t, g, iou_accept=cfg.iou) for t, g in zip(tracked, gts)]


def _fit(segs: Any, cfg: VideoRoutingConfig) -> tuple[list[float], list[float], list[float], float]:
    from sklearn.linear_model import LogisticRegression

    x = _matrix(segs, FEATURES)
    y = ~segs["error"].to_numpy(bool)
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    if y.all() or not y.any():  # one class: a constant model
        return mean.tolist(), scale.tolist(), [0.0] * len(FEATURES), float(np.log((y.mean() + 1e-3) / (1.001 - y.mean())))
    m = LogisticRegression(C=cfg.regularization, max_iter=1000).fit((x - mean) / scale, y)
    return mean.tolist(), scale.tolist(), m.coef_[0].tolist(), float(m.intercept_[0])


def _threshold(p: np.ndarray, error: np.ndarray, fit_error: float) -> float:
    """The lowest threshold whose accepted segments (p >= t) hold errors in <= fit_error of cases."""
    order = np.argsort(-p, kind="stable")
    share = np.cumsum(error[order]) / np.arange(1, len(p) + 1)
    ok = np.flatnonzero(share <= fit_error)
    return float(p[order][ok[-1]]) if len(ok) else float("inf")


def _policy(segs: Any, cfg: VideoRoutingConfig, threshold: float, calibration: dict[str, Any]) -> VideoPolicy:
    mean, scale, coef, icpt = _fit(segs, cfg)
    return VideoPolicy(cfg.model_dump(), list(FEATURES), mean, scale, coef, icpt, threshold, calibration)


def leave_one_out(tracked: Sequence[Results], gts: Sequence[Results],
                  config: VideoRoutingConfig | str | None = None) -> Any:
    """Each sequence routed by a policy calibrated on the others (its threshold chosen on
    their own leave-one-out predictions when there are >= 3, else on their fit).

    Returns:
        DataFrame, one row per held-out sequence: ``sequence``, ``segments``,
        ``accepted``, ``accepted_errors``, ``error_share`` (of accepted segments),
        ``coverage`` (share of track frames in accepted segments).
    """
    import pandas as pd

    cfg = VideoRoutingConfig.load(config)
    labeled = _labeled(tracked, gts, cfg)
    rows = []
    for i, held in enumerate(labeled):
        rest = [s for j, s in enumerate(labeled) if j != i]
        pol = _calibrate_labeled(rest, cfg) if rest else None
        routed = pol.route(held) if pol else held.assign(route="review")
        rows.append(_stats(routed, str(held["sequence"].iloc[0]) if len(held) else str(i)))
    return pd.DataFrame(rows)


def _stats(routed: Any, name: str) -> dict[str, Any]:
    acc = routed["route"] == "accept"
    return {"sequence": name, "segments": len(routed), "accepted": int(acc.sum()),
            "accepted_errors": int(routed.loc[acc, "error"].sum()),
            "error_share": float(routed.loc[acc, "error"].mean()) if acc.any() else float("nan"),
            "coverage": float(routed.loc[acc, "frames"].sum() / max(routed["frames"].sum(), 1))}


def _calibrate_labeled(labeled: list[Any], cfg: VideoRoutingConfig) -> VideoPolicy:
    import pandas as pd

    allsegs = pd.concat(labeled, ignore_index=True)
    if len(labeled) >= 2:  # held-out predictions: each sequence by the model of the others
        held = []
        for i, s in enumerate(labeled):
            rest = pd.concat([x for j, x in enumerate(labeled) if j != i], ignore_index=True)
            m = _policy(rest, cfg, 0.5, {})
            held.append(s.assign(p_hold=np.where(m.eligible(s), m.probability(s), -1.0)))
        oof = pd.concat(held, ignore_index=True)
    else:  # one sequence: in-sample, said in the note
        m = _policy(allsegs, cfg, 0.5, {})
        oof = allsegs.assign(p_hold=np.where(m.eligible(allsegs), m.probability(allsegs), -1.0))
    t = max(_threshold(oof["p_hold"].to_numpy(), oof["error"].to_numpy(bool), cfg.fit_error), 0.0)
    routed = oof.assign(route=np.where(oof["p_hold"] >= t, "accept", "review"))
    units = {str(n): bool(g.loc[g["route"] == "accept", "error"].any()) for n, g in routed.groupby("sequence")}
    failed, n = sum(units.values()), len(units)
    bound = float(clopper_pearson_upper(failed, n, cfg.delta))
    stats = _stats(routed, "all")
    note = (f"{n} sequence(s) are the independent units; the bound on the share of sequences whose accepted "
            f"segments hold an error is {bound:.2f} at delta {cfg.delta}"
            + (": too few sequences for a useful bound (about 20 error-free ones give 0.11)." if bound > cfg.max_error
               else "."))
    if len(labeled) < 2:
        note += " One sequence: the threshold was chosen in-sample."
    calibration = {**{k: v for k, v in stats.items() if k != "sequence"}, "units": n, "failed_units": failed,
                   "bound": bound, "held_out": len(labeled) >= 2, "note": note}
    return _policy(allsegs, cfg, t, calibration)


def calibrate(tracked: Sequence[Results], gts: Sequence[Results],
              config: VideoRoutingConfig | str | os.PathLike | None = None) -> VideoPolicy:
    """Fit a segment-routing policy on sequences with ground truth (see the module docs).

    Args:
        tracked: per sequence, its refined tracks (``track_id``; ``data`` from refinement).
        gts: per sequence, its ground truth with ``track_id``, in the same order.
        config: a :class:`VideoRoutingConfig`, YAML path or name (default ``video-factory-pass-90``).

    Returns:
        The fitted :class:`VideoPolicy` (its ``calibration`` holds the held-out statistics).

    Raises:
        ValueError: unequal numbers of track sets and ground truths, or frames that do not pair.
    """
    cfg = VideoRoutingConfig.load(config)
    return _calibrate_labeled(_labeled(tracked, gts, cfg), cfg)


def route_tracks(tracked: Results, policy: VideoPolicy) -> tuple[Any, Any]:
    """Route the segments of ``tracked`` with a fitted policy.

    Returns:
        ``(segments, check_frames)``: the segment table with ``p_hold`` and ``route``
        (frames 0-based, inclusive), and the "check here" frames
        (:func:`autolabel.video.routing.check_frames`).
    """
    routed = policy.route(segments(tracked, int(policy.config.get("max_frames", 25))))
    return routed, check_frames(routed)
