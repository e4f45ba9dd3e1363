"""``autolabel prelabel`` and ``autolabel models``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from autolabel.config import EXIT_OK
from autolabel.cli._common import given


def _track_postprocess(args: argparse.Namespace) -> tuple[Any, float]:
    """``--track``: the tracking (+ refinement) the job runs on its logged detections at
    export, and the detector threshold it needs (the tracker's ``detection_conf``)."""
    import functools

    from autolabel.config import TrackerConfig
    from autolabel.video.tracking import track

    cfg = TrackerConfig.load(args.tracker)
    return functools.partial(track, tracker=cfg, refine=args.refine), cfg.detection_conf if args.conf is None else args.conf


def _conf(args: argparse.Namespace) -> object:
    """``--conf``, or the per-class thresholds of ``--conf-per-class`` (``--conf``: the
    threshold of classes it does not list, when it has no ``default``)."""
    if args.conf_per_class is None:
        return args.conf
    from autolabel.detectors.thresholds import ClassThresholds

    return ClassThresholds.load(args.conf_per_class, default=args.conf)


def _cmd_prelabel(args: argparse.Namespace) -> int:
    from autolabel.engine import JobOptions, run_job
    from autolabel.engine.ray_engine import RayOptions

    from autolabel.formats import TRACK_FORMATS

    if args.format in TRACK_FORMATS and not args.track:
        raise ValueError(f"--format {args.format} writes tracks: add --track")
    post, conf = _track_postprocess(args) if args.track else (None, _conf(args))

    ray = given(actors=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus)
    options = JobOptions(
        conf=conf, iou=args.iou, max_det=args.max_det, class_map=args.class_map, engine=args.engine,
        resume=args.resume, retry_failed=args.retry_failed, workers=args.workers, streams=args.streams,
        progress=not args.quiet, source_options=given(every=args.every, every_seconds=args.every_seconds),
        detector_options=given(device=args.device, batch_size=args.batch_size, threads=args.threads,
                               draft=False if args.no_draft else None),
        ray_options=RayOptions.model_validate(ray) if args.engine == "ray" else None,
        postprocess=post, slice=(None if args.track else False) if args.slice is None else args.slice,
    )
    try:
        summary = run_job(args.source, args.out, args.model, args.format, options)
    except Exception as e:  # a crash mid-job (exit status 2 in autolabel.cli.main): the log keeps what is done
        if sys.version_info >= (3, 11) and not isinstance(e, (FileNotFoundError, ValueError, KeyError)):
            e.add_note(f"Batches finished before the error are kept in {args.out}/.autolabel/; "
                       "the same command resumes after them.")
        raise
    print(json.dumps(summary.to_dict(), indent=2))
    if summary.skipped:
        print(f"skipped {summary.skipped} inputs; see {args.out}/errors.csv", file=sys.stderr)
    return summary.exit_code


def _cmd_models(args: argparse.Namespace) -> int:
    from autolabel.detectors import model_search_dirs, shared_models_hint
    from autolabel.detectors.inventory import model_table

    df = model_table(bench=args.bench)
    print("searched, in order: " + "; ".join(f"{o}: {d}" for o, d in model_search_dirs()))
    hint = shared_models_hint()
    if hint:
        print(hint.strip())
    elif not os.environ.get("AUTOLABEL_MODEL_DIR"):
        print("add a folder of model files to the search: export AUTOLABEL_MODEL_DIR=<folder>")
    if len(df):
        df["speed"] = (df["images_per_second"].map(lambda v: "" if v != v else f"{v:.1f} img/s") if args.bench else "")
        df["where"] = df["origin"] + df["shadowed"].map(lambda s: " (shadowed)" if s == "True" else "")
        cols = ["name", "layout", "input", "precision"] + (["speed"] if args.bench else []) + ["status", "where", "path"]
        print(df[cols].fillna("").to_string(index=False))
    if args.bench:
        print("speed: predict() on the synthetic check image, this machine, now (noisy when the CPU is shared)")
    print("also: torchvision:<architecture> with --weights, and Ultralytics asset names (downloaded when online)")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    pre = sub.add_parser("prelabel", help="run a detector over images / a dataset / a video and write pre-labels")
    pre.add_argument("source", help="image folder, glob, image, video, COCO .json, VOC or YOLO dataset root")
    pre.add_argument("--model", default=None, help="model path or name (default: bundled yolov5n.onnx)")
    pre.add_argument("--out", required=True, help="output directory")
    pre.add_argument("--format", default="coco", help="coco, yolo, voc, labelstudio or cvat; with --track also mot")
    pre.add_argument("--conf", type=float, default=None, help="confidence threshold (model default 0.25)")
    pre.add_argument("--conf-per-class", default=None, metavar="YAML",
                     help="per-class thresholds (autolabel savings --class-thresholds writes them)")
    pre.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (model default 0.6)")
    pre.add_argument("--max-det", type=int, default=None)
    pre.add_argument("--batch-size", type=int, default=None)
    pre.add_argument("--device", default=None, help="cpu, cuda, cuda:0 (default: best available)")
    pre.add_argument("--class-map", default=None, help="class map YAML (configs/classmaps)")
    pre.add_argument("--every", type=int, default=None, help="video: every k-th frame")
    pre.add_argument("--every-seconds", type=float, default=None, help="video: one frame every t seconds")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")
    pre.add_argument("--engine", choices=("local", "ray"), default="local", help="local threads or a Ray actor pool")
    pre.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="skip inputs already in OUT's log (--no-resume deletes the log and starts over)")
    pre.add_argument("--retry-failed", action="store_true", help="process inputs that failed before again")
    pre.add_argument("--workers", type=int, default=None, help="decode threads (default: CPUs, at most 8)")
    pre.add_argument("--streams", type=int, default=None,
                     help="batches in inference at once (default: from cores and model, 2 on a 2-core CPU)")
    pre.add_argument("--threads", type=int, default=None,
                     help="ONNX Runtime threads per stream (default on a CPU: cores / default streams)")
    pre.add_argument("--no-draft", action="store_true",
                     help="ONNX: always decode JPEGs at full size (default: large ones at 1/2, 1/4 or 1/8 scale)")
    pre.add_argument("--ray-actors", type=int, default=None, help="Ray: detector actors (default: fill the cluster)")
    pre.add_argument("--ray-cpus", type=float, default=None, help="Ray: CPUs per actor (default 1)")
    pre.add_argument("--ray-gpus", type=float, default=None, help="Ray: GPUs per actor (default 0)")
    pre.add_argument("--track", action="store_true", help="SOURCE is a sequence (MOT folder, video): give boxes track ids")
    pre.add_argument("--tracker", default=None, help="tracker config name or YAML (configs/trackers; default bytetrack)")
    pre.add_argument("--slice", action=argparse.BooleanOptionalAction, default=None,
                     help="sliced inference: tiles + full frame, merged by NMS (default: with --track only frames "
                          "shrunk 1.5x or more at the model input, else none; --slice every image, --no-slice none)")
    pre.add_argument("--refine", action=argparse.BooleanOptionalAction, default=True,
                     help="with --track: offline track refinement (stitch, fill, drop, smooth; --no-refine: off)")
    pre.set_defaults(func=_cmd_prelabel)

    mod = sub.add_parser("models", help="list the models the resolver can find: layout, input, precision, health")
    mod.add_argument("--bench", action="store_true", help="also measure each ONNX model's speed on this machine")
    mod.set_defaults(func=_cmd_models)
