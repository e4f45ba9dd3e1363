"""``autolabel push`` and ``autolabel pull``: the Label Studio (and CVAT) round trip.

A Label Studio refusal (server, token, config) propagates to :func:`autolabel.cli.main`,
which prints it on one line (``--debug``: with its traceback) and exits with status 2."""

from __future__ import annotations

import argparse
import json

from autolabel.config import DEFAULT_PROFILE, EXIT_OK
from autolabel.cli._common import match_options



def _ls_client(args: argparse.Namespace):
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
    from autolabel.labelstudio import PushOptions, push

    options = PushOptions(
        routing=args.manifest, queues=args.queues, prelabel_conf=args.prelabel_conf, image_url=args.image_url,
        image_root=args.image_root, document_root=args.document_root, chunk_size=args.chunk_size,
        label_map=load_yaml(args.label_map) if args.label_map else None,
    )
    report = push(read_coco(args.predictions), _project(args), client=_ls_client(args), options=options)
    print(json.dumps(report.summary(), indent=1))
    return EXIT_OK


def _cmd_pull(args: argparse.Namespace) -> int:
    from autolabel.savings.measure import measure_cvat
    from autolabel.labelstudio import pull

    fixed = {}
    for item in args.fix or []:
        name, _, value = item.partition("=")
        try:
            fixed[name] = float(value)
        except ValueError as e:
            raise ValueError(f"--fix expects NAME=SECONDS (e.g. draw_s=7.0), got {item!r}") from e
    opts = dict(profile=args.profile, fit=not args.no_fit, fixed=fixed, iou_accept=args.iou_accept, iou_min=args.iou_min)
    if args.cvat:
        if not args.predictions:
            raise ValueError("--cvat needs --predictions: the pre-labels that were loaded into CVAT (COCO JSON)")
        m = measure_cvat(args.cvat, args.predictions, args.times, **opts)
    else:
        if not args.project:
            raise ValueError("give --project (Label Studio) or --cvat (a CVAT XML export)")
        m = pull(_project(args), client=_ls_client(args), model_version=args.model_version, **opts)
    written = m.save(args.out)
    summary = m.summary()
    print(json.dumps({k: summary[k] for k in ("source", "rows", "images", "timed_rows", "edits", "baseline")}, indent=1))
    if m.fit is not None:
        print(m.fit.table.to_string())
        print(f"R^2 {m.fit.r2:.3f}, RMSE {m.fit.rmse_s:.2f} s over {m.fit.n_rows} timed rows")
    print("wrote " + ", ".join(written))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
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
    psh.add_argument("--prelabel-conf", type=float, default=None,
                     help="push only boxes scoring at least this (with --manifest: default the policy's pre-label "
                          "threshold, from the summary.json beside it)")
    psh.add_argument("--image-root", default=None, help="folder the image file names are relative to")
    psh.add_argument("--document-root", default=None,
                     help="the server's LOCAL_FILES_DOCUMENT_ROOT (default: $LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT)")
    psh.add_argument("--image-url", default=None, help="URL prefix of the images instead of local files")
    psh.add_argument("--label-map", default=None, help="YAML/JSON: our class -> project label (null drops it)")
    psh.add_argument("--chunk-size", type=int, default=200, help="tasks per import request")
    psh.set_defaults(func=_cmd_push)

    pul = sub.add_parser("pull", parents=[ls_opts, match_options()],
                         help="read human corrections back, measure edits and time, fit a cost profile to them")
    pul.add_argument("--project", default=None, help="Label Studio project id or title")
    pul.add_argument("--cvat", default=None, help="a CVAT for images 1.1 XML export instead of a Label Studio project")
    pul.add_argument("--predictions", default=None, help="with --cvat: the pre-labels loaded into CVAT (COCO JSON)")
    pul.add_argument("--times", default=None, help="with --cvat: CSV with columns image,seconds (CVAT records no time)")
    pul.add_argument("--out", required=True, help="output directory (annotations.json, edits.csv, summary.json, profile)")
    pul.add_argument("--model-version", default=None, help="the predictions compared against (default: newest per task)")
    pul.add_argument("--profile", default=DEFAULT_PROFILE, help="base cost profile name or YAML (configs/cost)")
    pul.add_argument("--fix", action="append", default=None, metavar="NAME=SECONDS",
                     help="pin a constant instead of fitting it (e.g. relabel_s=5.1); repeatable")
    pul.add_argument("--no-fit", action="store_true", help="measure edits and time only")
    pul.set_defaults(func=_cmd_pull)
