"""What tracking pre-labels save on video: a cost model that knows keyframes.

Four ways to label the same video, priced with a :class:`~autolabel.config.VideoCostProfile`
(``configs/cost/video-*.yaml``):

* **scratch per frame**: every frame labeled as an image, every box drawn (the image
  profile's :func:`autolabel.savings.scratch_seconds`);
* **assisted per frame**: every frame's pre-labels fixed as an image (the image profile's
  :func:`autolabel.savings.edit_seconds` of the per-frame :class:`~autolabel.matching.Matching`);
* **scratch with keyframes**: per ground-truth track, its fewest keyframes
  (:func:`autolabel.keyframes.keyframes`) x ``keyframe_box_s`` + ``track_s``;
* **assisted per track**: per ground-truth track found by a pre-label track, the
  correction keyframes of the residual between them
  (:func:`autolabel.keyframes.residual_keyframes`) x ``correct_keyframe_s`` +
  ``verify_track_s``, a merge per extra pre-label track on it (ID switches, fragments:
  ``merge_s``) and a trim per end where a pre-label track runs on past the object
  (``trim_s``); with ``replace_if_cheaper``, deleting its pre-label tracks and drawing it
  from scratch when that is faster (as the image model fixes or replaces a box); a
  delete per false track (``delete_track_s``); missed tracks drawn as scratch.
  With ``import_keyframes`` the pre-label the person corrects is the pre-label track as
  the tool shows it after import: its own keyframes (at ``tau``), interpolated.

Both keyframe modes add ``frame_view_s`` per frame. Saving from **interpolation alone**
is scratch per frame - scratch with keyframes; from **the model** on top of it, scratch
with keyframes - assisted per track.

**Track association** reads the one :class:`~autolabel.matching.Matching` of the
pre-labels with the ground truth (no second matcher): a pre-label track is *false* when
fewer than half its boxes pair with a ground-truth box; otherwise each of its paired
boxes votes for the ground-truth track it pairs with, and a ground-truth track is
*found* by the pre-label tracks that paired with it. The correction's base on a frame
is the paired pre-label box, interpolated over frames where none paired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autolabel.config import IOU_MIN, CostProfile, VideoCostProfile
from autolabel.core import Results
from autolabel.video.keyframes import interpolate, keyframes, residual_keyframes
from autolabel.matching import DELETE, IGNORE, Matching, match
from autolabel.savings.edits import edit_seconds, scratch_seconds

__all__ = ["VideoSavings", "video_savings"]


@dataclass(eq=False)
class VideoSavings:
    """The four costs of one video, and the per-track detail.

    Attributes:
        seconds: ``{"scratch_per_frame", "assisted_per_frame", "scratch_keyframes",
            "assisted_per_track"}`` human seconds.
        tracks: DataFrame, one row per ground-truth track: ``track_id``, ``frames``,
            ``keyframes`` (scratch), ``status`` (fixed / replaced / missed), ``pred_tracks``,
            ``correction_keyframes``, ``merges``, ``trims``, ``fix_seconds``, ``seconds``.
        false_tracks: pre-label tracks deleted.
        frames: frames in the video.
        profile: the cost profile.
    """

    seconds: dict[str, float]
    tracks: Any
    false_tracks: int
    frames: int
    profile: VideoCostProfile

    def fraction(self, a: str, b: str) -> float:
        """Share of ``seconds[a]`` that ``b`` saves: ``1 - b / a``."""
        return 1.0 - self.seconds[b] / self.seconds[a] if self.seconds[a] > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals, shares saved and the split interpolation / model."""
        s = self.seconds
        total = s["scratch_per_frame"] - s["assisted_per_track"]
        interp = s["scratch_per_frame"] - s["scratch_keyframes"]
        return {
            **{f"{k}_seconds": v for k, v in s.items()},
            "per_frame_saved_fraction": self.fraction("scratch_per_frame", "assisted_per_frame"),
            "keyframes_saved_fraction": self.fraction("scratch_per_frame", "scratch_keyframes"),
            "per_track_saved_fraction_vs_keyframes": self.fraction("scratch_keyframes", "assisted_per_track"),
            "per_track_saved_fraction_vs_per_frame": self.fraction("scratch_per_frame", "assisted_per_track"),
            "saved_by_interpolation_share": interp / total if total > 0 else float("nan"),
            "saved_by_model_share": (total - interp) / total if total > 0 else float("nan"),
            "gt_tracks": int(len(self.tracks)), "missed_tracks": int((self.tracks["status"] == "missed").sum()),
            "false_tracks": self.false_tracks, "frames": self.frames,
            "human_cost": {k: v / 3600 * self.profile.hourly_wage for k, v in s.items()},
            "currency": self.profile.currency,
        }

    def __repr__(self) -> str:
        s = self.seconds
        return ("VideoSavings(" + ", ".join(f"{k} {v / 60:.1f} min" for k, v in s.items())
                + f"; {len(self.tracks)} tracks, {self.false_tracks} false)")


