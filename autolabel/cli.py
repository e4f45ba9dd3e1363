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


def _given(**options: object) -> dict[str, object]:
    """The options the user set (argparse leaves the others ``None``)."""
    return {k: v for k, v in options.items() if v is not None}


def _cmd_prelabel(args: argparse.Namespace) -> int:
    from autolabel.engine import run_job

    src_opts = _given(every=args.every, every_seconds=args.every_seconds)
    det_opts = _given(device=args.device, batch_size=args.batch_size, threads=args.threads)
    ray_opts = _given(actors=args.ray_actors, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus)
    try:
        summary = run_job(
            args.source, args.out, args.model, args.format, conf=args.conf, iou=args.iou, max_det=args.max_det,
            class_map=args.class_map, engine=args.engine, resume=args.resume, retry_failed=args.retry_failed,
            workers=args.workers, streams=args.streams, progress=not args.quiet, detector_options=det_opts, ray_options=ray_opts,
            **src_opts,
        )
    except (FileNotFoundError, ValueError, KeyError):
        raise
    except Exception as e:  # a crash mid-job: what the log holds stays, a rerun resumes
        print(json.dumps({"status": "failed", "error": f"{type(e).__name__}: {e}"}, indent=2))
        return EXIT_FAILED
    print(json.dumps(summary.to_dict(), indent=2))
    if summary.skipped:
        print(f"skipped {summary.skipped} inputs; see {args.out}/errors.csv", file=sys.stderr)
    return summary.exit_code


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


def _cmd_savings(args: argparse.Namespace) -> int:
    from autolabel.formats import read_coco
    from autolabel.report import savings_report

    pred, gt = read_coco(args.predictions), read_coco(args.ground_truth)
    rep = savings_report(
        pred, gt, args.profile, args.conf, args.machine_seconds, iou_accept=args.iou_accept, iou_min=args.iou_min
    )
    s = rep.summary
    lo, hi = s["saved_fraction_ci95"]
    at = "all predictions" if s["conf"] is None else f"threshold {s['conf']:.2f}"
    print(f"{s['images']} images, {s['gt_boxes']} ground-truth boxes, {s['pred_boxes']} pre-labels ({at}); "
          f"edits: " + ", ".join(f"{k} {v}" for k, v in s["edits"].items()))
    print(f"human seconds: {s['scratch_seconds']:.0f} from scratch, {s['assisted_seconds']:.0f} assisted; saved "
          f"{s['saved_fraction']:.1%} (95% CI {lo:.1%} to {hi:.1%}); best threshold {rep.best_threshold}")
    if args.json:
        from autolabel.formats._common import atomic_write

        atomic_write(args.json, json.dumps(rep.to_dict(), indent=1))
        print(f"wrote {args.json}")
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from autolabel.report import compare

    cmp = compare(args.models, args.images, args.ground_truth, args.profile, split=args.split_file,
                  min_conf=args.min_conf, progress=not args.quiet)
    print(cmp.summary.to_string(index=False))
    for path in cmp.save(args.out, args.name):
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from autolabel.config import RoutingPolicy
    from autolabel.formats import read_coco
    from autolabel.routing import fit_policy

    cfg = RoutingPolicy.load(args.config)
    overrides = _given(risk=args.risk, alpha=args.alpha, delta=args.delta, method=args.method,
                       prelabel_conf=args.prelabel_conf, cost_profile=args.profile)
    cfg = RoutingPolicy.load({**cfg.model_dump(), **overrides})
    policy = fit_policy(read_coco(args.predictions), read_coco(args.ground_truth), cfg)
    policy.save(args.out)
    shown = {k: len(v) if isinstance(v, list) else v for k, v in policy.summary.items()}  # class lists: counts
    print(json.dumps({"threshold": policy.threshold, "reason": policy.reason, **shown}, indent=1))
    print(f"wrote {args.out}")
    return EXIT_OK


def _cmd_route(args: argparse.Namespace) -> int:
    from autolabel.formats import read_coco
    from autolabel.routing import route

    routing = route(read_coco(args.predictions), args.policy, args.budget_hours, check_model=not args.any_model)
    written = routing.save(args.out, image_root_url=args.image_root_url)
    summary = routing.summary()
    summary.get("budget", {}).pop("unreviewed", None)  # the list is in summary.json
    print(json.dumps(summary, indent=1))
    print("wrote " + ", ".join(written))
    return EXIT_OK


def _labelstudio_call(command: str, call):  # type: ignore[no-untyped-def]
    """Run ``call()``; a Label Studio failure (server, token, config) is a clean error."""
    from autolabel.labelstudio import LabelStudioError

    try:
        return call()
    except LabelStudioError as e:
        print(f"autolabel {command}: error: {e}", file=sys.stderr)
        return None


def _ls_client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import os

    from autolabel.labelstudio import Client

    token = os.environ.get(args.token_env)
    if not token:
        raise ValueError(f"no Label Studio API token: set the environment variable {args.token_env}")
    return Client(args.url, token, retries=args.retries)


