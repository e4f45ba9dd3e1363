"""``autolabel calibrate`` and ``autolabel route``."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Mapping

from autolabel.config import EXIT_OK
from autolabel.cli._common import emit_json, given, json_option, say, working


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

        with working(f"planning at alpha {cfg.alpha:g}, delta {cfg.delta:g}", not args.quiet):
            p = plan(preds, gt, cfg, target_coverage=args.target_coverage, n_repeats=args.plan_repeats)
        if not emit_json(args, {**p.summary, "curve": p.curve.to_dict("records")}):
            print(_plan_table(p.summary, p.curve))
        if not args.out:
            return EXIT_OK
    if not args.out:
        raise ValueError("calibrate needs --out (the policy JSON to write) unless --plan is given")
    with working(f"calibrating on {len(gt)} images", not args.quiet):
        policy = fit_policy(preds, gt, cfg)
    policy.save(args.out)
    shown = {k: len(v) if isinstance(v, list) else v for k, v in policy.summary.items()}  # class lists: counts
    if not emit_json(args, {"threshold": policy.threshold, "reason": policy.reason, **shown}):
        print(_policy_table(policy, cfg))
    say(args, f"wrote {args.out}")
    return EXIT_OK


def _policy_table(policy: Any, cfg: Any) -> str:
    """A fitted policy in a few lines: the threshold and why, the images, the box certification."""
    import pandas as pd

    s = policy.summary
    head = [f"auto-accept threshold: {'none' if policy.threshold is None else format(policy.threshold, '.4f')}  "
            f"({s.get('risk', cfg.risk)} <= {cfg.alpha:g} with probability {1 - cfg.delta:g}; {s.get('scorer')} scorer)",
            f"why: {policy.reason}",
            f"images: {s.get('images')} ({s.get('fit_images')} fit the scorer, {s.get('bound_images')} bound its risk), "
            f"{s.get('images_needing_edit')} need an edit; pre-labels: {s.get('prelabels')}"]
    cert = s.get("box_certification")
    if isinstance(cert, dict) and cert.get("p_correct_threshold"):
        t = pd.DataFrame(cert).rename(columns={"p_correct_threshold": "box P(correct) >=", "certified_boxes": "boxes",
                                               "ucb": "error bound"})
        head += ["box certification:", t.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    return "\n".join(head)


def _plan_table(summary: Mapping[str, Any], curve: Any) -> str:
    """The planner's answer: certified coverage now and projected, then the measured curve."""
    import pandas as pd

    def pct(v: Any) -> str:
        return "-" if v is None else f"{v:.1%}"

    n = summary["labeled_images"]
    rows = [("now", n, pct(summary["coverage_now"]), f"sd {pct(summary['coverage_now_sd'])}")]
    for k, mult in (("projected_2x", 2), ("projected_4x", 4)):
        if k in summary:
            p = summary[k]
            rows.append((f"{mult}x labeled", mult * n, pct(p["mean"]), f"{pct(p['lo'])} to {pct(p['hi'])}"))
    table = pd.DataFrame(rows, columns=["when", "labeled images", "certified coverage", "interval"])
    g = curve.groupby("images")["coverage"]
    measured = pd.DataFrame({"labeled images (subsample)": g.mean().index, "mean coverage": g.mean().map(pct).values,
                             "sd": g.std().map(pct).values, "fits": g.count().values})
    extra = [f"{k}: {v}" for k, v in summary.items()
             if k not in {"labeled_images", "alpha", "delta", "coverage_now", "coverage_now_sd", "projected_2x",
                          "projected_4x"}]
    return "\n".join([f"coverage certified at alpha {summary['alpha']:g}, delta {summary['delta']:g} "
                      f"(share of images auto-accepted):", table.to_string(index=False), *extra,
                      "measured on subsamples:", measured.to_string(index=False)])


def _cmd_route(args: argparse.Namespace) -> int:
    from autolabel.formats import read_coco
    from autolabel.routing import route

    routing = route(read_coco(args.predictions), args.policy, args.budget_hours, check_model=not args.any_model)
    written = routing.save(args.out, image_root_url=args.image_root_url)
    _record_prelabel_conf(args.out, routing.policy.config.prelabel_conf)
    summary = routing.summary()
    summary.get("budget", {}).pop("unreviewed", None)  # the list is in summary.json
    if not emit_json(args, summary):
        print(_route_table(summary))
    say(args, f"wrote {len(written)} files to {args.out}: " + ", ".join(os.path.basename(w) for w in written))
    return EXIT_OK


def _route_table(s: dict[str, Any]) -> str:
    """Queues with their images and expected human hours, against reviewing everything."""
    import pandas as pd

    secs = s.get("expected_seconds", {})
    rows = [(q, n, secs.get(q, 0.0) / 3600) for q, n in s["queues"].items()]
    t = pd.DataFrame(rows, columns=["queue", "images", "expected hours"])
    thr = "none (nothing is auto-accepted)" if s["threshold"] is None else f"{s['threshold']:.4f}"
    lines = [f"{s['images']} images routed with threshold {thr} ({s['risk']} <= {s['alpha']:g}, delta {s['delta']:g})",
             t.to_string(index=False, float_format=lambda v: f"{v:.2f}")]
    if secs:
        lines.append(f"expected hours: routed {secs['routed total'] / 3600:.2f}, reviewing everything "
                     f"{secs['review everything'] / 3600:.2f}, from scratch {secs['scratch everything'] / 3600:.2f}")
    b = s.get("budget")
    if b:
        lines.append(f"budget {b['hours']:g} h: {b['reviewed_images']} images reviewed, {b['unreviewed_images']} left "
                     f"(about {b['unreviewed_expected_images_needing_edit']:.0f} of them need an edit)")
    return "\n".join(lines)


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
    cal.add_argument("--quiet", action="store_true", help="no progress bar")
    json_option(cal, "the policy summary (with --plan: the plan and its curve)")
    cal.set_defaults(func=_cmd_calibrate)

    rte = sub.add_parser("route", help="send each image to auto_accept, review or scratch with a calibrated policy")
    rte.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON, from the policy's model")
    rte.add_argument("--policy", required=True, help="policy JSON written by autolabel calibrate")
    rte.add_argument("--out", required=True, help="output directory (manifest.csv, auto_accepted.json, queues)")
    rte.add_argument("--budget-hours", type=float, default=None, help="human hours for the review queue")
    rte.add_argument("--image-root-url", default="", help="prefix of image URLs in the Label Studio review tasks")
    rte.add_argument("--any-model", action="store_true", help="allow predictions whose model id differs or is missing")
    json_option(rte, "the routing summary")
    rte.set_defaults(func=_cmd_route)