def _track_keys(r: Results) -> list[np.ndarray]:
    return [d.track_id if d.track_id is not None else np.full(len(d), -1, np.int64) for d in r]


def _associate(m: Matching) -> tuple[dict[int, dict[int, list[tuple[int, int]]]], set[int], dict[int, int]]:
    """From the matching: per gt track, per pred track, the (frame position, pred box) pairs;
    the false pred tracks; per pred track its box count."""
    gt_ids, pred_ids = _track_keys(m.gt), _track_keys(m.pred)
    gt_start = np.concatenate([[0], np.cumsum([len(d) for d in m.gt])])
    paired: dict[int, dict[int, list[tuple[int, int]]]] = {}
    boxes: dict[int, int] = {}
    hits: dict[int, int] = {}
    for img, box, edit, g in zip(m.pred_image, m.pred_box, m.pred_edit, m.pred_gt):
        if edit == IGNORE:
            continue
        p = int(pred_ids[img][box])
        boxes[p] = boxes.get(p, 0) + 1
        if edit == DELETE:
            continue
        hits[p] = hits.get(p, 0) + 1
        gt_track = int(gt_ids[img][int(g) - gt_start[img]])
        paired.setdefault(gt_track, {}).setdefault(p, []).append((int(img), int(box)))
    false = {p for p, n in boxes.items() if hits.get(p, 0) < 0.5 * n}
    for g in paired:
        paired[g] = {p: v for p, v in paired[g].items() if p not in false}
    return paired, false, boxes


