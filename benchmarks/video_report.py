"""Video report: tracking quality, per-frame against per-track savings, keyframes per track
and the routing of segments, on one MOTChallenge-style sequence with ground truth.

    python benchmarks/video_report.py [--seq ../shared/data/tud-campus] [--models yolov5n.onnx yolo11n-int8.onnx]
        [--cache /work/cache] [--out benchmarks/reports/video-tud-campus.md]

Detections are cached as ``<model>-<sequence folder>-conf0.01.json`` (COCO) under
``--cache`` when given. Prints the tables and writes them as Markdown.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import pandas as pd

from autolabel.formats import read_coco, write_coco
from autolabel.video.keyframes import keyframes
from autolabel.pipeline import prelabel
from autolabel.sources.sequences import open_sequence
from autolabel.video.eval import evaluate_tracks
from autolabel.video.tracking import track
from autolabel.video.tracks import sequences, tracks_of
from autolabel.video.routing import certify, check_frames, route_segments, segment_errors, segments
from autolabel.video.savings import video_savings

ROOT = Path(__file__).resolve().parent.parent
RAW_CONF = 0.01  # detections kept for tracking (the tracker config's detection_conf filters them)
FRAME_CONF = 0.25  # per-frame pre-labels, as `autolabel prelabel` writes them by default


def detections(seq, model: str, cache: str | None):  # type: ignore[no-untyped-def]
    stem = Path(model).stem
    path = Path(cache) / f"{stem}-{Path(seq.description.split()[-1]).name}-conf{RAW_CONF:g}.json" if cache else None
    if path is not None and path.is_file():
        return read_coco(path), None
    t = time.perf_counter()
    res = prelabel(seq, model, conf=RAW_CONF, class_map="person", progress=False)
    seconds = time.perf_counter() - t
    if path is not None:
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        write_coco(res, tmp)
        os.replace(tmp, path)
    return res, seconds


def md(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    return df.to_markdown(index=False, floatfmt=floatfmt)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", default=str(ROOT.parent / "shared" / "data" / "tud-campus"))
    ap.add_argument("--models", nargs="+", default=["yolov5n.onnx", "yolo11n-int8.onnx"])
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports" / "video-tud-campus.md"))
    args = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    seq = open_sequence(args.seq)
    gt = seq.ground_truth
    if gt is None:
        raise SystemExit(f"{args.seq}: no gt/gt.txt to evaluate against")
    out = [f"# Video pre-labels on {seq.name}: tracks, keyframes, savings, routing\n",
           f"Sequence `{seq.name}`: {len(seq)} frames at {seq.fps:g} fps, {gt.num_boxes} ground-truth boxes, "
           f"{len(tracks_of(sequences(gt)[seq.name]))} tracks. Written by `python benchmarks/video_report.py`. "
           "Class map `person`; detections at conf 0.01, tracked with the config named; per-frame pre-labels "
           f"at conf {FRAME_CONF}. Timings were taken on a shared 2-core machine and are noisy.\n"]

    # -- tracking quality ------------------------------------------------------------------
    rows, tracked = [], {}
    for model in args.models:
        raw, secs = detections(seq, model, args.cache)
        for cfg in ("bytetrack-default", "bytetrack"):
            t = track(raw, cfg, fps=seq.fps)
            r = evaluate_tracks(t, gt).iloc[0].to_dict()
            rows.append({"model": model, "tracker": cfg, **{k: r[k] for k in (
                "HOTA", "MOTA", "IDF1", "IDSW", "Frag", "MT", "ML", "CLR_FP", "CLR_FN", "gt_tracks", "pred_tracks",
                "false_tracks", "missed_tracks")}, "detect_s": secs})
            tracked[(model, cfg)] = (raw, t)
    quality = pd.DataFrame(rows)
    out += ["## Track quality (trackers.eval; TrackEval gives the same MOTA/IDF1, see tests/test_tracking.py)\n",
            "`bytetrack-default` is the library's defaults; `bytetrack` the tuned default config "
            "(configs/trackers/bytetrack.yaml). false_tracks: fewer than half the boxes pair with ground truth; "
            "missed_tracks: mostly lost (CLEAR ML). detect_s: detector seconds for the sequence (empty: cached).\n",
            md(quality), ""]

    # -- keyframes per ground-truth track ---------------------------------------------------
    gtt = tracks_of(sequences(gt)[seq.name])
    kf = pd.DataFrame([{"track": t.track_id, "frames": len(t), "keyframes (tau 0.7)": len(keyframes(t.frames, t.xyxy)),
                        "keyframes (tau 0.8)": len(keyframes(t.frames, t.xyxy, 0.8)),
                        "keyframes (tau 0.9)": len(keyframes(t.frames, t.xyxy, 0.9))} for t in gtt])
    out += ["## Keyframes per ground-truth track\n",
            "The fewest keyframes whose linear interpolation keeps IoU >= tau with every frame's box.\n",
            md(kf, ".0f"), f"\nTotal: {kf['frames'].sum()} boxes, {kf['keyframes (tau 0.7)'].sum()} keyframes at tau 0.7.\n"]

    # -- savings ---------------------------------------------------------------------------------
    srows, detail = [], None
    best = args.models[-1]
    for model in args.models:
        raw, t = tracked[(model, "bytetrack")]
        v = video_savings(t, gt, frame_pred=raw, frame_conf=FRAME_CONF)
        s = v.summary()
        srows.append({"model": model, **{k: v.seconds[k] / 60 for k in v.seconds},
                      "per-frame saved": s["per_frame_saved_fraction"],
                      "keyframes saved (no model)": s["keyframes_saved_fraction"],
                      "per-track saved vs keyframes": s["per_track_saved_fraction_vs_keyframes"],
                      "per-track saved vs per-frame scratch": s["per_track_saved_fraction_vs_per_frame"],
                      "share from interpolation": s["saved_by_interpolation_share"],
                      "share from model": s["saved_by_model_share"]})
        if model == best:
            detail = v.tracks
    sav = pd.DataFrame(srows).rename(columns={k: f"{k} (min)" for k in v.seconds})
    top = srows[-1]
    finding = (f"With `{best}`: frame by frame, the model saves {top['per-frame saved']:.0%} of the scratch time; "
               f"keyframes alone (no model) save {top['keyframes saved (no model)']:.0%}; corrected pre-label tracks "
               f"save {top['per-track saved vs per-frame scratch']:.0%} of per-frame scratch, of which "
               f"{top['share from interpolation']:.0%} comes from interpolation and {top['share from model']:.0%} "
               f"from the model ({top['per-track saved vs keyframes']:+.0%} against drawing keyframes from scratch).")
    out += ["## Per-frame against per-track savings (configs/cost/video-keyframes.yaml)\n",
            "Human minutes to label this video four ways: every frame as an image from scratch, every frame's "
            "pre-labels fixed as an image, every track drawn from scratch as keyframes, every pre-label track "
            "corrected (residual keyframes, merges, trims, deletes; a track is redrawn when that is cheaper). "
            "'share from interpolation' is (scratch per frame - scratch keyframes) / (scratch per frame - "
            "assisted per track); the model's share is the rest.\n", md(sav), "", finding, "",
            f"Per ground-truth track with `{best}` (status fixed / replaced / missed):\n", md(detail, ".1f"), ""]

    # -- routing --------------------------------------------------------------------------------
    raw, t = tracked[(best, "bytetrack")]
    routed = route_segments(segments(t))
    summary = []
    for acc in (0.7, 0.5):
        e = segment_errors(routed, t, gt, iou_accept=acc)
        for unit in (None, 24):
            c = certify(e, delta=0.1, unit_frames=unit)
            share = e.loc[e["route"] == "auto_accept", "error"].mean() if (e["route"] == "auto_accept").any() else float("nan")
            summary.append({"error = box IoU below": acc, "unit": c.unit, "units": c.units,
                            "failed units": c.failed_units, "bound (delta 0.1)": c.bound,
                            "accepted segments": c.accepted_segments, "accepted frames": c.accepted_frames,
                            "accepted segments with an error": share})
        if acc == 0.7:
            errs = e
    marks = check_frames(routed)
    counts = routed.groupby("route").agg(segments=("frames", "size"), frames=("frames", "sum")).reset_index()
    out += [f"## Routing of segments ({best}, tuned ByteTrack)\n",
            "Segments of at most 25 frames, cut where detector support changes; accepted when min score >= 0.5, "
            "every frame detected, >= 5 frames, overlap with another track < 0.3 and no track break "
            "(autolabel.video_routing.SegmentPolicy).\n", md(counts, ".0f"), "",
            md(errs.drop(columns=["sequence"]), ".2f"), "",
            f"\"Check here\" ({len(marks)} frames):\n", md(marks, ".0f"), "",
            "The bound over units (Clopper-Pearson, autolabel.routing.clopper_pearson_upper): the share of units "
            "whose accepted segments hold any error. Frames are not independent (one missed person or id switch "
            "spoils many neighbouring frames), so the units are the sequence, or 24-frame chunks as an "
            "approximation that is only as good as chunks are independent; with so few units the bound is "
            "vacuous, which is the honest answer for one 71-frame sequence.\n", md(pd.DataFrame(summary)), ""]
    text = "\n".join(out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
