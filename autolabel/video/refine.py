"""Offline track refinement: the whole sequence is known, so use it after the online tracker.

An online tracker (:mod:`autolabel.video.tracking`) decides frame by frame; an offline
pass sees every frame of a track at once, as the auto-labelers of driving programs do.
:func:`refine_tracks` runs four steps on one sequence's tracks:

1. **Stitch** fragments of one object across gaps: a track that ends and another that
   starts up to ``stitch_gap_s`` seconds later are joined when each one's motion,
   extrapolated across the gap (a line fitted to its last / first ``motion_frames``
   boxes), lands within ``stitch_distance`` box heights of the other's end box centre,
   and their box heights agree within ``stitch_size``. Pairs are chosen by one optimal assignment per round
   (``scipy.optimize.linear_sum_assignment``), until no pair is left.
2. **Drop** short, unsure tracks: fewer than ``min_frames`` detected boxes and a mean
   score below ``min_score``.
3. **Smooth** every track's boxes (centre x, centre y, log width, log height, each a
   function of time in seconds) with a penalised cubic smoothing spline
   (``scipy.interpolate.make_smoothing_spline``), weighted by the detection scores and
   made robust by two reweighting rounds (Tukey's biweight on the residuals), so that a
   box swallowed by a neighbour or cut by an occluder pulls the track little. The
   detector's frame-to-frame jitter averages out; the box follows the object.
4. **Fill** gaps of up to ``fill_gap_s`` seconds from the same spline (not a straight
   line between the gap's ends): the boxes filled in carry ``detected=False``.
5. **Trim exits**: at each end of a track, boxes that touch the frame's border and are
   narrower (left/right border) or shorter (top/bottom) than ``exit_ratio`` of the
   track's median detected size are cut: the object is mostly outside the frame. Such a
   box pairs with no ground truth at IoU 0.5 whichever way it is annotated (a box
   stopped at the border when the annotation stops, or IoU <= ``exit_ratio`` with a box
   extended beyond it), so a person would only delete it.

Why a spline and not a Kalman (RTS) smoother: both are linear smoothers of the same
kind (a cubic smoothing spline is the RTS smoother of an integrated random walk), but
scipy's spline is maintained, needs no noise matrices tuned per frame rate (the
penalty is in seconds), and handles irregular frames and gaps natively; filterpy's
RTS smoother is unmaintained (last release 2018). The reweighting loop is ours:
scipy's spline takes weights but has no robust loss.

Per-box ``Track.data`` after refinement (read by :mod:`autolabel.video.routing`):
``detected`` (a detection supports the box), ``raw_iou`` (IoU of the smoothed box with
the detection it smooths; 0 where none), ``joined`` (the box is within ``motion_frames``
frames of a stitch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from autolabel.boxes import paired_iou
from autolabel.video.tracks import Track

__all__ = ["RefineOptions", "refine_tracks"]


@dataclass(frozen=True)
class RefineOptions:
    """Settings of :func:`refine_tracks` (times in seconds, so they hold at any frame rate).

    Attributes:
        stitch_gap_s: longest gap between two fragments that may be joined.
        stitch_distance: largest distance between an extrapolated and the observed box centre, in box heights.
        stitch_size: largest ratio between the fragments' end box heights.
        motion_frames: boxes at each fragment's end that fit its motion line.
        min_frames: tracks with fewer detected boxes than this ...
        min_score: ... and a mean score below this are dropped.
        smooth_position: spline penalty of the box centre, in (seconds^3); larger is smoother.
        smooth_size: spline penalty of log width and log height.
        fill_gap_s: longest gap inside a track that is filled in.
        exit_ratio: end boxes on the border smaller than this share of the track's size are cut.
    """

    stitch_gap_s: float = 1.2
    stitch_distance: float = 0.2
    stitch_size: float = 1.5
    motion_frames: int = 10
    min_frames: int = 8
    min_score: float = 0.45
    smooth_position: float = 0.015
    smooth_size: float = 0.1
    fill_gap_s: float = 1.2
    exit_ratio: float = 0.5


def refine_tracks(tracks: list[Track], fps: float, options: RefineOptions | None = None,
                  frame_size: tuple[int, int] | None = None) -> list[Track]:
    """Stitch, drop, smooth and fill one sequence's tracks (see the module docs).

    Args:
        tracks: the online tracker's tracks of one sequence (any classes); boxes with
            ``data["detected"]`` False (filled in by the tracker) are discarded first.
        fps: frames per second of the sequence.
        options: the settings (default :class:`RefineOptions`).
        frame_size: ``(width, height)`` in pixels, for trimming exits (None: no trimming).

    Returns:
        New tracks (ids kept from the earliest fragment), each with ``data`` keys
        ``detected``, ``raw_iou`` and ``joined``.
    """
    o = options or RefineOptions()
    raw = [_detected_only(t) for t in tracks]
    raw = [t for t in raw if len(t)]
    joined = _stitch(raw, fps, o)
    kept = [t for t in joined if len(t) >= o.min_frames or t.scores.mean() >= o.min_score]
    out = [_smooth_fill(t, fps, o) for t in kept]
    if frame_size is not None:
        out = [x for x in (_trim_exits(t, frame_size, o.exit_ratio) for t in out) if len(x)]
    return out


def _trim_exits(t: Track, size: tuple[int, int], ratio: float) -> Track:
    """Step 5 of the module docs."""
    w, h = size
    b = t.xyxy
    det = t.data["detected"]
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    mw, mh = np.median(bw[det]), np.median(bh[det])
    side = ((b[:, 0] <= 2) | (b[:, 2] >= w - 2)) & (bw < ratio * mw)
    top = ((b[:, 1] <= 2) | (b[:, 3] >= h - 2)) & (bh < ratio * mh)
    out = side | top
    a = int(np.argmin(out)) if not out.all() else len(t)  # first box kept from the start
    z = len(t) - int(np.argmin(out[::-1])) if not out.all() else a  # one past the last kept
    if a == 0 and z == len(t):
        return t
    return replace(t, frames=t.frames[a:z], xyxy=b[a:z], scores=t.scores[a:z],
                   data={k: v[a:z] for k, v in t.data.items()})


def _detected_only(t: Track) -> Track:
    keep = t.data.get("detected", np.ones(len(t), bool)).astype(bool)
    data = {"joined": np.zeros(int(keep.sum()), bool)}
    if "joined" in t.data:
        data["joined"] = t.data["joined"][keep].astype(bool)
    return Track(t.track_id, t.label, t.frames[keep], t.xyxy[keep], t.scores[keep], data)


def _motion(t: Track, at: int, n: int, tail: bool) -> np.ndarray:
    """The box at frame ``at`` extrapolated from a line through ``t``'s last (tail) or
    first ``n`` boxes (centre and size; a least-squares fit, robust enough on a few frames)."""
    sl = slice(-n, None) if tail else slice(0, n)
    f, b = t.frames[sl].astype(float), t.xyxy[sl]
    z = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    if len(f) < 3:
        c = z[-1] if tail else z[0]
    else:
        coef = np.polyfit(f - f.mean(), z, 1)
        c = coef[0] * (at - f.mean()) + coef[1]
        c[2:] = z[-1, 2:] if tail else z[0, 2:]  # size: the end box's, not extrapolated
    return np.array([c[0] - c[2] / 2, c[1] - c[3] / 2, c[0] + c[2] / 2, c[1] + c[3] / 2])


def _link_cost(a: Track, b: Track, max_gap: int, o: RefineOptions) -> float:
    """Cost of ``a`` continuing as ``b`` (inf when gated out): the larger of the two
    extrapolation errors, each the distance between the extrapolated and the observed box
    centre over the larger box height (centres, not IoU: an occluder that cuts a fragment's
    end box changes its size far more than its centre)."""
    gap = int(b.frames[0] - a.frames[-1])
    if a.label != b.label or gap < 1 or gap > max_gap:
        return np.inf
    ha, hb = a.xyxy[-1, 3] - a.xyxy[-1, 1], b.xyxy[0, 3] - b.xyxy[0, 1]
    if max(ha, hb) > o.stitch_size * max(min(ha, hb), 1e-6):
        return np.inf

    def miss(pred: np.ndarray, seen: np.ndarray) -> float:
        d = np.hypot((pred[0] + pred[2] - seen[0] - seen[2]) / 2, (pred[1] + pred[3] - seen[1] - seen[3]) / 2)
        return float(d / max(pred[3] - pred[1], seen[3] - seen[1], 1e-6))

    worst = max(miss(_motion(a, int(b.frames[0]), o.motion_frames, True), b.xyxy[0]),
                miss(_motion(b, int(a.frames[-1]), o.motion_frames, False), a.xyxy[-1]))
    return np.inf if worst > o.stitch_distance else worst + 0.1 * gap / max_gap


def _join(a: Track, b: Track, n: int) -> Track:
    ja, jb = a.data["joined"].copy(), b.data["joined"].copy()
    ja[-n:] = True
    jb[:n] = True
    return Track(min(a.track_id, b.track_id), a.label, np.concatenate([a.frames, b.frames]),
                 np.concatenate([a.xyxy, b.xyxy]), np.concatenate([a.scores, b.scores]),
                 {"joined": np.concatenate([ja, jb])})


def _stitch(tracks: list[Track], fps: float, o: RefineOptions) -> list[Track]:
    """Join fragments by rounds of optimal assignment (module docs, step 1)."""
    from scipy.optimize import linear_sum_assignment

    max_gap = max(1, int(round(o.stitch_gap_s * fps)))
    tracks = sorted(tracks, key=lambda t: (int(t.frames[0]), t.track_id))
    while len(tracks) > 1:
        cost = np.array([[_link_cost(a, b, max_gap, o) for b in tracks] for a in tracks])
        finite = np.isfinite(cost)
        if not finite.any():
            break
        rows, cols = linear_sum_assignment(np.where(finite, cost, 1e6))
        pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if finite[r, c]]
        nxt = {r: c for r, c in pairs}
        heads = set(nxt) - set(nxt.values())
        used: set[int] = set()
        out = []
        for h in sorted(heads):  # follow each chain a -> b -> c once
            t, i = tracks[h], h
            used.add(h)
            while i in nxt:
                i = nxt[i]
                t = _join(t, tracks[i], o.motion_frames)
                used.add(i)
            out.append(t)
        out += [t for i, t in enumerate(tracks) if i not in used]
        tracks = sorted(out, key=lambda t: (int(t.frames[0]), t.track_id))
    return tracks


def _to_state(b: np.ndarray) -> np.ndarray:
    w, h = np.maximum(b[:, 2] - b[:, 0], 1e-3), np.maximum(b[:, 3] - b[:, 1], 1e-3)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, np.log(w), np.log(h)], 1)


def _to_box(z: np.ndarray) -> np.ndarray:
    w, h = np.exp(z[:, 2]), np.exp(z[:, 3])
    return np.stack([z[:, 0] - w / 2, z[:, 1] - h / 2, z[:, 0] + w / 2, z[:, 1] + h / 2], 1)


def _fit(x: np.ndarray, z: np.ndarray, w: np.ndarray, lam: tuple[float, ...], at: np.ndarray) -> np.ndarray:
    """Robust weighted smoothing splines of each column of ``z`` (n, 4), evaluated at ``at``.

    Two rounds of Tukey-biweight reweighting on residuals scaled by their median
    absolute deviation (scipy has no robust loss for splines)."""
    from scipy.interpolate import make_smoothing_spline

    out = np.empty((len(at), z.shape[1]))
    for j in range(z.shape[1]):
        wj = w.copy()
        for _ in range(3):
            s = make_smoothing_spline(x, z[:, j], w=wj, lam=lam[j])
            r = z[:, j] - s(x)
            scale = 4.685 * max(1.4826 * np.median(np.abs(r)), 1e-6 if j < 2 else 1e-4)
            wj = w * np.clip(1 - (r / scale) ** 2, 0, None) ** 2 + 1e-6
        out[:, j] = s(at)
    return out


def _smooth_fill(t: Track, fps: float, o: RefineOptions) -> Track:
    """Steps 3 and 4 of the module docs on one track."""
    gaps = np.diff(t.frames) - 1
    max_fill = int(round(o.fill_gap_s * fps))
    missing = [np.arange(a + 1, b) for a, b, g in zip(t.frames[:-1], t.frames[1:], gaps) if 0 < g <= max_fill]
    fill = np.concatenate(missing) if missing else np.zeros(0, np.int64)
    frames = np.concatenate([t.frames, fill])
    order = np.argsort(frames)
    detected = np.concatenate([np.ones(len(t), bool), np.zeros(len(fill), bool)])[order]
    frames = frames[order]
    joined = np.interp(frames, t.frames, t.data["joined"].astype(float)) >= 1  # a filled gap between joined ends
    if len(t) >= 5:  # a cubic smoothing spline needs 5 points
        w = np.clip(t.scores, 0.05, 1.0)
        lam = (o.smooth_position, o.smooth_position, o.smooth_size, o.smooth_size)
        boxes = _to_box(_fit(t.frames / fps, _to_state(t.xyxy), w / w.mean(), lam, frames / fps))
    else:
        from autolabel.video.keyframes import interpolate

        boxes = interpolate(t.frames, t.xyxy, frames)
    raw_iou = np.zeros(len(frames))
    raw_iou[detected] = paired_iou(boxes[detected], t.xyxy)
    scores = np.interp(frames, t.frames, t.scores)
    data = {"detected": detected, "raw_iou": raw_iou, "joined": joined}
    return replace(t, frames=frames, xyxy=boxes, scores=scores, data=data)
