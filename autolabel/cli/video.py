"""``autolabel video-savings``, ``video-calibrate`` and ``video-route`` (twins in :mod:`autolabel.video.files`)."""

from __future__ import annotations

import argparse
import json

from autolabel.config import EXIT_OK


def _cmd_savings(args: argparse.Namespace) -> int:
    from autolabel.io.files import atomic_write
    from autolabel.video.files import video_savings_files

    out = video_savings_files(args.ground_truth, args.tracks, args.profile)
    text = json.dumps(out, indent=2, default=float)
    if args.json:
        atomic_write(args.json, text + "\n")
    s = out["seconds"]
    print(f"minutes: scratch per frame {s['scratch_per_frame'] / 60:.1f}, assisted per frame "
          f"{s['assisted_per_frame'] / 60:.1f}, scratch keyframes {s['scratch_keyframes'] / 60:.1f}, assisted per "
          f"track {s['assisted_per_track'] / 60:.1f}; saved vs keyframes {out['saved_vs_keyframes']:.1%}, "
          f"model share {out['model_share']:.1%}")
    return EXIT_OK


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from autolabel.video.files import calibrate_files

    policy = calibrate_files(args.sequences, args.tracks, args.config)
    policy.save(args.out)
    print(json.dumps({"out": args.out, "threshold": policy.threshold, **policy.calibration}, indent=2, default=float))
    return EXIT_OK


def _cmd_route(args: argparse.Namespace) -> int:
    from autolabel.video.files import route_file

    written = route_file(args.tracks, args.policy, args.out)
    print(json.dumps({"written": written}, indent=2))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    s = sub.add_parser("video-savings", help="price a video four ways with its pre-label tracks (keyframes, per frame)")
    s.add_argument("--ground-truth", required=True, metavar="SEQ_DIR", help="MOTChallenge folder with gt/gt.txt")
    s.add_argument("--tracks", required=True, metavar="MOT_FILE", help="pre-label tracks (MOT .txt)")
    s.add_argument("--profile", default=None, metavar="YAML", help="video cost profile (default video-keyframes)")
    s.add_argument("--json", default=None, metavar="OUT", help="write the costs, saved_vs_keyframes and model_share")
    s.set_defaults(func=_cmd_savings)

    c = sub.add_parser("video-calibrate", help="learn which track segments to auto-accept, from sequences with ground truth")
    c.add_argument("--sequences", nargs="+", required=True, metavar="SEQ_DIR", help="MOTChallenge folders with gt/gt.txt")
    c.add_argument("--tracks", nargs="+", required=True, metavar="MOT_FILE", help="their track files, in the same order")
    c.add_argument("--config", default="video-factory-pass-90", help="configs/routing name or YAML")
    c.add_argument("--out", required=True, help="policy JSON to write")
    c.set_defaults(func=_cmd_calibrate)

    r = sub.add_parser("video-route", help="route track segments: accept or review, plus the check-here frames")
    r.add_argument("--tracks", required=True, metavar="MOT_FILE", help="track file (MOT .txt)")
    r.add_argument("--policy", required=True, help="policy JSON from video-calibrate")
    r.add_argument("--out", required=True, metavar="DIR", help="writes DIR/segments.csv and DIR/check_frames.csv")
    r.set_defaults(func=_cmd_route)
