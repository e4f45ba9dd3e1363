"""``autolabel`` command line: a thin layer over the Python API.

Each subcommand is one ``_cmd_<name>(args) -> int`` function plus its parser in
``_build_parser``. Exit status: 0 success, 1 completed with skipped inputs, 2 failed
(bad arguments, model or configuration).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

__all__ = ["main"]

EXIT_OK, EXIT_SKIPPED, EXIT_FAILED = 0, 1, 2


def _cmd_prelabel(args: argparse.Namespace) -> int:
    from autolabel.detectors import load_detector
    from autolabel.formats import FORMATS
    from autolabel.pipeline import prelabel

    if args.format not in FORMATS:
        raise ValueError(f"unknown format {args.format!r}; choose from {', '.join(FORMATS)}")
    opts = {k: v for k, v in (("device", args.device), ("batch_size", args.batch_size)) if v is not None}
    det = load_detector(args.model, **opts)
    src_opts = {k: v for k, v in (("every", args.every), ("every_seconds", args.every_seconds)) if v is not None}
    results = prelabel(
        args.source, det, conf=args.conf, iou=args.iou, max_det=args.max_det,
        class_map=args.class_map, progress=not args.quiet, **src_opts,
    )
    written = results.save(args.out, format=args.format)
    summary = {
        "status": "completed" if not results.failures else f"completed with {len(results.failures)} skipped",
        "images": len(results), "boxes": results.num_boxes, "skipped": len(results.failures),
        "model_id": det.model_id, "written": written,
    }
    print(json.dumps(summary, indent=2))
    for f in results.failures:
        print(f"skipped {f.key}: {f.reason}", file=sys.stderr)
    return EXIT_SKIPPED if results.failures else EXIT_OK


def _cmd_models(args: argparse.Namespace) -> int:
    from autolabel.detectors import list_models, model_search_dirs

    rows = list_models()
    print("searched, in order: " + "; ".join(f"{o}: {d}" for o, d in model_search_dirs()))
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        note = "  (shadowed by an earlier one)" if r["shadowed"] == "True" else ""
        print(f"{r['name']:<{width}}  {r['origin']:<20}  {r['path']}{note}")
    print("also: torchvision:<architecture> with --weights, and Ultralytics asset names (downloaded when online)")
    return EXIT_OK


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autolabel", description="Model-assisted labeling for object detection.")
    sub = p.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("prelabel", help="run a detector over images / a dataset / a video and write pre-labels")
    pre.add_argument("source", help="image folder, glob, image, video, COCO .json, VOC or YOLO dataset root")
    pre.add_argument("--model", default=None, help="model path or name (default: bundled yolov5n.onnx)")
    pre.add_argument("--out", required=True, help="output directory")
    pre.add_argument("--format", default="coco", help="coco, yolo, voc, labelstudio or cvat")
    pre.add_argument("--conf", type=float, default=None, help="confidence threshold (model default 0.25)")
    pre.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (model default 0.6)")
    pre.add_argument("--max-det", type=int, default=None)
    pre.add_argument("--batch-size", type=int, default=None)
    pre.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: best available)")
    pre.add_argument("--class-map", default=None, help="class map YAML (configs/classmaps)")
    pre.add_argument("--every", type=int, default=None, help="video: every k-th frame")
    pre.add_argument("--every-seconds", type=float, default=None, help="video: one frame every t seconds")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    pre.set_defaults(func=_cmd_prelabel)

    mod = sub.add_parser("models", help="list the models the resolver can find, and where from")
    mod.set_defaults(func=_cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"autolabel {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
