"""Keyframes: the fewest boxes whose linear interpolation reproduces a track.

Annotation tools for video (CVAT, VATIC, Label Studio's video labeling) store a track
as keyframes and interpolate the box linearly between them, corner by corner. Given a
track's per-frame boxes, :func:`keyframes` picks the fewest frames such that the
interpolated box stays within IoU >= ``tau`` (default 0.7, :data:`TAU`) of the true box
on *every* frame; :func:`expand` is the reverse. A gap in the frames (the object is out
of view) splits the track into runs: each run starts and ends with a keyframe and
nothing is interpolated across the gap (CVAT marks the frame after a run ``outside``).

**Residual keyframes** (:func:`residual_keyframes`): the edits a person makes to a
pre-labeled track. The pre-label stays where it is good enough; the person sets the
correction (true box - pre-label) on keyframes and the tool interpolates the
*correction* between them (zero correction outside the edited span). The count is the
fewest such keyframes that bring every frame within IoU >= ``tau``; a good pre-label
needs none.

The search is exact (a shortest path over frames, O(n²) interpolation checks per run,
vectorised per start frame), not greedy: the farthest reachable keyframe is not always
on a shortest path because an interpolation can fail in the middle and hold again later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autolabel.boxes import paired_iou

__all__ = ["TAU", "interpolate", "keyframes", "expand", "residual_keyframes", "runs", "track_keyframes",
           "track_from_keyframes", "KeyframeTrack"]

TAU = 0.7  # IoU every interpolated frame must keep with the true box


def interpolate(frames: np.ndarray, xyxy: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Boxes at frames ``at``, linearly interpolated corner by corner between ``frames``.

    Args:
        frames: (k,) increasing frame indices of the known boxes.
        xyxy: (k, 4) boxes at those frames.
        at: (m,) frame indices inside ``[frames[0], frames[-1]]``.

    Returns:
        (m, 4) float64 boxes.
    """
    f = np.asarray(frames, np.float64)
    b = np.asarray(xyxy, np.float64)
    return np.stack([np.interp(np.asarray(at, np.float64), f, b[:, j]) for j in range(4)], axis=1)


