"""``autolabel train``: fine-tune a detector on your labels (a thin layer over :func:`autolabel.train`)."""

from __future__ import annotations

import argparse
import json
import time

from autolabel.config import EXIT_OK

_SECURITY = ("Security: a .pt base is a Python pickle that can run arbitrary code when loaded; "
             "train only from checkpoints you trust.")


def _cmd_train(args: argparse.Namespace) -> int:
    from autolabel.cli._common import given
    from autolabel.training import TrainOptions, train

    budget = args.budget_minutes
    if budget is not None and budget > 0:
        import psutil  # an Ultralytics dependency

        # the budget counts from the command's start: Python's and the libraries' imports are in it
        budget = max(budget - (time.time() - psutil.Process().create_time()) / 60, 1e-3)
    opts = TrainOptions(**given(base=args.base, budget_minutes=budget, imgsz=args.imgsz,
                                epochs=args.epochs, seed=args.seed, val_fraction=args.val_fraction,
                                min_images_per_class=args.min_images_per_class, device=args.device),
                        class_names=args.classes.split(",") if args.classes else None,
                        progress=not args.quiet, resume=args.resume)
    result = train(args.labels, args.images, args.out, opts)
    if args.quiet:  # the API prints the summary itself when showing progress
        print(result.summary())
    if args.json:
        from autolabel.io.files import atomic_write

        atomic_write(args.json, json.dumps(result.to_dict(), indent=1))
        print(f"wrote {args.json}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    p = sub.add_parser(
        "train", help="fine-tune a detector on your labels: model.pt, model.onnx and model_card.json in --out",
        description="Fine-tune an Ultralytics detector on labeled images (COCO, YOLO, VOC, CVAT, Label Studio, or a "
                    "`labelstudio pull` export) with a seeded held-back validation split, within a wall-clock budget. "
                    + _SECURITY)
    p.add_argument("--labels", required=True, help="labels: a COCO/Label Studio .json, a YOLO data.yaml, a CVAT .xml, "
                                                   "or a folder (VOC root, YOLO root, pull export)")
    p.add_argument("--images", required=True, help="image folder (a label's file name is relative to it)")
    p.add_argument("--out", required=True, help="run folder: model.pt, model.onnx, model_card.json, data/, train/")
    p.add_argument("--base", default=None, help="checkpoint to fine-tune (default yolo11n-coco.pt from the resolver); "
                                                "a pickle: only one you trust")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="wall-clock minutes for training, export and evaluation; the best weights so far are kept")
    p.add_argument("--imgsz", type=int, default=None, help="input size (default: chosen from the object sizes and budget)")
    p.add_argument("--epochs", type=int, default=None, help="epochs at most (default 30 without a budget)")
    p.add_argument("--seed", type=int, default=None, help="seed of the validation split and the trainer (default 0)")
    p.add_argument("--val-fraction", type=float, default=None, help="share of images held back to validate (0.2)")
    p.add_argument("--classes", default=None, help="comma-separated classes to train (default: the labels' classes)")
    p.add_argument("--min-images-per-class", type=int, default=None,
                   help="refuse to train a class with fewer labeled images (default 5)")
    p.add_argument("--device", default=None, help="cpu, 0 (first GPU), ... (default: Ultralytics' choice)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from its last.pt")
    p.add_argument("--json", default=None, help="write the result (paths, model id, mAP, seconds) here as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output, only the summary")
    p.set_defaults(func=_cmd_train)
