"""``autolabel loop`` (the labeling loop on a labeled set) and ``autolabel loop-plan`` (when it pays)."""

from __future__ import annotations

import argparse
import json

from autolabel.config import DEFAULT_PROFILE, EXIT_OK


def _cmd_loop(args: argparse.Namespace) -> int:
    import numpy as np

    from autolabel.core import Results
    from autolabel.training.data import read_labels
    from autolabel.training.loop import GroundTruthOracle, LoopOptions, run_loop

    truth = read_labels(args.labels)
    keys = sorted(d.image.key for d in truth if d.image)
    if args.heldout:
        with open(args.heldout, encoding="utf-8") as f:
            held = sorted({line.strip() for line in f if line.strip()})
        unknown = sorted(set(held) - set(keys))
        if unknown:
            raise ValueError(f"{args.heldout}: {len(unknown)} held-back keys are not in {args.labels}: {unknown[:3]}")
    else:
        n = int(round(args.heldout_share * len(keys)))
        if not 0 < n < len(keys):
            raise ValueError(f"--heldout-share {args.heldout_share} of {len(keys)} images leaves one side empty")
        held = sorted(np.random.default_rng(args.heldout_seed).choice(keys, n, replace=False).tolist())
    pool = [k for k in keys if k not in set(held)]
    opts = LoopOptions(strategy=args.strategy, rounds=tuple(args.rounds), base=args.base, warm_start=not args.from_base,
                       imgsz=args.imgsz, epochs=args.epochs, budget_minutes=args.budget_minutes, seed=args.seed,
                       profile=args.profile, candidates=args.candidates)
    res = run_loop(args.images, pool, Results([truth[k] for k in held], truth.class_names),
                   GroundTruthOracle(truth), args.out, opts)
    print(res.to_pandas().drop(columns=["strategy", "seed"]).to_string(index=False))
    print(f"wrote {args.out}/loop.json, loop.csv, loop.md, loop.png")
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    import pandas as pd

    from autolabel.io.files import load_json
    from autolabel.training.planner import honesty_check, plan_rounds
    from autolabel.training.rounds import LoopResult

    runs = [LoopResult.from_dict(load_json(p)[0]) for p in args.runs]
    df = pd.concat([r.to_pandas() for r in runs], ignore_index=True)
    if df["strategy"].nunique() > 1:
        raise ValueError(f"the runs mix strategies {sorted(df['strategy'].unique())}: plan one strategy at a time")
    curve, p = plan_rounds(df, args.project_images, args.target, args.profile, args.machine_price)
    print(repr(curve))
    print(repr(p))
    if df.loc[df["labeled_images"] <= args.early_max, "labeled_images"].nunique() >= 3:
        _, table = honesty_check(df, args.early_max)
        print(f"honesty check (fitted on rounds <= {args.early_max} images):")
        print(table.to_string(index=False))
    print(json.dumps({"curve": list(curve.params), "images_for_target": list(p.images_for_target),
                      "break_even": list(p.break_even)}))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands."""
    lp = sub.add_parser("loop", help="the labeling loop on a labeled set: select, label, fine-tune, measure per round")
    lp.add_argument("--images", required=True, help="image folder the labels' file names are relative to")
    lp.add_argument("--labels", required=True,
                    help="labels the loop reveals as it selects (COCO/YOLO/VOC/Label Studio/CVAT, a pull export)")
    lp.add_argument("--out", required=True, help="run folder (rounds, models, loop.json/csv/md/png)")
    lp.add_argument("--heldout", default=None, help="file of held-back image keys, one a line (never selected)")
    lp.add_argument("--heldout-share", type=float, default=0.2, help="without --heldout: share held back (seeded draw)")
    lp.add_argument("--heldout-seed", type=int, default=0, help="seed of that draw")
    lp.add_argument("--strategy", choices=("random", "uncertainty", "diversity", "mix"), default="random")
    lp.add_argument("--rounds", nargs="+", type=int, default=[25, 50, 100, 200],
                    help="cumulative labeled images after each round")
    lp.add_argument("--base", default="yolo11n-coco.pt", help="base checkpoint (a trusted .pt: it is a pickle)")
    lp.add_argument("--from-base", action="store_true", help="fine-tune the base every round (default: previous round)")
    lp.add_argument("--imgsz", type=int, default=320)
    lp.add_argument("--epochs", type=int, default=None, help="epochs per round (default: 2000 image steps / labeled)")
    lp.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget of each round's training")
    lp.add_argument("--candidates", type=int, default=None, help="unlabeled images scored per round (default all)")
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--profile", default=DEFAULT_PROFILE, help="cost profile name or YAML (configs/cost)")
    lp.set_defaults(func=_cmd_loop)

    pl = sub.add_parser("loop-plan", help="fit the learning curve of loop runs: images for a target saving, break-even")
    pl.add_argument("runs", nargs="+", help="loop.json files of one strategy (several seeds)")
    pl.add_argument("--project-images", type=int, required=True, help="images the project must label in all")
    pl.add_argument("--target", type=float, default=None, help="saved fraction wanted (default: the last round's)")
    pl.add_argument("--profile", default=DEFAULT_PROFILE, help="cost profile: wage and machine price per hour")
    pl.add_argument("--machine-price", type=float, default=None, help="training machine price per hour (e.g. a GPU)")
    pl.add_argument("--early-max", type=int, default=50, help="honesty check: fit on rounds up to this many images")
    pl.set_defaults(func=_cmd_plan)
