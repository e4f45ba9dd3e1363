"""Tracking pre-labels: give every box of a sequence a ``track_id``.

The tracker is Roboflow's ``trackers`` library (Apache-2.0: ByteTrack, BoT-SORT,
OC-SORT, SORT over supervision ``Detections``), configured by a
:class:`~autolabel.config.TrackerConfig` (``configs/trackers/*.yaml``). Each class is
tracked by its own tracker instance, so a track never changes class; ids are numbered
1.. per sequence in order of first appearance. Frames go to the tracker in frame order
with their timestamps, so sampled frames (every k-th) move the motion model by k steps.

Post-processing (all from the config, none by default): a new track is extended back
over up to ``backfill`` frames with the detections the tracker held back while it was
not yet confirmed; tracks shorter than
``min_track_length`` boxes or with a mean score below ``min_track_score`` are dropped;
gaps of at most ``fill_gaps`` frames inside a track are filled by linear interpolation
(:func:`autolabel.keyframes.interpolate`). Every output box carries
``data["detected"]``: False for a filled-in box, which no detection supports.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import numpy as np

from autolabel.config import ConfigError, TrackerConfig
from autolabel.core import Detections, Results
from autolabel.video.keyframes import interpolate
from autolabel.video.refine import RefineOptions, refine_tracks
from autolabel.video.tracks import Track, from_tracks, sequences

__all__ = ["TRACKERS", "build_tracker", "prelabel_tracks", "track"]

TRACKERS = {"bytetrack": "ByteTrackTracker", "botsort": "BoTSORTTracker", "ocsort": "OCSORTTracker",
            "sort": "SORTTracker"}


def prelabel_tracks(
    source: Any,
    detector: Any = None,
    conf: Any = None,
    tracker: TrackerConfig | str | os.PathLike | dict[str, Any] | None = None,
    **prelabel_options: Any,
) -> Results:
    """Pre-label a sequence and track its boxes: :func:`autolabel.prelabel`, then :func:`track`.

    Args:
        source: a video, a MOTChallenge folder or numbered frames (:mod:`autolabel.sources.sequences`).
        detector: anything :func:`autolabel.load_detector` accepts.
        conf: score threshold (default: the tracker's ``detection_conf``).
        tracker: tracker config (see :func:`track`).
        prelabel_options: go to :func:`autolabel.prelabel` (``iou``, ``class_map``, ``every``, ...).

    Returns:
        :class:`Results` with a ``track_id`` per box.
    """
    from autolabel.pipeline import prelabel
    from autolabel.sources import open_source

    cfg = TrackerConfig.load(tracker)
    source_keys = {"every", "every_seconds", "fps"}
    src = open_source(source, **{k: prelabel_options.pop(k) for k in source_keys & set(prelabel_options)})
    prelabel_options.setdefault("slice", None)  # tracked video: slice frames too large for the model input
    results = prelabel(src, detector, conf=cfg.detection_conf if conf is None else conf, **prelabel_options)
    return track(results, cfg, fps=getattr(src, "fps", None))


def build_tracker(config: TrackerConfig, fps: float) -> Any:
    """A fresh tracker of ``config`` for a sequence at ``fps`` frames per second.

    Raises:
        ConfigError: a setting the tracker class does not take.
    """
    import trackers

    cls = getattr(trackers, TRACKERS[config.tracker])
    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(config.settings) - set(params))
    if unknown:
        raise ConfigError(f"{config.tracker} takes no setting(s) {unknown}; it takes {sorted(set(params) - {'self'})}")
    kw = dict(config.settings)
    if "frame_rate" in params:
        kw.setdefault("frame_rate", float(fps))
    return cls(**kw)


def track(
    results: Results,
    tracker: TrackerConfig | str | os.PathLike | dict[str, Any] | None = None,
    fps: float | None = None,
    refine: RefineOptions | bool = True,
) -> Results:
    """Track the boxes of every sequence in ``results``, then refine the tracks offline.

    Args:
        results: per-frame detections of one or more sequences (``ImageInfo.frame_index``
            set; sequences told apart by the key before ``#``), at any score threshold:
            boxes below ``detection_conf`` are ignored.
        tracker: a :class:`TrackerConfig`, a YAML path or a name under ``configs/trackers/``
            (default ``bytetrack``).
        fps: frames per second (default: from the frames' timestamps, else 25).
        refine: offline refinement (:func:`autolabel.video.refine.refine_tracks`): True
            (default settings), a :class:`RefineOptions`, or False (the tracker's tracks).

    Returns:
        The same frames, each with only its tracked boxes, ``track_id`` (N,) int64 set
        and ``data["detected"]`` (N,) bool (refined: also ``raw_iou`` and ``joined``).

    Raises:
        ValueError: frames that are not video frames; ConfigError: a bad tracker config.
    """
    cfg = TrackerConfig.load(tracker)
    out: list[Detections] = []
    for name, frames in sequences(results).items():
        rate = fps or _rate(frames) or 25.0
        tracks = []
        for c in range(len(results.class_names)):
            tracks += _track_class(frames, c, cfg, rate)
        tracks = _postprocess(tracks, cfg)
        if refine is not False:
            first = frames[0].image
            size = (first.width, first.height) if first.width and first.height else None  # type: ignore[union-attr]
            tracks = refine_tracks(tracks, rate, refine if isinstance(refine, RefineOptions) else None, size)
        for new_id, t in enumerate(sorted(tracks, key=lambda t: (t.frames[0], t.track_id)), start=1):
            t.track_id = new_id
        images = [d.info for d in frames]
        out += from_tracks(tracks, images, results.class_names, results.model_id).detections
    return Results(out, results.class_names, results.model_id, list(results.failures))


def _rate(frames: list[Detections]) -> float | None:
    a, b = frames[0].info, frames[-1].info
    if a.timestamp is None or b.timestamp is None or b.timestamp <= a.timestamp:
        return None
    return (b.frame - a.frame) / (b.timestamp - a.timestamp)


def _track_class(frames: list[Detections], c: int, cfg: TrackerConfig, fps: float) -> list[Track]:
    import supervision as sv

    tr = build_tracker(cfg, fps)
    rows: dict[int, list[tuple[int, np.ndarray, float]]] = {}
    unused: list[tuple[int, np.ndarray, np.ndarray]] = []  # per frame: boxes no track took
    label = frames[0].class_names[c] if c < len(frames[0].class_names) else str(c)
    for d in frames:
        keep = np.flatnonzero((d.class_ids == c) & (d.scores >= cfg.detection_conf))
        sd = sv.Detections(xyxy=d.xyxy[keep].astype(np.float32).reshape(-1, 4),
                           confidence=d.scores[keep].astype(np.float32),
                           class_id=np.full(len(keep), c, int), data={"index": keep})
        res = tr.update(sd, timestamp=d.info.timestamp)
        f = d.info.frame
        free = set(keep.tolist())
        for idx, tid in zip(res.data.get("index", np.zeros(0, int)), res.tracker_id):
            if tid >= 0:
                rows.setdefault(int(tid), []).append((f, d.xyxy[int(idx)], float(d.scores[int(idx)])))
                free.discard(int(idx))
        unused.append((f, d.xyxy[sorted(free)], d.scores[sorted(free)]))
    for rs in rows.values():
        _backfill(rs, unused, cfg.backfill)
    return [Track(t, label, np.array([r[0] for r in rs]), np.array([r[1] for r in rs]), np.array([r[2] for r in rs]),
                  {"detected": np.ones(len(rs), bool)}) for t, rs in rows.items()]


def _backfill(rows: list[tuple[int, np.ndarray, float]], unused: list[tuple[int, np.ndarray, np.ndarray]],
              frames: int) -> None:
    """Extend a track backwards over the frames before the tracker confirmed it (ByteTrack
    and SORT give a new track an id only after ``minimum_consecutive_frames``): the
    earlier frame's unassigned detection that best overlaps the track's first box (IoU >=
    0.5), at most ``frames`` times. The detections used are removed from ``unused``."""
    from autolabel.boxes import box_iou

    position = {f: i for i, (f, _, _) in enumerate(unused)}
    for _ in range(frames):
        f0, box0 = rows[0][0], rows[0][1]
        i = position.get(f0 - 1)
        if i is None or not len(unused[i][1]):
            return
        f, boxes, scores = unused[i]
        iou = box_iou(box0[None], boxes)[0]
        j = int(iou.argmax())
        if iou[j] < 0.5:
            return
        rows.insert(0, (f, boxes[j], float(scores[j])))
        unused[i] = (f, np.delete(boxes, j, 0), np.delete(scores, j))


def _postprocess(tracks: list[Track], cfg: TrackerConfig) -> list[Track]:
    kept = [t for t in tracks if len(t) >= cfg.min_track_length and t.scores.mean() >= cfg.min_track_score]
    if cfg.fill_gaps <= 0:
        return kept
    return [_fill(t, cfg.fill_gaps) for t in kept]


def _fill(t: Track, max_gap: int) -> Track:
    gaps = np.diff(t.frames) - 1
    missing = np.concatenate([np.arange(a + 1, b) for a, b, g in zip(t.frames[:-1], t.frames[1:], gaps)
                              if 0 < g <= max_gap] or [np.zeros(0, np.int64)])
    if not len(missing):
        return t
    frames = np.concatenate([t.frames, missing])
    order = np.argsort(frames)
    boxes = np.concatenate([t.xyxy, interpolate(t.frames, t.xyxy, missing)])[order]
    scores = np.concatenate([t.scores, np.interp(missing, t.frames, t.scores)])[order]
    detected = np.concatenate([t.data["detected"], np.zeros(len(missing), bool)])[order]
    return Track(t.track_id, t.label, frames[order], boxes, scores, {"detected": detected})
