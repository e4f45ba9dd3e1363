"""``autolabel savings`` and ``autolabel compare``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autolabel.config import EXIT_OK
from autolabel.cli._common import emit_json, json_option, match_options, say



def _cmd_savings(args: argparse.Namespace) -> int:
    from autolabel.formats import read_coco
    from autolabel.savings.report import predicted_only, savings_report

    pred = read_coco(args.predictions)
    gt = predicted_only(pred, read_coco(args.ground_truth), args.subset)  # (the error names --subset)
    conf = None if args.every_prediction else ("best" if args.conf is None else args.conf)
    rep = savings_report(
        pred, gt, args.profile, conf, args.machine_seconds, iou_accept=args.iou_accept, iou_min=args.iou_min
    )
    if args.json != "-":
        _print_savings(args, rep, conf)
    if args.class_thresholds:
        from autolabel.savings.thresholds import per_class_gain

        gain = per_class_gain(pred, gt, args.profile, iou_accept=args.iou_accept, iou_min=args.iou_min)
        say(args, f"per-class thresholds, out of sample (fitted on one half of the images, measured on the other): "
                  f"saved {gain['per_class_saved_fraction']:.1%} against {gain['global_saved_fraction']:.1%} with one "
                  f"global threshold ({gain['gain_fraction']:+.1%} points)")
        say(args, f"wrote {gain['thresholds'].save(args.class_thresholds)} (fitted on all images; "
                  f"use it with autolabel prelabel --conf-per-class)")
    out = rep.to_dict()
    if pred.keypoint_spec is not None and gt.keypoint_spec is not None:  # both files hold keypoints
        out["keypoints"] = _keypoints(pred, gt, args)
    emit_json(args, out)
    return EXIT_OK


def _print_savings(args: argparse.Namespace, rep: Any, conf: Any) -> None:
    s = rep.savings
    lo, hi = s.saved_fraction_ci95
    if s.conf is None:
        at = "every prediction as a pre-label"
    elif conf == "best":
        at = f"pre-label threshold {s.conf:.2f}, the best of the sweep"
    else:
        at = f"pre-label threshold {s.conf:.2f}"
    print(f"{s.images} images, {s.gt_boxes} ground-truth boxes, {s.pred_boxes} pre-labels ({at}); "
          f"edits: " + ", ".join(f"{k} {v}" for k, v in s.edits.items()))
    print(f"human seconds: {s.scratch_seconds:.0f} from scratch, {s.assisted_seconds:.0f} assisted; saved "
          f"{s.saved_fraction:.1%} (95% CI {lo:.1%} to {hi:.1%}) at threshold "
          f"{'none' if s.conf is None else format(s.conf, '.2f')}; best threshold of the sweep {rep.best_threshold}")
    if rep.below_threshold:
        print(f"note: {args.predictions} holds {rep.below_threshold} predictions scoring below {s.conf:.2f}; "
              "they are not counted as pre-labels (filter them out when importing: --conf at prelabel time)",
              file=sys.stderr)


def _keypoints(pred: Any, gt: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Price the keypoints too; print the summary and the joints fixed most."""
    from autolabel.savings.keypoints import keypoint_savings

    kp = keypoint_savings(pred, gt, args.keypoint_profile, iou_accept=args.iou_accept, iou_min=args.iou_min)
    s = kp.summary
    lo, hi = s["saved_fraction_ci95"]
    say(args, f"keypoints ({args.keypoint_profile}): {s['labeled_keypoints']} labeled keypoints; saved "
          f"{s['saved_fraction']:.1%} (95% CI {lo:.1%} to {hi:.1%}) of keypoint labeling time at box threshold "
          f"{s['conf']:.2f} and visibility threshold {s['visibility_threshold']:.2f} (the best of the sweep); "
          "actions: " + ", ".join(f"{k} {v}" for k, v in s["actions"].items()))
    top = kp.per_keypoint.head(3)
    say(args, "joints fixed most: " + ", ".join(f"{r.keypoint} {r.fix_rate:.0%}" for r in top.itertuples()))
    return kp.to_dict()


def _cmd_compare(args: argparse.Namespace) -> int:
    import os

    from autolabel.formats import read_coco
    from autolabel.savings.ladder import MachinePrices, run_ladder
    from autolabel.savings.report import _select, compare_predictions

    prices = MachinePrices(args.cpu_hour, args.gpu_hour, args.gpu_images_per_second)
    ladder, preds, seconds = run_ladder(args.models, args.images, args.ground_truth, split=args.split_file,
                                        evidence_conf=args.min_conf, prices=prices, progress=not args.quiet)
    gt = _select(read_coco(args.ground_truth), args.split_file)
    cmp = compare_predictions(preds, gt, seconds, args.profile, dataset=os.path.basename(os.path.abspath(args.images)))
    print(cmp.summary.to_string(index=False))
    cols = ["model", "precision", "mAP50_95", "threshold", "saved_hours_per_1000", "saved_hours_ci95_low",
            "saved_hours_ci95_high", "per_class_gain_fraction", "cpu_s_per_image", "cpu_cost_per_1000",
            "gpu_cost_per_1000", "net_extreme-clicking_per_1000", "net_annotation-factory_per_1000", "pareto"]
    print(ladder.table[cols].to_string(index=False))
    for d in dict.fromkeys(ladder.table["dataset"]):
        print(ladder.recommendation(d))
    for path in [*cmp.save(args.out, args.name), *ladder.save(args.out, f"{args.name}-ladder")]:
        print(f"wrote {path}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    sav = sub.add_parser("savings", parents=[match_options()],
                         help="score pre-labels against ground truth: edits, human seconds and money saved")
    sav.add_argument("--predictions", required=True, help="pre-labels as a COCO JSON (autolabel prelabel --format coco)")
    sav.add_argument("--ground-truth", required=True, help="ground truth as a COCO JSON")
    json_option(sav, "the full summary (per class, sensitivity, sweep)")
    sav.add_argument("--subset", action="store_true",
                     help="score only the ground-truth images that have predictions (e.g. a pre-labeled sample)")
    sav.add_argument("--profile", default="extreme-clicking", help="cost profile name or YAML (configs/cost)")
    sav.add_argument("--conf", type=float, default=None,
                     help="pre-label threshold (default: the sweep's best, printed)")
    sav.add_argument("--every-prediction", action="store_true", help="count every prediction in the file as a pre-label")
    sav.add_argument("--class-thresholds", default=None, metavar="YAML",
                     help="fit per-class thresholds, write them here, and report their out-of-sample gain")
    sav.add_argument("--keypoint-profile", default="keypoints",
                     help="keypoint cost profile (configs/cost/keypoints.yaml), used when both files hold keypoints")
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
    cmp.add_argument("--cpu-hour", type=float, default=0.05, help="price of one core-hour (USD)")
    cmp.add_argument("--gpu-hour", type=float, default=0.60, help="price of one GPU-hour (USD)")
    cmp.add_argument("--gpu-images-per-second", type=float, default=400.0,
                     help="assumed GPU images/s of a nano detector at 640x640 (see autolabel.savings.ladder)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bar")
    cmp.set_defaults(func=_cmd_compare)
