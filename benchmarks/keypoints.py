"""Keypoints on all 800 coco-person images: our pose decode against a plain reference decode
(keypoint OKS AP under pycocotools), and the keypoint labeling time it saves.

1. ``autolabel prelabel coco-person/images --model yolo11n-pose.onnx --format coco --conf 0.001``
   (cached in ``benchmarks/.cache/kp-prelabel``; ``--fresh`` runs it again);
2. the reference decode of ``tests/pose_reference.py`` (OpenCV letterbox 640, onnxruntime,
   ``cv2.dnn.NMSBoxes`` at IoU 0.6), independent of autolabel;
3. pycocotools keypoint AP / AP50 of both on ``person_keypoints.json``;
4. ``autolabel.savings.keypoints.keypoint_savings`` with ``configs/cost/keypoints.yaml``;
5. keypoint evidence: how well the routing ``keypoint_features`` predict each image's share of
   keypoint labeling time still needed (5-fold cross-validated gradient boosting on the box
   ``IMAGE_FEATURES`` with and without them), and the audit's keypoint checks on injected errors
   (50 persons' keypoints moved off their box by 1.5 box widths, 50 clearly seen persons'
   keypoints deleted) in the real labels.

The reference detections are cached in ``benchmarks/.cache/kp-reference.json`` (``--fresh`` redoes both).

    python benchmarks/keypoints.py [--fresh]

Writes ``benchmarks/reports/keypoints.md`` and ends with ``ap_ours=.. ap_ref=.. saved=..``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
PERSON = SHARED / "data" / "coco-person"
MODEL = SHARED / "models" / "yolo11n-pose.onnx"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _evidence(pred, gt, kp) -> list[str]:  # type: ignore[no-untyped-def]
    """Routing keypoint features (cross-validated) and the audit's keypoint checks on injected errors."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_score

    from autolabel.audit.keypoints import keypoint_label_issues
    from autolabel.matching import align_classes
    from autolabel.routing import IMAGE_FEATURES, image_features, keypoint_features

    s = kp.summary
    pred, gt = align_classes(pred, gt)
    per = kp.per_image
    y = (per["assisted_s"] / per["scratch_s"].clip(lower=1e-9)).to_numpy()  # share of the labeling time still needed
    box = image_features(pred, s["conf"], 0.001)
    both = box.join(keypoint_features(pred, s["conf"], s["visibility_threshold"]))
    model = HistGradientBoostingRegressor(max_iter=200, random_state=0)
    r2 = {name: cross_val_score(model, x.to_numpy(), y, cv=5, scoring="r2") for name, x in
          (("box features", box[list(IMAGE_FEATURES)]), ("box + keypoint features", both))}
    lines = ["## Keypoint evidence", "",
             "Routing: 5-fold cross-validated R² of gradient boosting predicting each image's share of the",
             "labeling time still needed with pre-labels (assisted / scratch seconds), at the thresholds above:", "",
             "| features | R² (mean ± sd over folds) |", "| --- | --- |"]
    lines += [f"| {k} | {v.mean():.3f} ± {v.std():.3f} |" for k, v in r2.items()]
    rng = np.random.default_rng(0)
    clean = keypoint_label_issues(gt, pred)
    flagged = set(zip(clean["file_name"], clean["box"]))
    cands = [(i, j) for i, d in enumerate(gt) for j in range(len(d)) if not d.crowd[j]
             and (d.keypoints[j, :, 2] > 0).sum() >= 12 and (d.image.file_name, j) not in flagged]
    picks = [cands[k] for k in rng.choice(len(cands), 100, replace=False)]
    dets = list(gt)
    for n, (i, j) in enumerate(picks):
        k = dets[i].keypoints.copy()
        if n < 50:  # moved off the box
            k[j, :, 0] += np.where(k[j, :, 2] > 0, 1.5 * (dets[i].xyxy[j, 2] - dets[i].xyxy[j, 0]), 0)
        else:  # left without keypoints
            k[j] = 0
        dets[i] = replace(dets[i], keypoints=k)
    bad = keypoint_label_issues(replace(gt, detections=dets), pred)
    names = [(gt[i].image.file_name, j) for i, j in picks]
    out = bad[bad["issue"] == "keypoints_outside_box"]
    top = set(zip(out["file_name"][:50], out["box"][:50]))
    miss = set(zip(*bad.loc[bad["issue"] == "missing_keypoints", ["file_name", "box"]].to_numpy().T))
    n_clean = clean["issue"].value_counts().to_dict()
    lines += ["", "Audit (`autolabel.audit.keypoints.keypoint_label_issues`, model pre-labels at box threshold 0.25):", "",
              f"- on the labels as they are: {n_clean.get('keypoints_outside_box', 0)} persons with keypoints outside "
              f"their box, {n_clean.get('missing_keypoints', 0)} persons without keypoints that the model sees clearly "
              "(>= 8 keypoints shown; COCO leaves keypoints off some persons by design);",
              f"- 50 persons' keypoints moved off their box by 1.5 box widths: {len(top & set(names[:50]))} of 50 in the "
              "top 50 `keypoints_outside_box`;",
              f"- 50 persons' keypoints deleted: {len(miss & set(names[50:]))} of 50 flagged `missing_keypoints` "
              f"({len(miss)} flags in all).", ""]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fresh", action="store_true", help="pre-label again instead of reading the cache")
    args = ap.parse_args()
    from pose_reference import keypoint_ap, ours_as_dets, reference_pose

    from autolabel.formats import read_coco
    from autolabel.savings.keypoints import keypoint_savings

    out = ROOT / "benchmarks" / ".cache" / "kp-prelabel"
    cmd = [sys.executable, "-m", "autolabel.cli", "prelabel", str(PERSON / "images"), "--model", str(MODEL),
           "--format", "coco", "--conf", "0.001", "--out", str(out)] + (["--no-resume"] if args.fresh else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    ours_s = time.perf_counter() - t0
    gt_file = PERSON / "person_keypoints.json"
    ours = keypoint_ap(gt_file, ours_as_dets(out / "annotations.json"))
    cache = ROOT / "benchmarks" / ".cache" / "kp-reference.json"
    t0 = time.perf_counter()
    if args.fresh or not cache.is_file():
        cache.write_text(json.dumps(reference_pose(MODEL, sorted((PERSON / "images").glob("*.jpg")))))
    ref = keypoint_ap(gt_file, json.loads(cache.read_text()))
    ref_s = time.perf_counter() - t0
    pred, gt = read_coco(out / "annotations.json"), read_coco(gt_file)
    kp = keypoint_savings(pred, gt)
    s = kp.summary
    lo, hi = s["saved_fraction_ci95"]
    sweep = kp.sweep
    at_box = sweep[sweep["conf"] == s["conf"]].sort_values("visibility_threshold")
    lines = [
        "# Keypoints: yolo11n-pose.onnx on coco-person (800 images, 1,854 persons with keypoints)",
        "",
        f"Command: `python benchmarks/keypoints.py` ({time.strftime('%Y-%m-%d')}, 2-core CPU).",
        "",
        "## Accuracy: ours against a plain reference decode (pycocotools keypoint OKS)",
        "",
        "| decode | keypoint AP | AP50 |",
        "| --- | --- | --- |",
        f"| `autolabel prelabel --conf 0.001` (ours; {ours_s:.0f} s with the cache check) | {ours[0]:.3f} | {ours[1]:.3f} |",
        f"| reference: OpenCV letterbox 640, cv2.dnn.NMSBoxes 0.6 ({ref_s:.0f} s incl. eval) | {ref[0]:.3f} | {ref[1]:.3f} |",
        "",
        f"Difference: {ours[0] - ref[0]:+.4f} AP, {ours[1] - ref[1]:+.4f} AP50. `area` of persons without an original",
        "COCO segment is box area x 0.53 (see `../shared/data/SOURCES.md`), so OKS there is approximate for both.",
        "",
        "## Keypoint savings (`configs/cost/keypoints.yaml`, boxes by `annotation-factory`)",
        "",
        f"Saved **{s['saved_fraction']:.1%}** (95% bootstrap CI over images {lo:.1%} to {hi:.1%}) of the time to label",
        f"the persons and their keypoints, at box threshold {s['conf']:.2f} and per-keypoint visibility threshold",
        f"{s['visibility_threshold']:.2f} (the best of the sweep; picked on the same images, so slightly optimistic).",
        f"{s['labeled_keypoints']:,} labeled keypoints; actions: "
        + ", ".join(f"{k} {v:,}" for k, v in s["actions"].items()) + f"; {s['saved_hours_per_1000_images']:.1f} h saved per",
        "1,000 images.",
        "",
        "Per keypoint (fix rate = share of the joint's actions that are a move, add or delete):",
        "",
        kp.per_keypoint.to_markdown(index=False, floatfmt=".3f"),
        "",
        f"Saved fraction by visibility threshold at box threshold {s['conf']:.2f}:",
        "",
        at_box[["visibility_threshold", "saved_fraction", "accept", "move", "add", "delete"]].round(3).to_markdown(
            index=False),
        "",
        *_evidence(pred, gt, kp),
    ]
    report = ROOT / "benchmarks" / "reports" / "keypoints.md"
    report.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {report}")
    print(f"ap_ours={ours[0]:.4f} ap_ref={ref[0]:.4f} ap50_ours={ours[1]:.4f} ap50_ref={ref[1]:.4f} "
          f"saved={s['saved_fraction']:.4f} ci=({lo:.4f},{hi:.4f}) conf={s['conf']} vis={s['visibility_threshold']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
