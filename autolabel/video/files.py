"""The video commands on files: the Python twins of ``autolabel video-savings``,
``video-calibrate`` and ``video-route`` (:mod:`autolabel.cli.video`).

Track files are MOTChallenge ``.txt`` files (:func:`autolabel.formats.mot.read_mot`: any
layout; a ``.boxdata.csv`` beside it adds refinement data); a sequence with ground truth
is a MOTChallenge folder (:func:`autolabel.sources.sequences.open_sequence`: ``gt/gt.txt``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from autolabel.core import Results
from autolabel.video.calibrate import VideoPolicy, calibrate, route_tracks

__all__ = ["read_tracks", "video_savings_files", "calibrate_files", "route_file"]


def read_tracks(tracks: str | os.PathLike, sequence: str | os.PathLike | None = None) -> tuple[Results, Results | None]:
    """A MOT track file, on the frames of ``sequence`` (a MOT folder) when given, and that
    sequence's ground truth.

    Raises:
        FileNotFoundError: a missing file or folder; ValueError: a malformed file (named).
    """
    from autolabel.formats.mot import read_mot
    from autolabel.sources.sequences import open_sequence

    if not os.path.isfile(tracks):
        raise FileNotFoundError(f"{tracks}: no such track file")
    if sequence is None:
        return read_mot(tracks), None
    seq = open_sequence(str(sequence))
    if seq.ground_truth is None:
        raise ValueError(f"{sequence}: no gt/gt.txt ground truth")
    first = seq.ground_truth.detections[0].image
    frames = [(d.image.key, d.image.path, d.image.frame_index, d.image.timestamp) for d in seq.ground_truth]
    pred = read_mot(tracks, frames=frames, image_size=(first.width, first.height))  # type: ignore[union-attr]
    return pred, seq.ground_truth


def video_savings_files(ground_truth: str | os.PathLike, tracks: str | os.PathLike,
                        profile: str | os.PathLike | None = None) -> dict[str, Any]:
    """Price labeling a sequence four ways with its pre-label tracks (:func:`autolabel.video.savings.video_savings`).

    Returns:
        JSON-ready: ``seconds`` (the four costs: ``scratch_per_frame``,
        ``assisted_per_frame``, ``scratch_keyframes``, ``assisted_per_track``),
        ``saved_vs_keyframes`` (1 - assisted per track / scratch keyframes),
        ``model_share`` (the model's share of the saving over per-frame scratch, the rest
        is interpolation's), and the full summary.
    """
    from autolabel.video.savings import video_savings

    pred, gt = read_tracks(tracks, ground_truth)
    v = video_savings(pred, gt, str(profile) if profile is not None else None)  # type: ignore[arg-type]
    s = v.summary()
    return {"sequence": str(ground_truth), "tracks": str(tracks), "seconds": v.seconds,
            "saved_vs_keyframes": s["per_track_saved_fraction_vs_keyframes"], "model_share": s["saved_by_model_share"],
            "summary": s}


def calibrate_files(sequences: Sequence[str | os.PathLike], tracks: Sequence[str | os.PathLike],
                    config: str | os.PathLike | None = None) -> VideoPolicy:
    """Fit a segment-routing policy (:func:`autolabel.video.calibrate.calibrate`) on MOT
    folders with ground truth and their track files, given in the same order.

    Raises:
        ValueError: unequal numbers of sequences and track files.
    """
    if len(sequences) != len(tracks):
        raise ValueError(f"{len(sequences)} sequences but {len(tracks)} track files: give one track file per sequence")
    pairs = [read_tracks(t, s) for s, t in zip(sequences, tracks)]
    return calibrate([p for p, _ in pairs], [g for _, g in pairs], config)  # type: ignore[misc]


def route_file(tracks: str | os.PathLike, policy: str | os.PathLike | VideoPolicy, out_dir: str | os.PathLike) -> list[str]:
    """Route a MOT track file's segments; writes ``segments.csv`` (``track_id,start,end,route``,
    frames 1-based and inclusive as in MOT, then ``sequence``, ``frames`` and ``p_hold``) and
    ``check_frames.csv`` (``frame,track_id,reason``, 1-based) into ``out_dir``.

    Returns:
        The written paths.
    """
    from autolabel.io.files import atomic_write

    pol = policy if isinstance(policy, VideoPolicy) else VideoPolicy.load(policy)
    pred, _ = read_tracks(tracks)
    segs, marks = route_tracks(pred, pol)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    segs = segs.assign(start=segs["start"] + 1, end=segs["end"] + 1)
    marks = marks.assign(frame=marks["frame"] + 1)
    cols = ["track_id", "start", "end", "route", "sequence", "frames", "p_hold"]
    a = atomic_write(out / "segments.csv", segs[cols].to_csv(index=False))
    b = atomic_write(out / "check_frames.csv", marks[["frame", "track_id", "reason", "sequence"]].to_csv(index=False))
    return [str(a), str(b)]
