"""Large frames decode cheaply: end-to-end throughput on 1080p frames with and without
JPEG draft decoding (Pillow's DCT-domain ``draft``, :func:`autolabel.sources.load_image_draft`),
and the accuracy it costs.

The frames are coco-val-150 upscaled to fit 1920x1080 (Lanczos, JPEG quality 90), with
the ground truth scaled alike, written to a temporary folder. Both runs use the same model
(``--model``, default yolov5n.onnx) through :func:`autolabel.prelabel` with the engine's
defaults; the best of ``--repeats`` rounds is kept. Goal: mAP50-95 within 0.005.

    python benchmarks/draft_decode.py [--limit N] [--repeats 2]

Ends with ``draft_speedup=X draft_map_delta=Y``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
COCO = SHARED / "data" / "coco-val-150"


def upscaled_copies(out: Path, limit: int | None) -> tuple[list[str], dict]:
    """1080p copies of the images and their scaled ground truth."""
    from PIL import Image

    gt = json.loads((COCO / "instances.json").read_text())
    images = sorted(gt["images"], key=lambda im: im["file_name"])[:limit]
    scale = {}
    for im in images:
        s = min(1920 / im["width"], 1080 / im["height"])
        scale[im["id"]] = s
        with Image.open(COCO / "images" / im["file_name"]) as src:
            big = src.convert("RGB").resize((round(im["width"] * s), round(im["height"] * s)), Image.LANCZOS)
            big.save(out / im["file_name"], quality=90)
        im.update(width=big.width, height=big.height)
    ids = set(scale)
    anns = []
    for a in gt["annotations"]:
        if a["image_id"] in ids:
            s = scale[a["image_id"]]
            anns.append({**a, "bbox": [v * s for v in a["bbox"]], "area": a["area"] * s * s})
    return [str(out / im["file_name"]) for im in images], {**gt, "images": images, "annotations": anns}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="yolov5n.onnx")
    ap.add_argument("--limit", type=int, default=None, help="first N images only")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import autolabel as al
    from autolabel.savings.ladder import coco_map

    with tempfile.TemporaryDirectory() as tmp:
        paths, gt = upscaled_copies(Path(tmp), args.limit)
        det = al.load_detector(args.model)
        rows = {}
        for _ in range(args.repeats):
            for draft in (False, True):
                det.draft = draft
                t0 = time.perf_counter()
                res = al.prelabel(paths, det, conf=0.001, progress=False)
                wall = time.perf_counter() - t0
                best = rows.get(draft, (float("inf"), None))[0]
                rows[draft] = (min(wall, best), res)
    (w_full, r_full), (w_draft, r_draft) = rows[False], rows[True]
    m_full, m_draft = coco_map(r_full, gt)[0], coco_map(r_draft, gt)[0]
    n = len(paths)
    print(f"{n} frames of 1920x1080 (coco-val-150 upscaled), {args.model}, {os.cpu_count()} CPUs (shared: noisy)")
    print(f"full decode : {n / w_full:6.1f} img/s  mAP50-95 {m_full:.4f}")
    print(f"draft decode: {n / w_draft:6.1f} img/s  mAP50-95 {m_draft:.4f}")
    print(f"draft_speedup={w_full / w_draft:.2f} draft_map_delta={m_draft - m_full:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
