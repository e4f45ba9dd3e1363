"""Learning curves of the labeling loop: how much human time a model fine-tuned on the first
labels saves, per labeled image, per selection strategy; and whether the planner, fitted on
the early rounds, predicts the later ones.

    nice -n 10 python benchmarks/learning_curve.py [--datasets face-masks bccd]
        [--strategies random uncertainty diversity mix] [--seeds 0 1 2] [--rounds 10 25 50 100 200]
        [--imgsz 320] [--epochs N | --image-steps 2000] [--budget-minutes M] [--candidates N]
        [--report-only]

Data: ``face-masks`` (853 images, 3 classes no shared model knows): a fixed held-back set of
200 images (seeded draw, the same for every run), the other 653 the pool; ``bccd``: the
pool is the data set's own train split (205), the held-back set its val split (87).
Each run (data set, strategy, seed) is :func:`autolabel.training.loop.run_loop` from
``yolo11n-coco.pt``, fine-tuning the previous round's model on all labels so far (warm
start); savings under ``extreme-clicking`` at each round's best threshold.

The full configuration (the defaults) is 2 data sets x 4 strategies x 3 seeds x 5 rounds at
320 px. It does not fit a shared 2-core CPU in an afternoon: scale it with the flags, and the
report states exactly what ran. Trainings are cached in ``benchmarks/.cache/learning-curve``
(git-ignored; keyed by data set, labeled images, base model bytes and settings; a random and an
active run share their first round, which both draw at random), finished runs as their
``loop.json``; a rerun resumes. Writes ``benchmarks/reports/learning-curve.{md,csv,png}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
DATA = SHARED / "data"
CACHE = ROOT / "benchmarks" / ".cache" / "learning-curve"
REPORTS = ROOT / "benchmarks" / "reports"
HELDOUT_SEED = 20261205  # the face-masks held-back draw: fixed for every run
PROJECT_IMAGES = 1000  # the planner's break-even is for a project of this many images


def datasets(names: list[str]) -> dict[str, dict[str, Any]]:
    """name -> images folder, ground truth, pool keys, held-back ground truth."""
    import numpy as np

    from autolabel.core import Results
    from autolabel.formats import read_coco

    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "face-masks":
            gt = read_coco(str(DATA / "face-masks" / "instances.json"))
            keys = sorted(d.image.key for d in gt)
            held = sorted(np.random.default_rng(HELDOUT_SEED).choice(keys, 200, replace=False).tolist())
            pool = [k for k in keys if k not in set(held)]
            images = DATA / "face-masks" / "images"
        elif name == "bccd":
            gt = read_coco(str(DATA / "bccd" / "instances.json"))
            split = {s: [x + ".jpg" for x in (DATA / "bccd" / "ImageSets" / "Main" / f"{s}.txt").read_text().split()]
                     for s in ("train", "val")}
            pool, held = split["train"], split["val"]
            images = DATA / "bccd" / "JPEGImages"
        else:
            raise SystemExit(f"unknown data set {name!r}: face-masks or bccd")
        out[name] = {"images": str(images), "truth": gt, "pool": pool,
                     "heldout": Results([gt[k] for k in held], gt.class_names)}
    return out


class CachedTrainer:
    """:func:`autolabel.training.train`, each run kept in ``CACHE/train/<key>`` and reused
    when the same images are trained from the same base bytes with the same settings."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.hits = 0

    def _key(self, labels: Any, kw: dict[str, Any]) -> str:
        from autolabel.detectors.base import file_sha256

        base = str(kw["base"])
        base_id = file_sha256(base) if os.path.isfile(base) else base
        blob = json.dumps([self.dataset, sorted(d.image.key for d in labels), base_id,
                           {k: v for k, v in kw.items() if k != "base"}], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    def __call__(self, labels: Any, images: str, out: str, **kw: Any) -> Any:
        from autolabel.training import TrainResult, train

        folder = CACHE / "train" / self._key(labels, kw)
        done = folder / "result.json"
        if done.is_file():
            self.hits += 1
            d = json.loads(done.read_text())
            return TrainResult(**{**d, "class_names": tuple(d["class_names"])})
        res = train(labels, images, str(folder), **kw)
        done.write_text(json.dumps(res.to_dict()))
        return res


def _options(data: dict[str, Any], dataset: str, strategy: str, seed: int, args: argparse.Namespace) -> tuple[Any, Path]:
    """The run's loop options and its cache folder (named by a hash of both)."""
    from autolabel.training.loop import LoopOptions

    opts = LoopOptions(strategy=strategy, rounds=tuple(r for r in args.rounds if r <= len(data["pool"])),
                       imgsz=args.imgsz, epochs=args.epochs, image_steps=args.image_steps,
                       min_epochs=args.min_epochs, max_epochs=args.max_epochs, budget_minutes=args.budget_minutes,
                       seed=seed, candidates=args.candidates, prelabel_rest=False, n_boot=1000,
                       train_options={"hyper": _hyper(args.hyper)} if args.hyper else {})
    tag = hashlib.sha256(json.dumps([dataset, str(opts)], default=str).encode()).hexdigest()[:10]
    return opts, CACHE / "runs" / dataset / f"{strategy}-seed{seed}-{tag}"


def _hyper(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as Ultralytics training arguments (values read as YAML)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--hyper expects KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def run_one(data: dict[str, Any], dataset: str, strategy: str, seed: int, args: argparse.Namespace) -> Any:
    """One loop run, or its cached ``loop.json`` (None with --report-only when it has not run)."""
    from autolabel.training.loop import GroundTruthOracle, run_loop
    from autolabel.training.rounds import LoopResult

    opts, out = _options(data, dataset, strategy, seed, args)
    if (out / "loop.json").is_file():
        return LoopResult.from_dict(json.loads((out / "loop.json").read_text()))
    if args.report_only:
        return None
    trainer = CachedTrainer(dataset)
    t0 = time.monotonic()
    res = run_loop(data["images"], data["pool"], data["heldout"], GroundTruthOracle(data["truth"]), str(out), opts,
                   train=trainer)
    print(f"{dataset} {strategy} seed {seed}: {(time.monotonic() - t0) / 60:.1f} min, "
          f"{trainer.hits} cached trainings", flush=True)
    return res


def collect(args: argparse.Namespace) -> Any:
    """Every finished run of the requested grid (running the missing ones unless --report-only)."""
    import pandas as pd

    frames = []
    for dataset, data in datasets(args.datasets).items():
        for strategy in args.strategies:
            for seed in args.seeds:
                r = run_one(data, dataset, strategy, seed, args)
                if r is not None:
                    df = r.to_pandas()
                    df.insert(0, "dataset", dataset)
                    df["heldout_images"] = len(r.heldout)
                    df["pool_size"] = len(data["pool"])
                    frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def goal_table(df: Any) -> Any:
    """Per data set and active strategy: the fewest labeled images whose mean saving (over
    seeds) reaches random's mean saving at 200 labeled images, and that count / 200."""
    import pandas as pd

    rows = []
    for dataset, g in df.groupby("dataset"):
        mean = g.groupby(["strategy", "labeled_images"])["saved_fraction"].mean()
        if ("random", 200) not in mean.index:
            continue
        ref = float(mean[("random", 200)])
        for strategy in sorted(set(g["strategy"]) - {"random"}):
            curve = mean[strategy]
            hit = [int(n) for n, s in curve.items() if s >= ref]
            first = min(hit) if hit else None
            rows.append({"dataset": dataset, "strategy": strategy, "random_200_saved_fraction": ref,
                         "strategy_200_saved_fraction": float(curve.get(200, float("nan"))),
                         "labels_to_reach": first, "share_of_200": None if first is None else first / 200,
                         "goal_met (<= 60%)": bool(first is not None and first <= 120)})
    return pd.DataFrame(rows)


def planner_tables(df: Any) -> tuple[Any, Any]:
    """Honesty check (fit on rounds <= 50, predict later) and the plan, per data set and strategy."""
    import pandas as pd

    from autolabel.training.planner import honesty_check, plan_rounds

    checks, plans = [], []
    for (dataset, strategy), g in df.groupby(["dataset", "strategy"]):
        if g.loc[g["labeled_images"] <= 50, "labeled_images"].nunique() < 3:
            continue
        _, table = honesty_check(g, early_max=50)
        table.insert(0, "strategy", strategy)
        table.insert(0, "dataset", dataset)
        checks.append(table)
        curve, p = plan_rounds(g, project_images=PROJECT_IMAGES)
        a, b, c = curve.params
        plans.append({"dataset": dataset, "strategy": strategy, "curve": f"{a:.3f} - {b:.3f} n^-{c:.2f}",
                      "target_saved_fraction": p.target, "images_for_target": p.images_for_target[0],
                      "ci95": f"{p.images_for_target[1]:.0f}-{p.images_for_target[2]:.0f}",
                      "project_images": p.pool_images, "break_even_images": p.break_even[0],
                      "break_even_ci95": f"{p.break_even[1]}-{p.break_even[2]}"})
    return (pd.concat(checks, ignore_index=True) if checks else pd.DataFrame()), pd.DataFrame(plans)


def summary_table(df: Any) -> Any:
    """Mean (and spread over seeds) per data set, strategy and labeled-image count."""
    agg = df.groupby(["dataset", "strategy", "labeled_images"]).agg(
        runs=("seed", "size"), saved_fraction=("saved_fraction", "mean"), sd=("saved_fraction", "std"),
        ci95_low=("saved_fraction_ci95_low", "mean"), ci95_high=("saved_fraction_ci95_high", "mean"),
        map50=("map50", "mean"), labeling_hours=("labeling_hours", "mean"),
        pool_hours_saved=("pool_hours_saved", "mean"), train_minutes=("train_minutes", "mean"),
        epochs=("epochs", "max"))
    return agg.reset_index()


def write_report(df: Any, args: argparse.Namespace, wall_minutes: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autolabel.savings.render import formatted, md_table
    from autolabel.training.rounds import plot_curves

    REPORTS.mkdir(parents=True, exist_ok=True)
    df.to_csv(REPORTS / "learning-curve.csv", index=False)
    names = sorted(df["dataset"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        plot_curves(df[df["dataset"] == name], ax)
        ax.set_title(name)
    fig.tight_layout()
    fig.savefig(REPORTS / "learning-curve.png", dpi=100)
    goal, (check, plans) = goal_table(df), planner_tables(df)
    runs = df.groupby(["dataset", "strategy"])["seed"].unique().apply(lambda s: ", ".join(map(str, sorted(s))))
    cmd = "nice -n 10 python benchmarks/learning_curve.py " + " ".join(sys.argv[1:])
    parts = [
        "# Learning curves of the labeling loop", "",
        f"Command: `{cmd}` (wall time of this invocation {wall_minutes:.0f} min; cached runs and trainings are "
        "reused). Machine: the shared 2-core CPU.", "",
        "## What ran", "",
        f"Settings: imgsz {args.imgsz}, rounds at {list(args.rounds)} labeled images, epochs per round "
        + (f"{args.epochs}" if args.epochs else f"= {args.image_steps} image steps / labeled images within "
           f"[{args.min_epochs}, {args.max_epochs}]")
        + (f", Ultralytics arguments {' '.join(args.hyper)}" if args.hyper else "")
        + f", budget per round {args.budget_minutes or 'none'} min, {args.candidates or 'all'} candidate images "
        "scored per round, warm start from the previous round, base `yolo11n-coco.pt`, cost profile "
        "`extreme-clicking`, savings at each round's best threshold on the fixed held-back set (95% bootstrap "
        "interval over held-back images).", "",
        md_table(runs.rename("seeds").reset_index()), "", *([args.note, ""] if args.note else []),
        "## Saved fraction per labeled images (mean over seeds)", "",
        md_table(formatted(summary_table(df))), "",
        "![learning curves](learning-curve.png)", "",
        "## Goal: an active strategy reaches random's 200-image saving with <= 60% of the labels", "",
        md_table(formatted(goal)) if len(goal) else "Not measurable: no random run reached 200 labeled images.", "",
        "## Planner honesty check: fitted on rounds <= 50 labeled images, predicting the later rounds", "",
        md_table(formatted(check)) if len(check) else "Not measurable: fewer than 3 rounds <= 50 images.", "",
        "## Planner on all rounds (target = the saving measured at the last round; break-even on a "
        f"{PROJECT_IMAGES:,}-image project, extreme-clicking wage, CPU price, measured training minutes)", "",
        md_table(formatted(plans)) if len(plans) else "", "",
        "Per-round rows of every run: `learning-curve.csv`.", "",
    ]
    path = REPORTS / "learning-curve.md"
    path.write_text("\n".join(parts))
    return str(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["face-masks", "bccd"])
    p.add_argument("--strategies", nargs="+", default=["random", "uncertainty", "diversity", "mix"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rounds", nargs="+", type=int, default=[10, 25, 50, 100, 200])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--epochs", type=int, default=None, help="epochs per round (default: --image-steps rule)")
    p.add_argument("--image-steps", type=int, default=2000, help="images seen per round when --epochs is not given")
    p.add_argument("--min-epochs", type=int, default=3)
    p.add_argument("--max-epochs", type=int, default=60)
    p.add_argument("--budget-minutes", type=float, default=None, help="wall-clock budget of each round's training")
    p.add_argument("--candidates", type=int, default=None, help="unlabeled images scored per round (default all)")
    p.add_argument("--hyper", nargs="*", default=[], help="Ultralytics training arguments KEY=VALUE "
                   "(e.g. val=False warmup_epochs=0: no per-epoch validation, no warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--note", default="", help="a line for the report's 'What ran' (e.g. how the runs were split)")
    p.add_argument("--report-only", action="store_true", help="write the report from the cached runs only")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.monotonic()
    df = collect(args)
    if not len(df):
        print("no finished runs", file=sys.stderr)
        return 1
    print(write_report(df, args, (time.monotonic() - t0) / 60))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
