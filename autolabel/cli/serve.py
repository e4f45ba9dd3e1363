"""``autolabel serve``: run a detector as a Label Studio ML backend."""

from __future__ import annotations

import argparse
import logging
import os

from autolabel.cli._common import given
from autolabel.config import EXIT_OK

PASSWORD_ENV = "AUTOLABEL_SERVE_PASSWORD"


def _class_conf(text: str) -> dict[str, float]:
    """``person=0.4,car=0.5`` -> ``{"person": 0.4, "car": 0.5}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.rpartition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"expected CLASS=THRESHOLD, got {part!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: threshold {value!r} is not a number") from None
    return out


def _cmd_serve(args: argparse.Namespace) -> int:
    from autolabel.labelstudio import ENV_DOCUMENT_ROOT, ENV_URL
    from autolabel.serve import Backend, ImageAccess, Limits, serve

    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    basic_auth = None
    if args.basic_auth_user:
        password = os.environ.get(PASSWORD_ENV)
        if not password:
            raise ValueError(f"--basic-auth-user needs the password in the environment variable {PASSWORD_ENV}")
        basic_auth = (args.basic_auth_user, password)
    limits = Limits(int(args.max_body_mb * 2**20), args.max_tasks)
    images = ImageAccess(
        args.label_studio_url or os.environ.get(ENV_URL),
        os.environ.get(args.token_env),
        args.document_root or os.environ.get(ENV_DOCUMENT_ROOT),
        max_pixels=int(args.max_image_mp * 1e6),
        decode_pixels=int(args.decode_mp * 1e6),
        decode_threads=args.decode_threads,
    )
    det_opts = given(conf=args.conf, device=args.device, batch_size=args.batch_size)
    backend = Backend(
        args.model, conf=args.class_conf, iou=args.iou, max_det=args.max_det, class_map=args.class_map,
        policy=args.policy, images=images, time_limit=args.time_limit, detector_options=det_opts,
    )
    trainer = None
    if args.train_dir:
        from autolabel.serve.training import ServeTrainer, TrainSettings

        settings = TrainSettings(os.path.abspath(args.train_dir), **given(
            budget_minutes=args.train_budget_minutes, base=args.train_base, imgsz=args.train_imgsz,
            epochs=args.train_epochs, min_images_per_class=args.train_min_images_per_class, train_after=args.train_after))
        os.makedirs(settings.work_dir, exist_ok=True)
        trainer = ServeTrainer(backend, settings, images.client)
    serve(backend, args.host, args.port, basic_auth, log_level=args.log_level, limits=limits, trainer=trainer)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``autolabel serve``."""
    s = sub.add_parser("serve", help="serve a detector as a Label Studio ML backend (/health, /setup, /predict)")
    s.add_argument("--model", default=None, help="model path or name (default: bundled yolov5n.onnx)")
    s.add_argument("--conf", type=float, default=None, help="confidence threshold (model default 0.25)")
    s.add_argument("--class-conf", type=_class_conf, default=None,
                   help="per-class thresholds, e.g. person=0.4,car=0.5 (other classes: --conf)")
    s.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (model default 0.6)")
    s.add_argument("--max-det", type=int, default=None)
    s.add_argument("--class-map", default=None, help="class map YAML onto the project's labels")
    s.add_argument("--policy", default=None, help="fitted routing policy JSON: adds routing scores to predictions")
    s.add_argument("--device", default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=9090)
    s.add_argument("--label-studio-url", default=None,
                   help="the Label Studio server /data/upload images are read from, with the token (default: "
                        "$LABEL_STUDIO_URL; never taken from a request: without it only local files are read)")
    s.add_argument("--token-env", default="LABEL_STUDIO_API_KEY",
                   help="environment variable holding the Label Studio API token (never logged)")
    s.add_argument("--document-root", default=None,
                   help="Label Studio's local-files document root, read from disk (default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    s.add_argument("--time-limit", type=float, default=60.0,
                   help="seconds a predict request may take from its arrival (queued time included); the rest of "
                        "a batch is left for the next request (Label Studio waits 100 s)")
    s.add_argument("--max-tasks", type=int, default=10_000, help="tasks per predict request at most (more: HTTP 413)")
    s.add_argument("--max-body-mb", type=float, default=32.0, help="request body size limit in MiB (more: HTTP 413)")
    s.add_argument("--max-image-mp", type=float, default=40.0,
                   help="megapixels one image may decode to (larger: a per-task error; JPEGs decode reduced if that fits)")
    s.add_argument("--decode-mp", type=float, default=40.0, help="megapixels decoded at once by a request")
    s.add_argument("--decode-threads", type=int, default=2, help="image decode threads (default 2, not one per core)")
    s.add_argument("--basic-auth-user", default=None,
                   help=f"require HTTP Basic Auth with this user (password from ${PASSWORD_ENV})")
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    t = s.add_argument_group("training", "Label Studio's 'Start training' (/train, webhook START_TRAINING) fine-tunes "
                                         "on the project's submitted annotations in the background and swaps the model "
                                         "in only when validation improves. Security: the base .pt is a pickle that can "
                                         "run code when loaded; use only a checkpoint you trust.")
    t.add_argument("--train-dir", default=None, help="turns training on: run folders go here")
    t.add_argument("--train-budget-minutes", type=float, default=None, help="wall-clock budget of one training (10)")
    t.add_argument("--train-base", default=None, help="checkpoint to fine-tune (default yolo11n-coco.pt)")
    t.add_argument("--train-imgsz", type=int, default=None, help="training input size (default: chosen from the data)")
    t.add_argument("--train-epochs", type=int, default=None, help="epochs at most (default: as many as the budget allows)")
    t.add_argument("--train-min-images-per-class", type=int, default=None, help="refuse classes with fewer images (5)")
    t.add_argument("--train-after", type=int, default=None,
                   help="also start a training after this many new annotations (webhook ANNOTATION_CREATED)")
    s.set_defaults(func=_cmd_serve)