def video_savings(
    pred: Results,
    gt: Results,
    profile: str | VideoCostProfile | None = None,
    frame_pred: Results | None = None,
    frame_conf: float | None = None,
    iou_min: float = IOU_MIN,
) -> VideoSavings:
    """Price labeling one video four ways (see the module docs).

    Args:
        pred: tracked pre-labels (``track_id`` per box) of one sequence.
        gt: its ground truth with ``track_id``.
        profile: a video cost profile, YAML path or name (default ``video-keyframes``).
        frame_pred: the per-frame pre-labels for the per-frame comparison (default: ``pred``).
        frame_conf: threshold applied to ``frame_pred``.
        iou_min: IoU from which a pre-label box pairs with a ground-truth box.

    Returns:
        The :class:`VideoSavings`.

    Raises:
        ValueError: boxes without ``track_id``, or predictions and ground truth on different frames.
    """
    import pandas as pd

    p = VideoCostProfile.load(profile)
    img = CostProfile.load(p.image_profile)
    if any(d.track_id is None and len(d) for r in (pred, gt) for d in r):
        raise ValueError("video savings need track_id on every box of pred and gt")
    tau = p.tau
    # per frame: the image cost model on the one Matching of each set of pre-labels
    fm = match(frame_pred if frame_pred is not None else pred, gt, conf=frame_conf, iou_accept=tau, iou_min=iou_min)
    n_gt = np.array([int((~d.crowd).sum()) for d in gt])
    per_frame_scratch = float(np.sum(scratch_seconds(n_gt, img)))
    per_frame_assisted = float(np.sum(edit_seconds(fm.image_counts, img)))

    m = fm if frame_pred is None and frame_conf is None else match(pred, gt, conf=None, iou_accept=tau, iou_min=iou_min)
    paired, false, _ = _associate(m)
    gt_tracks = _gt_tracks(m.gt)
    rows = []
    for tid, (frames, boxes) in sorted(gt_tracks.items()):
        scratch_k = len(keyframes(frames, boxes, tau))
        scratch_s = scratch_k * p.keyframe_box_s + p.track_s
        mine = paired.get(tid, {})
        row = {"track_id": tid, "frames": len(frames), "keyframes": scratch_k, "scratch_seconds": scratch_s,
               "pred_tracks": len(mine), "correction_keyframes": 0, "merges": 0, "trims": 0}
        if not mine:
            rows.append({**row, "status": "missed", "seconds": scratch_s})
            continue
        base = _base(m, mine, frames, tau if p.import_keyframes else None)
        fix = len(residual_keyframes(frames, boxes, base, tau))
        trims = sum(_trims(m, pt, (int(frames[0]), int(frames[-1]))) for pt in mine)
        merges = len(mine) - 1
        secs = fix * p.correct_keyframe_s + p.verify_track_s + merges * p.merge_s + trims * p.trim_s
        redraw = len(mine) * p.delete_track_s + scratch_s
        status = "replaced" if p.replace_if_cheaper and redraw < secs else "fixed"
        rows.append({**row, "status": status, "correction_keyframes": fix, "merges": merges, "trims": trims,
                     "fix_seconds": secs, "seconds": min(secs, redraw) if status == "replaced" else secs})
    table = pd.DataFrame(rows)
    view = p.frame_view_s * len(gt)
    seconds = {
        "scratch_per_frame": per_frame_scratch,
        "assisted_per_frame": per_frame_assisted,
        "scratch_keyframes": float(table["scratch_seconds"].sum()) + view if len(table) else view,
        "assisted_per_track": (float(table["seconds"].sum()) if len(table) else 0.0) + len(false) * p.delete_track_s
        + view,
    }
    return VideoSavings(seconds, table, len(false), len(gt), p)


def _gt_tracks(gt: Results) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    rows: dict[int, list[tuple[int, np.ndarray]]] = {}
    for d in gt:
        for i in np.flatnonzero(~d.crowd):
            rows.setdefault(int(d.track_id[i]), []).append((d.info.frame, d.xyxy[i]))
    out = {}
    for t, r in rows.items():
        r.sort(key=lambda x: x[0])
        out[t] = (np.array([x[0] for x in r], np.int64), np.array([x[1] for x in r], np.float64))
    return out


def _base(m: Matching, mine: dict[int, list[tuple[int, int]]], frames: np.ndarray, tau: float | None) -> np.ndarray:
    """The pre-label under the ground-truth track on each of its frames: the paired box
    (the longest pre-label track's where fragments overlap), interpolated elsewhere."""
    known: dict[int, np.ndarray] = {}
    for _, pairs in sorted(mine.items(), key=lambda kv: len(kv[1])):
        for img, box in pairs:
            known[m.pred.detections[img].info.frame] = m.pred.detections[img].xyxy[box]
    f = np.array(sorted(known), np.int64)
    b = np.array([known[k] for k in f], np.float64)
    if tau is not None:  # what the tool shows: the pre-label track imported as its own keyframes
        k = keyframes(f, b, tau)
        f, b = f[k], b[k]
    return interpolate(f, b, np.clip(frames, f[0], f[-1]))


def _trims(m: Matching, pred_track: int, span: tuple[int, int]) -> int:
    """Ends of the ground-truth span (before its first, after its last frame) where
    ``pred_track`` goes on with boxes that pair with nothing: one trim each."""
    before = after = False
    for img, box, edit in zip(m.pred_image, m.pred_box, m.pred_edit):
        d = m.pred.detections[img]
        if edit != DELETE or d.track_id is None or int(d.track_id[box]) != pred_track:
            continue
        f = d.info.frame
        before |= f < span[0]
        after |= f > span[1]
    return int(before) + int(after)