def runs(frames: np.ndarray, state: np.ndarray | None = None) -> list[slice]:
    """Slices of ``frames`` that are contiguous (consecutive frame indices) and, when
    ``state`` (n,) is given, keep one value of it (e.g. ``occluded``)."""
    frames = np.asarray(frames)
    step = np.diff(frames) != 1
    if state is not None:
        step |= np.asarray(state)[1:] != np.asarray(state)[:-1]
    cut = np.flatnonzero(step) + 1
    edges = [0, *cut.tolist(), len(frames)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _shortest(target: np.ndarray, base: np.ndarray | None, tau: float, max_span: int) -> list[int]:
    """Keyframe positions (indices into ``target``) of one contiguous run.

    ``base`` None: plain keyframes (first and last frame always keyframes). Otherwise
    residual keyframes, between virtual zero-correction anchors before and after the run."""
    n = len(target)
    resid = target if base is None else target - base
    start, end = (0, n - 1) if base is None else (-1, n)
    padded = np.zeros((n + 2, 4))
    padded[1:n + 1] = resid  # node v has value padded[v + 1] (virtual nodes -1 and n: zero)
    best = np.full(n + 2, np.inf)
    prev = np.full(n + 2, -2, np.int64)
    best[start + 1] = 0
    for i in range(start, end):
        if not np.isfinite(best[i + 1]):
            continue
        js = np.arange(i + 1, min(end, i + max_span) + 1)
        ks = np.arange(max(i + 1, 0), min(js[-1], n))  # real frames strictly inside the longest span
        ok = np.ones(len(js), bool)
        if len(ks):
            jj, kk = np.meshgrid(js, ks, indexing="ij")
            t = ((kk - i) / (jj - i))[..., None]
            box = padded[i + 1] * (1 - t) + padded[jj + 1] * t
            if base is not None:
                box = box + base[kk]
            iou = paired_iou(box.reshape(-1, 4), np.broadcast_to(target[ks], box.shape).reshape(-1, 4))
            bad = (iou.reshape(box.shape[:2]) < tau) & (kk < jj)
            ok = ~bad.any(1)
        cost = best[i + 1] + np.where((base is not None) & (js == end), 0, 1)
        better = ok & (cost < best[js + 1])
        best[js[better] + 1] = cost[better]
        prev[js[better] + 1] = i
    path, k = [], end
    while k != start:
        path.append(int(k))
        k = int(prev[k + 1])
    if base is None:
        path.append(start)
    return sorted(p for p in path if 0 <= p < n)


def keyframes(frames: np.ndarray, xyxy: np.ndarray, tau: float = TAU, max_span: int = 250,
              state: np.ndarray | None = None) -> np.ndarray:
    """The fewest keyframes whose interpolation keeps IoU >= ``tau`` on every frame.

    Args:
        frames: (n,) increasing frame indices of one track (gaps split it into runs).
        xyxy: (n, 4) its boxes in pixels.
        tau: IoU every frame must keep with the interpolated box, in (0, 1].
        max_span: longest interpolation span considered, in frames (bounds the search).
        state: (n,) per-frame attribute that tools copy from keyframe to keyframe
            (``occluded``): where it changes, both frames become keyframes.

    Returns:
        (k,) int64 positions into ``frames`` of the keyframes (every run's first and last frame among them).

    Raises:
        ValueError: ``tau`` outside (0, 1] or frames and boxes of different lengths.
    """
    frames, xyxy = _check(frames, xyxy, tau)
    out: list[int] = []
    for r in runs(frames, state):
        out += [r.start + p for p in _shortest(xyxy[r], None, tau, max_span)]
    return np.array(sorted(set(out)), np.int64)


def residual_keyframes(frames: np.ndarray, xyxy: np.ndarray, base: np.ndarray, tau: float = TAU,
                       max_span: int = 250) -> np.ndarray:
    """The fewest correction keyframes that bring a pre-labeled track within IoU >= ``tau``.

    Args:
        frames: (n,) increasing frame indices of the true track.
        xyxy: (n, 4) the true boxes.
        base: (n, 4) the pre-label on the same frames.
        tau: as :func:`keyframes`.
        max_span: as :func:`keyframes`.

    Returns:
        (k,) int64 positions into ``frames`` where a person sets a correction (empty
        when the pre-label is within ``tau`` everywhere).
    """
    frames, xyxy = _check(frames, xyxy, tau)
    base = np.asarray(base, np.float64).reshape(-1, 4)
    if base.shape != xyxy.shape:
        raise ValueError(f"base has shape {base.shape}, the track {xyxy.shape}")
    out: list[int] = []
    for r in runs(frames):
        if (paired_iou(base[r], xyxy[r]) >= tau).all():
            continue
        out += [r.start + p for p in _shortest(xyxy[r], base[r], tau, max_span)]
    return np.array(sorted(set(out)), np.int64)


def expand(frames: np.ndarray, xyxy: np.ndarray, outside: np.ndarray | None = None,
           last_frame: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame boxes from keyframes: the reverse of :func:`keyframes`, as CVAT expands a track.

    Between a visible keyframe and the next keyframe the box is interpolated linearly
    (towards the next keyframe's box even when that one is ``outside``); from an
    ``outside`` keyframe to the next keyframe there is no box; after the last keyframe,
    if visible, its box holds until ``last_frame``.

    Args:
        frames: (k,) increasing keyframe indices.
        xyxy: (k, 4) keyframe boxes.
        outside: (k,) bool, True where the object is out of view from that keyframe on.
        last_frame: the sequence's last frame index (default: the last keyframe).

    Returns:
        ``(frames, boxes)``: every frame with a box, (n,) int64, and its (n, 4) float64 box.
    """
    f, b = _check(frames, xyxy, 1.0)
    hidden = np.zeros(len(f), bool) if outside is None else np.asarray(outside, bool)
    all_f, all_b = [], []
    for i in np.flatnonzero(~hidden):
        stop = f[i + 1] if i + 1 < len(f) else max(f[i], f[i] if last_frame is None else last_frame) + 1
        span = np.arange(f[i], stop)
        pair = slice(i, i + 2) if i + 1 < len(f) else slice(i, i + 1)
        all_f.append(span)
        all_b.append(interpolate(f[pair], b[pair], span))
    if not all_f:
        return np.zeros(0, np.int64), np.zeros((0, 4))
    return np.concatenate(all_f), np.concatenate(all_b)


def _check(frames: np.ndarray, xyxy: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < tau <= 1:
        raise ValueError(f"tau must be in (0, 1], got {tau}")
    f = np.asarray(frames, np.int64)
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    if len(f) != len(b):
        raise ValueError(f"{len(f)} frames but {len(b)} boxes")
    if len(f) > 1 and (np.diff(f) <= 0).any():
        raise ValueError("frame indices must be strictly increasing")
    return f, b


@dataclass(eq=False)
class KeyframeTrack:
    """A track as annotation tools store it: keyframes, each visible or ``outside``.

    Attributes:
        frames: (k,) int64 keyframe indices, increasing.
        xyxy: (k, 4) boxes (an ``outside`` keyframe repeats the last visible box).
        scores: (k,) scores.
        outside: (k,) bool: the object is out of view from this keyframe to the next.
        occluded: (k,) bool, held from a keyframe to the next.
    """

    frames: np.ndarray
    xyxy: np.ndarray
    scores: np.ndarray
    outside: np.ndarray
    occluded: np.ndarray


def track_keyframes(frames: np.ndarray, xyxy: np.ndarray, scores: np.ndarray, occluded: np.ndarray | None = None,
                    last_frame: int | None = None, tau: float | None = TAU) -> KeyframeTrack:
    """Keyframes of a per-frame track, with an ``outside`` keyframe after each visible run
    that ends before ``last_frame`` (CVAT's convention).

    Args:
        frames, xyxy, scores: the track's (n,) frames, (n, 4) boxes and (n,) scores.
        occluded: (n,) bool (default all False); changes become keyframes.
        last_frame: the sequence's last frame index (default: the track's last frame).
        tau: as :func:`keyframes`; ``None`` makes every frame a keyframe (exact boxes).

    Returns:
        The :class:`KeyframeTrack`.
    """
    f, b = _check(frames, xyxy, 1.0 if tau is None else tau)
    occ = np.zeros(len(f), bool) if occluded is None else np.asarray(occluded, bool)
    keep = np.arange(len(f)) if tau is None else keyframes(f, b, tau, state=occ)
    last = int(f[-1]) if last_frame is None else int(last_frame)
    ends = [r.stop - 1 for r in runs(f) if f[r.stop - 1] < last]
    kf, kb = f[keep].tolist(), b[keep].tolist()
    ks, ko = np.asarray(scores, np.float64)[keep].tolist(), occ[keep].tolist()
    out = [False] * len(kf)
    for e in ends:  # hidden from the frame after the run until the next keyframe
        kf.append(int(f[e]) + 1)
        kb.append(b[e].tolist())
        ks.append(float(scores[e]))
        ko.append(bool(occ[e]))
        out.append(True)
    order = np.argsort(kf, kind="stable")
    return KeyframeTrack(np.array(kf, np.int64)[order], np.array(kb).reshape(-1, 4)[order],
                         np.array(ks)[order], np.array(out, bool)[order], np.array(ko, bool)[order])


def track_from_keyframes(k: KeyframeTrack, last_frame: int | None = None) -> tuple[np.ndarray, ...]:
    """Per-frame ``(frames, xyxy, scores, occluded)`` of a :class:`KeyframeTrack` (see :func:`expand`);
    scores are interpolated like the boxes, ``occluded`` held from each keyframe."""
    f, b = expand(k.frames, k.xyxy, k.outside, last_frame)
    scores = np.interp(f, k.frames, k.scores) if len(f) else np.zeros(0)
    pos = np.searchsorted(k.frames, f, side="right") - 1
    return f, b, scores, k.occluded[pos] if len(f) else np.zeros(0, bool)
