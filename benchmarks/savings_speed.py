"""Speed of our matching + costing against pycocotools' evaluation on the same detections.

``yolov5n.onnx`` pre-labels ``coco-val-150`` once; the 150 images are repeated with
distinct image ids up to ``--images`` (default 10,050). Timed on the same boxes:

* **ours**: :func:`autolabel.savings.count_edits` (one optimal assignment per image,
  crowd rule, edits per class) + :func:`autolabel.savings.summarize` (human seconds,
  money, 1,000-resample bootstrap interval);
* **COCOeval**: ``evaluate()`` + ``accumulate()``, set up for the same job: one IoU
  threshold (0.5), one area range (all), every detection (``maxDets=[10000]``). A
  second row times COCOeval with its default parameters (10 IoU thresholds, 4 area
  ranges) for reference.

Building the inputs (our ``Results``, COCOeval's ``COCO`` objects) is not timed. Best
of ``--repeats`` rounds. Usage: ``python benchmarks/savings_speed.py [--images N]``.
Ends with the line ``speedup_vs_cocoeval=X`` (COCOeval single-threshold / ours; goal >= 5).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
COCO = SHARED / "data" / "coco-val-150"


def _repeat(results, copies: int):  # type: ignore[no-untyped-def]
    """``copies`` of every image under distinct keys ``r<k>/<file name>``."""
    from autolabel.core import Results

    dets = [d.with_image(replace(d.image, key=f"r{k}/{d.image.key}")) for k in range(copies) for d in results]
    return Results(dets, results.class_names, results.model_id)


def _coco_objects(gt, pred):  # type: ignore[no-untyped-def]
    """pycocotools ``COCO`` ground truth and detections for the same boxes."""
    from pycocotools.coco import COCO as CocoApi

    ids = {d.image.key: i + 1 for i, d in enumerate(gt)}
    images = [{"id": ids[d.image.key], "file_name": d.image.key, "width": d.image.width, "height": d.image.height}
              for d in gt]
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(gt.class_names)]
    anns, dets = [], []
    for d in gt:
        for b, c, z in zip(d.xywh.tolist(), d.class_ids.tolist(), d.crowd.tolist()):
            anns.append({"id": len(anns) + 1, "image_id": ids[d.image.key], "category_id": c + 1, "bbox": b,
                         "area": b[2] * b[3], "iscrowd": int(z)})
    for d in pred:
        for b, c, s in zip(d.xywh.tolist(), d.class_ids.tolist(), d.scores.tolist()):
            dets.append({"image_id": ids[d.image.key], "category_id": c + 1, "bbox": b, "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        cg = CocoApi()
        cg.dataset = {"images": images, "annotations": anns, "categories": cats}
        cg.createIndex()
        cd = cg.loadRes(dets) if dets else None
    return cg, cd


def _cocoeval(cg, cd, single: bool) -> float:  # type: ignore[no-untyped-def]
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(cg, cd, "bbox")
        if single:
            ev.params.iouThrs = np.array([0.5])
            ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
            ev.params.maxDets = [10000]
        t = time.perf_counter()
        ev.evaluate()
        ev.accumulate()
    return time.perf_counter() - t


def _ours(pred, gt) -> float:  # type: ignore[no-untyped-def]
    from autolabel.savings.edits import count_edits, summarize

    t = time.perf_counter()
    summarize(count_edits(pred, gt))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10_050, help="images timed (the 150 repeated)")
    ap.add_argument("--conf", type=float, default=0.25, help="pre-label threshold (detector default)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds; the best is reported")
    ap.add_argument("--skip-default", action="store_true", help="skip COCOeval with default parameters")
    args = ap.parse_args()

    import autolabel as al
    from autolabel.formats import read_coco
    from autolabel.matching import align_classes
    from autolabel.sources import from_coco

    gt150 = read_coco(COCO / "instances.json")
    src = from_coco(COCO / "instances.json")
    pred150, gt150 = align_classes(al.prelabel(src, "yolov5n.onnx", conf=args.conf, progress=False), gt150)
    copies = -(-args.images // len(gt150))
    gt, pred = _repeat(gt150, copies), _repeat(pred150, copies)
    cg, cd = _coco_objects(gt, pred)
    n_img, n_gt, n_det = len(gt), sum(len(d) for d in gt), pred.num_boxes

    rows = {"ours (count_edits + summarize)": [], "COCOeval, IoU 0.5, all areas, all dets": []}
    if not args.skip_default:
        rows["COCOeval, default parameters"] = []
    for _ in range(args.repeats):
        rows["ours (count_edits + summarize)"].append(_ours(pred, gt))
        rows["COCOeval, IoU 0.5, all areas, all dets"].append(_cocoeval(cg, cd, single=True))
        if not args.skip_default:
            rows["COCOeval, default parameters"].append(_cocoeval(cg, cd, single=False))
    best = {k: min(v) for k, v in rows.items()}
    ours = best["ours (count_edits + summarize)"]
    print(f"{n_img:,} images, {n_gt:,} ground-truth boxes, {n_det:,} detections (yolov5n.onnx, conf {args.conf}); "
          f"best of {args.repeats}")
    print(f"{'method':<42} {'seconds':>9} {'ms / 1k images':>15} {'vs ours':>8}")
    for k, s in best.items():
        print(f"{k:<42} {s:>9.3f} {1e6 * s / n_img:>15.1f} {s / ours:>7.1f}x")
    print(f"speedup_vs_cocoeval={best['COCOeval, IoU 0.5, all areas, all dets'] / ours:.1f}")


if __name__ == "__main__":
    main()
