"""``autolabel audit`` and ``autolabel inspect-plan``."""

from __future__ import annotations

import argparse

from autolabel.cli._common import emit_json, json_option, say, working
from autolabel.config import EXIT_OK


def _cmd_audit(args: argparse.Namespace) -> int:
    from autolabel.audit import audit

    with working("auditing (fitting the ranker on corrupted copies)", not args.quiet):
        a = audit(args.labels, args.predictions, reference=args.reference, conf=args.conf, seeds=args.seeds,
                  min_score=args.min_score)
    written = a.save(args.out, image_root=args.images, examples=args.examples, min_score=args.queue_min_score)
    top = a.top(10)[["file_name", "kind", "category", "score", "evidence"]]
    kinds = a.suspects["kind"].value_counts().to_dict() if len(a.suspects) else {}
    if not emit_json(args, {"images": len(a.images), "suspects": len(a.suspects), "by_kind": kinds,
                            "calibrated": a.calibrated, "top": top.to_dict("records"), "written": written}):
        print(a)
        print(top.to_string(index=False, max_colwidth=60, float_format=lambda v: f"{v:.3f}"))
    say(args, f"wrote {len(written)} files to {args.out} (suspects.csv, images.csv, summary.md, ...)")
    return EXIT_OK


def _cmd_inspect_plan(args: argparse.Namespace) -> int:
    import numpy as np

    from autolabel.audit.inspection import guided_plan, plain_plan

    plans = []
    risk = None
    if args.audit:
        import pandas as pd

        images = pd.read_csv(args.audit)
        if "top_score" not in images.columns:
            raise ValueError(f"{args.audit}: no 'top_score' column (expected the images.csv of autolabel audit)")
        risk = images["top_score"].to_numpy(np.float64)  # the image's likeliest error
    batch = args.batch if args.batch is not None else (len(risk) if risk is not None else None)
    if batch is None:
        raise ValueError("give --batch (images in the batch) or --audit (an audit's images.csv)")
    if risk is not None and len(risk) != batch:
        raise ValueError(f"--batch {batch} but {args.audit} lists {len(risk)} images: the audit-guided plan is for "
                         "the audited batch itself; leave out --batch (it is then the audit's image count)")
    plans.append(plain_plan(batch, args.bar, args.delta, args.aql, args.producer_risk))
    if risk is not None:
        plans.append(guided_plan(risk, args.bar, args.delta, args.risky_at, args.aql, args.producer_risk))
    if not emit_json(args, [p.to_dict() for p in plans]):
        for p in plans:
            print(p.describe())
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    a = sub.add_parser("audit", help="rank suspected errors in human labels against a model's predictions")
    a.add_argument("--labels", required=True, help="human labels, COCO JSON")
    a.add_argument("--predictions", required=True, help="model predictions on the same images, COCO JSON (low conf)")
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument("--reference", default=None, help="reviewed correct labels of some images (COCO JSON): calibrate")
    a.add_argument("--images", default=None, help="image folder (labels' file names are relative to it): draw examples")
    a.add_argument("--examples", type=int, default=12, help="top suspects drawn (default 12)")
    a.add_argument("--conf", type=float, default=0.25, help="confident-prediction threshold (default 0.25)")
    a.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103],
                   help="corruption seeds of the ranker's training copies (default 101 102 103)")
    a.add_argument("--min-score", type=float, default=0.01, help="suspects.csv lists suspects from this score")
    a.add_argument("--queue-min-score", type=float, default=0.1, help="suspects in the review queue from this score")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    json_option(a, "the counts and the top suspects")
    a.set_defaults(func=_cmd_audit)

    p = sub.add_parser("inspect-plan", help="how many images to inspect, and failures to allow, to accept a batch")
    p.add_argument("--batch", type=int, default=None, help="images in the batch (default: those of --audit)")
    p.add_argument("--bar", type=float, default=0.9, help="pass rate to certify (default 0.9)")
    p.add_argument("--delta", type=float, default=0.1,
                   help="consumer's risk: P(accept | pass rate below the bar) at most this (default 0.1)")
    p.add_argument("--aql", type=float, default=None, help="acceptable failure rate (default (1 - bar) / 2)")
    p.add_argument("--producer-risk", type=float, default=0.1, help="P(reject | failure rate aql) at most this")
    p.add_argument("--audit", default=None, help="images.csv of autolabel audit: also the audit-guided plan")
    p.add_argument("--risky-at", type=float, default=0.9, help="guided: risk from which images are inspected in full")
    json_option(p, "the plans")
    p.set_defaults(func=_cmd_inspect_plan)
