"""Keypoints on all 800 coco-person images: our pose decode against a plain reference decode
(keypoint OKS AP under pycocotools), and the keypoint labeling time it saves.

1. ``autolabel prelabel coco-person/images --model yolo11n-pose.onnx --format coco --conf 0.001``
   (cached in ``benchmarks/.cache/kp-prelabel``; ``--fresh`` runs it again);
2. the reference decode of ``tests/pose_reference.py`` (OpenCV letterbox 640, onnxruntime,
   ``cv2.dnn.NMSBoxes`` at IoU 0.6), independent of autolabel;
3. pycocotools keypoint AP / AP50 of both on ``person_keypoints.json``;
4. ``autolabel.savings.keypoints.keypoint_savings`` with ``configs/cost/keypoints.yaml``.

    python benchmarks/keypoints.py [--fresh]

Writes ``benchmarks/reports/keypoints.md`` and ends with ``ap_ours=.. ap_ref=.. saved=..``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
PERSON = SHARED / "data" / "coco-person"
MODEL = SHARED / "models" / "yolo11n-pose.onnx"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


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
    t0 = time.perf_counter()
    ref = keypoint_ap(gt_file, reference_pose(MODEL, sorted((PERSON / "images").glob("*.jpg"))))
    ref_s = time.perf_counter() - t0
    kp = keypoint_savings(read_coco(out / "annotations.json"), read_coco(gt_file))
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
        f"| reference: OpenCV letterbox 640, cv2.dnn.NMSBoxes 0.6 ({ref_s:.0f} s) | {ref[0]:.3f} | {ref[1]:.3f} |",
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
        at_box[["visibility_threshold", "saved_fraction", "accept", "move", "add", "delete"]].to_markdown(
            index=False, floatfmt=".3f"),
        "",
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
