"""Video report over every shared sequence with ground truth: tracking quality, box tightness,
keyframe savings, segment routing and time per frame, with refinement and slicing as an ablation.

    python benchmarks/video_report.py [--seqs ../shared/data/tud-campus ../shared/data/tud-stadtmitte]
        [--model yolo11n-int8.onnx] [--out benchmarks/reports/video-shared.md]

Detections are cached under benchmarks/.cache (git-ignored) with the seconds they took.
Slicing: the shared sequences are 640x480, which auto mode never slices (no frame is shrunk at a
640 model input), so the "sliced" rows force 320 px tiles (each seen at 2x) plus the full frame.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from autolabel.core import Results
from autolabel.detectors import load_detector
from autolabel.detectors.slicing import with_slicing
from autolabel.formats import read_coco, write_coco
from autolabel.matching import ACCEPT, match
from autolabel.pipeline import prelabel
from autolabel.sources.sequences import open_sequence
from autolabel.video.calibrate import calibrate, leave_one_out
from autolabel.video.eval import evaluate_tracks
from autolabel.video.routing import route_segments, segment_errors, segments
from autolabel.video.savings import video_savings
from autolabel.video.tracking import track

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
CONF = 0.05  # the tracker config's detection_conf (0.1) filters further


def detections(seq, model: str, sliced: bool):  # type: ignore[no-untyped-def]
    stem = f"{Path(model).stem}-{seq.name}-conf{CONF:g}{'-sliced320' if sliced else ''}"
    path, secs_path = CACHE / f"{stem}.json", CACHE / f"{stem}.seconds"
    if path.is_file() and secs_path.is_file():
        return read_coco(path), float(secs_path.read_text())
    det = with_slicing(load_detector(model), True, (320, 320)) if sliced else load_detector(model)
    t = time.perf_counter()
    res = prelabel(seq, det, conf=CONF, class_map="person", progress=False)
    secs = time.perf_counter() - t
    CACHE.mkdir(parents=True, exist_ok=True)
    write_coco(res, path)
    secs_path.write_text(f"{secs}\n")
    return res, secs


def tight_share(t: Results, gt: Results) -> float:
    m = match(t, gt, conf=None, iou_accept=0.7, iou_min=0.5)
    return float((m.pred_edit == ACCEPT).sum() / max((~m.gt_crowd).sum(), 1))


def split(r: Results, parts: int) -> list[Results]:
    """A sequence as ``parts`` sub-sequences (renamed keys), for more leave-one-out folds."""
    n = len(r.detections)
    out = []
    for k in range(parts):
        ds = r.detections[k * n // parts:(k + 1) * n // parts]
        from dataclasses import replace

        out.append(Results([replace(d, image=replace(d.image, key=d.image.key.replace("#", f"-{k}#")))  # type: ignore[type-var,union-attr]
                            for d in ds], r.class_names, r.model_id))
    return out


def large_frames(seq, model: str, frames: int = 40) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Small people in large frames (no shared sequence has them): each frame of ``seq`` shrunk to 1/3
    and set in the middle of a 1920x1080 canvas (people 40-80 px tall, 13-27 px at the 640 input),
    ground truth moved with it; detected with and without slicing, tracked and refined."""
    from dataclasses import replace

    from PIL import Image

    from autolabel.core import ImageInfo

    W, H, f = 1920, 1080, 1 / 3
    x0, y0 = (W - int(640 * f)) // 2, (H - int(480 * f)) // 2
    gt_frames = [d for d in seq.ground_truth if d.image.frame_index < frames]
    canvases = []
    for d in gt_frames:
        im = Image.open(d.image.path).convert("RGB").resize((int(640 * f), int(480 * f)), Image.Resampling.BILINEAR)
        c = np.full((H, W, 3), 114, np.uint8)
        c[y0:y0 + im.height, x0:x0 + im.width] = np.asarray(im)
        canvases.append(c)
    infos = [ImageInfo(d.image.key, W, H, None, d.image.frame_index, d.image.timestamp) for d in gt_frames]
    gt = Results([replace(d, xyxy=d.xyxy * f + [x0, y0, x0, y0], image=i) for d, i in zip(gt_frames, infos)],
                 seq.ground_truth.class_names)
    rows = []
    from autolabel.classmap import ClassMap

    for sliced in (False, True):
        det = with_slicing(load_detector(model), None if sliced else False)
        cmap = ClassMap.load("person", det.class_names)
        t0 = time.perf_counter()
        found = [cmap(d.with_image(i), 0.6) for d, i in zip(det.predict(canvases, conf=CONF), infos)]
        secs = time.perf_counter() - t0
        raw = Results(found, cmap.target_names, det.model_id)
        t = track(raw, "bytetrack", fps=seq.fps)
        q = evaluate_tracks(t, gt).iloc[0]
        m = match(t, gt, conf=None, iou_accept=0.5, iou_min=0.5)
        rows.append({"slicing": "auto (9 tiles + full)" if sliced else "off", "MOTA": q.MOTA, "IDF1": q.IDF1,
                     "GT boxes found at IoU >= 0.5": float((m.pred_edit == ACCEPT).sum() / len(m.gt_cls)),
                     "IoU>=0.7 share": tight_share(t, gt), "detect ms/frame": 1000 * secs / len(canvases)})
    return pd.DataFrame(rows)