def _project(args: argparse.Namespace) -> int | str:
    """A Label Studio project id, or a title."""
    return int(args.project) if args.project.isdigit() else args.project


def _cmd_push(args: argparse.Namespace) -> int:
    from autolabel.config import load_yaml
    from autolabel.formats import read_coco
    from autolabel.labelstudio import push

    results = read_coco(args.predictions)
    label_map = load_yaml(args.label_map) if args.label_map else None
    report = _labelstudio_call("push", lambda: push(
        results, _project(args), client=_ls_client(args), routing=args.manifest, queues=args.queues,
        image_url=args.image_url, image_root=args.image_root, document_root=args.document_root,
        label_map=label_map, chunk_size=args.chunk_size,
    ))
    if report is None:
        return EXIT_FAILED
    print(json.dumps(report.summary(), indent=1))
    return EXIT_OK


def _cmd_pull(args: argparse.Namespace) -> int:
    from autolabel.costfit import measure_cvat
    from autolabel.labelstudio import pull

    fixed = {}
    for item in args.fix or []:
        name, _, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError:
            raise ValueError(f"--fix expects NAME=SECONDS (e.g. draw_s=7.0), got {item!r}") from None
    opts = dict(profile=args.profile, fit=not args.no_fit, fixed=fixed, iou_accept=args.iou_accept, iou_min=args.iou_min)
    if args.cvat:
        if not args.predictions:
            raise ValueError("--cvat needs --predictions: the pre-labels that were loaded into CVAT (COCO JSON)")
        m = measure_cvat(args.cvat, args.predictions, args.times, **opts)
    else:
        if not args.project:
            raise ValueError("give --project (Label Studio) or --cvat (a CVAT XML export)")
        m = _labelstudio_call("pull", lambda: pull(
            _project(args), client=_ls_client(args), model_version=args.model_version, **opts))
        if m is None:
            return EXIT_FAILED
    written = m.save(args.out)
    summary = m.summary()
    print(json.dumps({k: summary[k] for k in ("source", "rows", "images", "timed_rows", "edits", "baseline")}, indent=1))
    if m.fit is not None:
        print(m.fit.table.to_string())
        print(f"R^2 {m.fit.r2:.3f}, RMSE {m.fit.rmse_s:.2f} s over {m.fit.n_rows} timed rows")
    print("wrote " + ", ".join(written))
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
    pre.add_argument("--engine", choices=("local", "ray"), default="local", help="local threads or a Ray actor pool")
    pre.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                     help="skip inputs already in OUT's log (--no-resume deletes the log and starts over)")
    pre.add_argument("--retry-failed", action="store_true", help="process inputs that failed before again")
    pre.add_argument("--workers", type=int, default=None, help="decode threads (default: CPUs, at most 8)")
    pre.add_argument("--streams", type=int, default=1, help="batches in inference at once (ONNX; see --threads)")
    pre.add_argument("--threads", type=int, default=None,
                     help="ONNX Runtime threads per stream (default: all cores; on a CPU, cores / streams)")
    pre.add_argument("--ray-actors", type=int, default=None, help="Ray: detector actors (default: fill the cluster)")
    pre.add_argument("--ray-cpus", type=float, default=None, help="Ray: CPUs per actor (default 1)")
    pre.add_argument("--ray-gpus", type=float, default=None, help="Ray: GPUs per actor (default 0)")
    pre.set_defaults(func=_cmd_prelabel)

    match_opts = argparse.ArgumentParser(add_help=False)  # how pre-labels are matched to the final boxes
    match_opts.add_argument("--iou-accept", type=float, default=0.7, help="IoU at which a box is accepted as is")
    match_opts.add_argument("--iou-min", type=float, default=0.5, help="IoU below which a box is no help")

    sav = sub.add_parser("savings", parents=[match_opts],
                         help="score pre-labels against ground truth: edits, human seconds and money saved")
    sav.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON (autolabel prelabel --format coco)")
    sav.add_argument("--ground-truth", required=True, help="ground truth as a COCO JSON")
    sav.add_argument("--json", default=None, help="write the full summary (per class, sensitivity, sweep) here")
    sav.add_argument("--profile", default="extreme-clicking", help="cost profile name or YAML (configs/cost)")
    sav.add_argument("--conf", type=float, default=None, help="pre-label threshold (default: every prediction)")
    sav.add_argument("--machine-seconds", type=float, default=None, help="inference seconds spent on these images")
    sav.set_defaults(func=_cmd_savings)

    cmp = sub.add_parser("compare", help="pre-label a labeled dataset with several models and compare what each saves")
    cmp.add_argument("--models", nargs="+", required=True, help="model paths or names")
    cmp.add_argument("--images", required=True, help="image folder (ground-truth file_name is relative to it)")
    cmp.add_argument("--ground-truth", required=True, help="ground truth as a COCO JSON")
    cmp.add_argument("--out", required=True, help="output directory for the Markdown, HTML and JSON report")
    cmp.add_argument("--name", default="report", help="file name stem of the report (default: report)")
    cmp.add_argument("--profile", default="extreme-clicking", help="cost profile name or YAML (configs/cost)")
    cmp.add_argument("--split-file", default=None, help="only these images: a text file, one file name or stem a line")
    cmp.add_argument("--min-conf", type=float, default=0.05, help="lowest pre-label threshold swept (default 0.05)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp.set_defaults(func=_cmd_compare)

    cal = sub.add_parser("calibrate", help="fit box calibration and the auto-accept threshold on labeled images")
    cal.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON (prelabel at a low --conf, e.g. 0.05)")
    cal.add_argument("--ground-truth", required=True, help="ground truth of the same images as a COCO JSON")
    cal.add_argument("--out", required=True, help="policy JSON to write")
    cal.add_argument("--config", default="default", help="routing policy YAML or name (configs/routing)")
    cal.add_argument("--risk", choices=("image_any_edit", "box_error_rate"), default=None,
                     help="what alpha bounds: share of auto-accepted images needing any edit (default), or their mean "
                          "per-image box error rate (wrong + missed boxes / (pre-labels + missed))")
    cal.add_argument("--alpha", type=float, default=None, help="max risk of the auto-accepted images (see --risk)")
    cal.add_argument("--delta", type=float, default=None, help="the bound holds with probability 1 - delta")
    cal.add_argument("--method", choices=("isotonic", "platt"), default=None, help="box calibration model")
    cal.add_argument("--prelabel-conf", type=float, default=None, help="pre-label threshold (lower boxes: miss evidence)")
    cal.add_argument("--profile", default=None, help="cost profile name or YAML (configs/cost)")
    cal.set_defaults(func=_cmd_calibrate)

    rte = sub.add_parser("route", help="send each image to auto_accept, review or scratch with a calibrated policy")
    rte.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON, from the policy's model")
    rte.add_argument("--policy", required=True, help="policy JSON written by autolabel calibrate")
    rte.add_argument("--out", required=True, help="output directory (manifest.csv, auto_accepted.json, queues)")
    rte.add_argument("--budget-hours", type=float, default=None, help="human hours for the review queue")
    rte.add_argument("--image-root-url", default="", help="prefix of image URLs in the Label Studio review tasks")
    rte.add_argument("--any-model", action="store_true", help="allow predictions whose model id differs or is missing")
    rte.set_defaults(func=_cmd_route)

    ls_opts = argparse.ArgumentParser(add_help=False)
    ls_opts.add_argument("--url", default=None, help="Label Studio URL (default: $LABEL_STUDIO_URL)")
    ls_opts.add_argument("--token-env", default="LABEL_STUDIO_API_KEY",
                         help="environment variable holding the API token (default: LABEL_STUDIO_API_KEY)")
    ls_opts.add_argument("--retries", type=int, default=5, help="retries of a failed request, with backoff")

    psh = sub.add_parser("push", parents=[ls_opts],
                         help="push pre-labels to a Label Studio project as predictions, in review priority order")
    psh.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON (autolabel prelabel)")
    psh.add_argument("--project", required=True, help="project id, or title (created when new)")
    psh.add_argument("--manifest", default=None, help="manifest.csv of autolabel route: queue order and routing fields")
    psh.add_argument("--queues", nargs="+", default=["review", "scratch"], help="with --manifest: queues to push")
    psh.add_argument("--image-root", default=None, help="folder the image file names are relative to")
    psh.add_argument("--document-root", default=None,
                     help="the server's LOCAL_FILES_DOCUMENT_ROOT (default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    psh.add_argument("--image-url", default=None, help="URL prefix of the images instead of local files")
    psh.add_argument("--label-map", default=None, help="YAML/JSON: our class -> project label (null drops it)")
    psh.add_argument("--chunk-size", type=int, default=200, help="tasks per import request")
    psh.set_defaults(func=_cmd_push)

    pul = sub.add_parser("pull", parents=[ls_opts, match_opts],
                         help="read human corrections back, measure edits and time, fit a cost profile to them")
    pul.add_argument("--project", default=None, help="Label Studio project id or title")
    pul.add_argument("--cvat", default=None, help="a CVAT for images 1.1 XML export instead of a Label Studio project")
    pul.add_argument("--predictions", default=None, help="with --cvat: the pre-labels loaded into CVAT (COCO JSON)")
    pul.add_argument("--times", default=None, help="with --cvat: CSV with columns image,seconds (CVAT records no time)")
    pul.add_argument("--out", required=True, help="output directory (annotations.json, edits.csv, summary.json, profile)")
    pul.add_argument("--model-version", default=None, help="the predictions compared against (default: newest per task)")
    pul.add_argument("--profile", default="extreme-clicking", help="base cost profile name or YAML (configs/cost)")
    pul.add_argument("--fix", action="append", default=None, metavar="NAME=SECONDS",
                     help="pin a constant instead of fitting it (e.g. relabel_s=5.1); repeatable")
    pul.add_argument("--no-fit", action="store_true", help="measure edits and time only")
    pul.set_defaults(func=_cmd_pull)

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
