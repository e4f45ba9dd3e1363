"""``autolabel calibrate`` and ``autolabel route``."""

from __future__ import annotations

import argparse
import json

from autolabel.config import EXIT_OK
from autolabel.cli._common import given


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from autolabel.config import RoutingPolicy
    from autolabel.formats import read_coco
    from autolabel.routing import fit_policy

    cfg = RoutingPolicy.load(args.config)
    overrides = given(risk=args.risk, alpha=args.alpha, delta=args.delta, method=args.method,
                       prelabel_conf=args.prelabel_conf, cost_profile=args.profile)
    cfg = RoutingPolicy.load({**cfg.model_dump(), **overrides})
    preds, gt = read_coco(args.predictions), read_coco(args.ground_truth)
    if args.plan:
        from autolabel.routing.planner import plan

        p = plan(preds, gt, cfg, target_coverage=args.target_coverage, n_repeats=args.plan_repeats)
        print(json.dumps(p.summary, indent=1))
        print(p.curve.groupby("images")["coverage"].agg(["mean", "std", "count"]).to_string())
        if not args.out:
            return EXIT_OK
    if not args.out:
        raise ValueError("calibrate needs --out (the policy JSON to write) unless --plan is given")
    policy = fit_policy(preds, gt, cfg)
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
    _record_prelabel_conf(args.out, routing.policy.config.prelabel_conf)
    summary = routing.summary()
    summary.get("budget", {}).pop("unreviewed", None)  # the list is in summary.json
    print(json.dumps(summary, indent=1))
    print("wrote " + ", ".join(written))
    return EXIT_OK


def _record_prelabel_conf(out_dir: str, conf: float) -> None:
    """Add the policy's pre-label threshold to ``summary.json``, where ``autolabel push
    --manifest`` reads it (it pushes only boxes at or above it)."""
    from pathlib import Path

    from autolabel.io.files import atomic_write

    path = Path(out_dir) / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary.setdefault("prelabel_conf", conf)
    atomic_write(path, json.dumps(summary, indent=1))


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    cal = sub.add_parser("calibrate", help="fit box calibration and the auto-accept threshold on labeled images")
    cal.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON (prelabel at a low --conf, e.g. 0.05)")
    cal.add_argument("--ground-truth", required=True, help="ground truth of the same images as a COCO JSON")
    cal.add_argument("--out", default=None, help="policy JSON to write (optional with --plan)")
    cal.add_argument("--plan", action="store_true",
                     help="calibration planner: coverage certified now and projected with 2x and 4x the labeled images")
    cal.add_argument("--target-coverage", type=float, default=None, help="with --plan: labeled images this coverage needs")
    cal.add_argument("--plan-repeats", type=int, default=6, help="with --plan: subsamples per curve point")
    cal.add_argument("--config", default="default",
                     help="routing policy YAML or name (configs/routing: default, strict-exact, factory-pass-90, box-accuracy-95)")
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