def ablation(seqs: list, model: str) -> tuple[pd.DataFrame, dict[str, tuple[Results, Results]]]:
    """Every sequence with slicing off / forced and refinement off / on: quality, savings, time per frame."""
    rows: list[dict] = []
    refined: dict[str, tuple[Results, Results]] = {}
    for seq in seqs:
        gt = seq.ground_truth
        if gt is None:
            raise SystemExit(f"{seq.description}: no gt/gt.txt to evaluate against")
        for sliced in (False, True):
            raw, det_s = detections(seq, model, sliced)
            for refine in (False, True):
                t0 = time.perf_counter()
                t = track(raw, "bytetrack", fps=seq.fps, refine=refine)
                trk_s = time.perf_counter() - t0
                q = evaluate_tracks(t, gt).iloc[0]
                s = video_savings(t, gt).summary()
                if refine and not sliced:
                    refined[seq.name] = (t, gt)
                rows.append({"sequence": seq.name, "slicing": sliced, "refine": refine, "MOTA": q.MOTA,
                             "IDF1": q.IDF1, "IDSW": q.IDSW, "IoU>=0.7 share": tight_share(t, gt),
                             "saved vs keyframes": s["per_track_saved_fraction_vs_keyframes"],
                             "model share": s["saved_by_model_share"],
                             "detect ms/frame": 1000 * det_s / len(seq), "track+refine ms/frame": 1000 * trk_s / len(seq)})
    table = pd.DataFrame(rows)
    mean = table.groupby(["slicing", "refine"], as_index=False).mean(numeric_only=True).assign(sequence="mean")
    return pd.concat([table, mean[table.columns]], ignore_index=True), refined


def _pooled(df: pd.DataFrame) -> dict:
    """The per-sequence routing rows summed into one."""
    return {"sequence": "pooled", "segments": int(df["segments"].sum()), "accepted": int(df["accepted"].sum()),
            "accepted_errors": int(df["accepted_errors"].sum()),
            "error_share": df["accepted_errors"].sum() / max(df["accepted"].sum(), 1),
            "coverage": float((df["coverage"] * df["segments"]).sum() / df["segments"].sum())}


def routing_section(refined: dict[str, tuple[Results, Results]]) -> list[str]:
    """Segment routing on the refined tracks: the old fixed rule, the learned policy left out by sequence and sub-sequence."""
    out: list[str] = []
    tr, gts = [v[0] for v in refined.values()], [v[1] for v in refined.values()]
    rule = []
    for t, g in zip(tr, gts):
        e = segment_errors(route_segments(segments(t)), t, g, iou_accept=0.5)
        acc = e["route"] == "accept"
        rule.append({"sequence": e["sequence"].iloc[0], "segments": len(e), "accepted": int(acc.sum()),
                     "error_share": float(e.loc[acc, "error"].mean()) if acc.any() else float("nan"),
                     "coverage": float(e.loc[acc, "frames"].sum() / e["frames"].sum())})
    loo = leave_one_out(tr, gts, "video-factory-pass-90")
    subs = [s for t in tr for s in split(t, 3)]
    sub_gt = [s for g in gts for s in split(g, 3)]
    loo_sub = leave_one_out(subs, sub_gt, "video-factory-pass-90")
    pol = calibrate(tr, gts, "video-factory-pass-90")
    out += ["## Segment routing (preset video-factory-pass-90: every frame's box on the same object at IoU >= 0.5)\n",
            "Old fixed rule (min score >= 0.5, every frame detected, no break), on the refined tracks:\n",
            pd.DataFrame(rule).to_markdown(index=False, floatfmt=".3f"), "",
            "Learned policy, leave one sequence out (each sequence routed by the policy calibrated on the other):\n",
            pd.concat([loo, pd.DataFrame([_pooled(loo)])]).to_markdown(index=False, floatfmt=".3f"), "",
            "Leave one sub-sequence out (each sequence cut in 3; adjacent thirds share people, so this is optimistic):\n",
            pd.concat([loo_sub, pd.DataFrame([_pooled(loo_sub)])]).to_markdown(index=False, floatfmt=".3f"), "",
            f"Policy calibrated on both sequences: threshold {pol.threshold:.3f}; {pol.calibration['note']}\n",
            "```json\n" + json.dumps({k: v for k, v in pol.calibration.items() if k != "note"}, default=float) + "\n```\n"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seqs", nargs="+", default=[str(ROOT.parent / "shared" / "data" / s)
                                                  for s in ("tud-campus", "tud-stadtmitte")])
    ap.add_argument("--model", default=str(ROOT.parent / "shared" / "models" / "yolo11n-int8.onnx"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports" / "video-shared.md"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    seqs = [open_sequence(s) for s in args.seqs]
    table, refined = ablation(seqs, args.model)
    out = [f"# Video pre-labels on the shared sequences ({', '.join(s.name for s in seqs)})\n",
           f"Written by `python benchmarks/video_report.py`. Model `{Path(args.model).name}`, class map person, "
           "detections at conf 0.05, ByteTrack (configs/trackers/bytetrack.yaml), refinement "
           "(autolabel.video.refine) on or off. Savings: configs/cost/video-keyframes.yaml, corrected pre-label tracks "
           "imported as their own keyframes (tau 0.7). Times on a shared 2-core CPU (noisy).\n",
           "## Ablation: refinement and slicing\n", table.to_markdown(index=False, floatfmt=".3f"), ""]

    big = large_frames(seqs[-1], args.model)
    out += ["## Slicing where it is meant for: small people in large frames\n",
            f"The first 40 frames of {seqs[-1].name}, each shrunk to 1/3 and set in a 1920x1080 canvas (people "
            "40-80 px tall), ground truth moved with it; refined tracks. Auto mode slices these frames "
            "(shrunk 3x at the 640 input).\n", big.to_markdown(index=False, floatfmt=".3f"), ""]

    out += routing_section(refined)
    text = "\n".join(out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{args.out}.tmp-{os.getpid()}"
    Path(tmp).write_text(text, encoding="utf-8")
    os.replace(tmp, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
