"""Route tracked pre-labels by segment: auto-accept stable segments, send uncertain ones
to review as frame ranges, and list the frames where tracks break ("check here").

**Segments.** Every pre-label track is cut into segments of at most ``max_frames``
frames, and wherever its detector support changes (a run of detected boxes, a run of
gap-filled ones) or its box starts or stops touching the frame's border (where people
leave the view and annotations disagree on where the track ends). Each segment is scored by: ``mean_score``, ``min_score``, ``frames``,
``agreement`` (share of its frames where the detector found the box itself, not the gap
filler: ``Detections.data["detected"]``), ``overlap`` (largest IoU of its boxes with
another track's box on the same frame: where two tracks cross, ids can swap) and
whether the track starts or ends inside the sequence at the segment (a break).

**Routes** (:class:`SegmentPolicy`; ``segments.csv``'s names): ``accept``
when ``min_score``, ``agreement`` and ``frames`` reach the policy's floors, ``overlap``
stays below its ceiling and the segment holds no break; else ``review`` (a frame range). Breaks (a track starting or
ending away from the sequence's first and last frame, a gap filled in, two tracks
crossing) go to the ``check_frames`` list with the reason.

**The guarantee.** :func:`certify` bounds the share of *units* whose auto-accepted
segments hold any error, with the Clopper-Pearson bound of the image routing work
(:func:`autolabel.routing.clopper_pearson_upper`), at confidence ``1 - delta``. The
bound needs independent units, and frames are not independent: one missed person or
one id switch spoils many neighbouring frames, and a detector that fails on a scene
fails on all its frames. So the unit is a **sequence**, or a chunk of ``unit_frames``
frames of a long one, chunks long enough that what goes wrong in one says little about
the next (longer than the typical track, so one track rarely spans two). The bound is
as good as the number of such units: with one sequence it is vacuous (1.0), with 20
error-free units it is 0.11 at delta = 0.1. Counting frames as units would claim a
bound hundreds of times too tight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autolabel.boxes import box_iou
from autolabel.config import IOU_ACCEPT
from autolabel.core import Results
from autolabel.results import Record
from autolabel.matching import ACCEPT, IGNORE, match
from autolabel.routing import clopper_pearson_upper
from autolabel.video.tracks import sequences, tracks_of

__all__ = ["FEATURES", "SegmentPolicy", "Certification", "segments", "route_segments", "check_frames", "segment_errors", "certify"]


@dataclass(frozen=True)
class SegmentPolicy:
    """Floors and ceilings for auto-accepting a segment (see the module docs)."""

    min_score: float = 0.5
    min_agreement: float = 1.0
    min_frames: int = 5
    max_overlap: float = 0.3


def segments(tracked: Results, max_frames: int = 25) -> Any:
    """Segments of every pre-label track, scored.

    Args:
        tracked: tracked frames (``track_id`` per box; ``data["detected"]`` where gaps were
            filled, ``raw_iou`` and ``joined`` from :mod:`autolabel.video.refine`).
        max_frames: longest segment, in frames.

    Returns:
        DataFrame, one row per segment: ``sequence``, ``track_id``, ``start``, ``end``
        (frame indices, inclusive), ``frames``, ``mean_score``, ``min_score``,
        ``agreement``, ``overlap``, ``break_start``, ``break_end``, and the features of
        :data:`FEATURES` (:mod:`autolabel.video.calibrate` learns from them).
    """
    import pandas as pd

    rows = []
    for name, frames in sequences(tracked).items():
        first, last = frames[0].info.frame, frames[-1].info.frame
        size = (frames[0].info.width, frames[0].info.height)
        overlap = _overlaps(frames)
        keys = [k for k in ("detected", "raw_iou", "joined") if all(k in d.data for d in frames)]
        for t in tracks_of(frames, keys):
            ov = np.array([overlap.get((int(f), t.track_id), 0.0) for f in t.frames])
            rows += _track_segments(t, ov, (first, last), size, max_frames, name)
    return pd.DataFrame(rows, columns=["sequence", "track_id", "start", "end", "frames", "mean_score", "min_score",
                                       "agreement", "overlap", "break_start", "break_end", *FEATURES[6:]])


FEATURES = ("mean_score", "min_score", "agreement", "overlap", "break_start", "break_end", "std_score",
            "raw_iou_mean", "raw_iou_min", "joined", "height", "border", "log_track_frames", "end_distance")
"""Segment features: score statistics, detector support (``agreement``), smoothing residuals
(``raw_iou_*``: IoU of the smoothed box with its detection), overlap with other tracks,
fragment joins, box size (``height``: share of the frame height), ``border`` (share of
frames touching the frame's edge), track length and distance to the track's nearest end."""


def _track_segments(t: Any, ov: np.ndarray, span: tuple[int, int], size: tuple[int, int], max_frames: int,
                    name: str) -> list[dict[str, Any]]:
    """The segment rows of one track (cut at detector-support changes, gaps and ``max_frames``)."""
    det = np.nan_to_num(t.data.get("detected", np.ones(len(t)))).astype(bool)
    raw = np.nan_to_num(t.data.get("raw_iou", np.ones(len(t))).astype(float))
    joined = np.nan_to_num(t.data.get("joined", np.zeros(len(t)))).astype(bool)
    w, h = size
    b = t.xyxy
    border = (b[:, 0] <= 2) | (b[:, 1] <= 2) | (b[:, 2] >= w - 2) | (b[:, 3] >= h - 2)
    change = (np.diff(det.astype(int)) != 0) | (np.diff(border.astype(int)) != 0)  # support or border contact
    cut = np.flatnonzero(change | (np.diff(t.frames) != 1)) + 1
    edges = [0, *cut.tolist(), len(t)]
    rows = []
    for a, z in zip(edges[:-1], edges[1:]):
        for s in range(a, z, max_frames):
            e = min(s + max_frames, z)
            seg, d = slice(s, e), det[s:e]
            rows.append({
                "sequence": name, "track_id": t.track_id, "start": int(t.frames[s]), "end": int(t.frames[e - 1]),
                "frames": e - s, "mean_score": float(t.scores[seg].mean()), "min_score": float(t.scores[seg].min()),
                "agreement": float(d.mean()), "overlap": float(ov[seg].max()),
                "break_start": bool(s == 0 and t.frames[0] > span[0]),
                "break_end": bool(e == len(t) and t.frames[-1] < span[1]),
                "std_score": float(t.scores[seg].std()),
                "raw_iou_mean": float(raw[seg][d].mean()) if d.any() else 0.0,
                "raw_iou_min": float(raw[seg][d].min()) if d.any() else 0.0,
                "joined": bool(joined[seg].any()), "height": float(np.mean(b[seg, 3] - b[seg, 1]) / h),
                "border": float(border[seg].mean()), "log_track_frames": float(np.log(len(t))),
                "end_distance": float(min(s, len(t) - e)),
            })
    return rows


def _overlaps(frames: list) -> dict[tuple[int, int], float]:
    out = {}
    for d in frames:
        if len(d) < 2:
            continue
        iou = box_iou(d.xyxy, d.xyxy)
        np.fill_diagonal(iou, 0)
        for i, t in enumerate(d.track_id.tolist()):
            out[(d.info.frame, int(t))] = float(iou[i].max())
    return out


def route_segments(segs: Any, policy: SegmentPolicy | None = None) -> Any:
    """``segs`` with a ``route`` column: ``"accept"`` or ``"review"`` (see the module docs)."""
    p = policy or SegmentPolicy()
    ok = ((segs["min_score"] >= p.min_score) & (segs["agreement"] >= p.min_agreement) & (segs["frames"] >= p.min_frames)
          & (segs["overlap"] < p.max_overlap) & ~segs["break_start"] & ~segs["break_end"])
    return segs.assign(route=np.where(ok, "accept", "review"))


def check_frames(segs: Any, crossing: float = 0.3) -> Any:
    """The "check here" list: DataFrame of ``sequence``, ``frame``, ``track_id``, ``reason``
    (``track starts``, ``track ends``, ``gap filled``, ``tracks cross``), sorted by frame."""
    import pandas as pd

    rows = []
    for r in segs.itertuples(index=False):
        if r.break_start:
            rows.append((r.sequence, r.start, r.track_id, "track starts"))
        if r.break_end:
            rows.append((r.sequence, r.end, r.track_id, "track ends"))
        if r.agreement == 0:
            rows.append((r.sequence, r.start, r.track_id, "gap filled"))
        if r.overlap >= crossing:
            rows.append((r.sequence, r.start, r.track_id, "tracks cross"))
    df = pd.DataFrame(rows, columns=["sequence", "frame", "track_id", "reason"])
    return df.sort_values(["sequence", "frame", "track_id"]).reset_index(drop=True)


def segment_errors(segs: Any, tracked: Results, gt: Results, iou_accept: float = IOU_ACCEPT) -> Any:
    """``segs`` with an ``error`` column: True when any box of the segment needs an edit
    against ``gt`` (not an ``accept`` in the one :class:`~autolabel.matching.Matching`) or
    its boxes pair with more than one ground-truth track (an id switch)."""
    m = match(tracked, gt, conf=None, iou_accept=iou_accept, iou_min=min(iou_accept, 0.5))
    gt_ids = np.concatenate([d.track_id for d in m.gt])
    state: dict[tuple[str, int, int], tuple[bool, int]] = {}
    for img, box, edit, g in zip(m.pred_image, m.pred_box, m.pred_edit, m.pred_gt):
        if edit == IGNORE:
            continue
        d = m.pred.detections[img]
        key = (d.info.sequence, int(d.track_id[box]), d.info.frame)
        state[key] = (edit == ACCEPT, int(gt_ids[g]) if g >= 0 else -1)
    errors = []
    for r in segs.itertuples(index=False):
        got = [state[k] for f in range(r.start, r.end + 1) if (k := (r.sequence, r.track_id, f)) in state]
        errors.append(not all(x[0] for x in got) or len({x[1] for x in got}) > 1)
    return segs.assign(error=errors)


@dataclass(frozen=True, repr=False)
class Certification(Record):
    """What :func:`certify` bounds: ``units`` and ``failed_units`` (holding an
    auto-accepted segment with an error), the Clopper-Pearson upper ``bound`` on the share
    of failed units at confidence ``1 - delta``, the ``accepted_segments`` and
    ``accepted_frames``, and the ``unit`` (``"sequence"`` or ``"<n> frames"``)."""

    units: int
    failed_units: int
    bound: float
    accepted_segments: int
    accepted_frames: int
    delta: float
    unit: str


def certify(routed: Any, delta: float = 0.1, unit_frames: int | None = None) -> Certification:
    """Bound the share of units whose auto-accepted segments hold an error.

    Args:
        routed: segments with ``route`` and ``error`` (:func:`route_segments`, :func:`segment_errors`).
        delta: the bound holds with probability ``1 - delta``.
        unit_frames: cut sequences into chunks of this many frames, each a unit (default:
            one unit per sequence); a segment belongs to every chunk it touches. See the
            module docs on what frame dependence means.

    Returns:
        The :class:`Certification` (``bound`` 1.0 with no units).
    """
    units: set[str] = set()
    failed: set[str] = set()
    for r in routed.itertuples(index=False):
        span = range(r.start // unit_frames, r.end // unit_frames + 1) if unit_frames else [None]
        here = {str(r.sequence) if c is None else f"{r.sequence}#{c}" for c in span}  # every chunk it touches
        units |= here
        if r.route == "accept" and r.error:
            failed |= here
    acc = routed["route"] == "accept"
    return Certification(len(units), len(failed), float(clopper_pearson_upper(len(failed), len(units), delta)),
                         int(acc.sum()), int(routed.loc[acc, "frames"].sum()), delta,
                         f"{unit_frames} frames" if unit_frames else "sequence")

