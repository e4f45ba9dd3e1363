"""Does routing pay, and does its guarantee hold? The routing experiment of issue 10.

Per dataset and model: predictions once at conf 0.05 (boxes in [0.05, 0.25) stay as
evidence of missed objects), then ``--splits`` random half/half calibration/test splits
(seeds 0, 1, ...). On each split a policy is fitted on the calibration half and routes the
test half; we measure the realized risk (share of auto-accepted test images failing QC) and
coverage, for the learned scorer, the product model under the same exact bound, today's
product model (fixed sequence over every score, bound in sample) and the naive rule (every
pre-label scores >= 0.5), across alpha; and the human seconds and piece-rate money of the
routed work against reviewing everything.

    python scripts/routing_experiment.py --dataset coco-person        # -> benchmarks/reports/routing-coco-person.md
    python scripts/routing_experiment.py --dataset coco-val-150 --cache /work/cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import autolabel as al
from autolabel.config import CostProfile, RoutingPolicy
from autolabel.core import Results
from autolabel.formats import read_coco, write_coco
from autolabel.savings.render import md_table
from autolabel.savings.report import _select
from autolabel.routing import cross_validate
from autolabel.routing.fit import targets
from autolabel.routing.planner import plan

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
PRED_CONF = 0.05
DATASETS = {
    "coco-person": {"title": "coco-person (800 COCO val2017 images with people, person boxes only)",
                    "models": ("yolov5n.onnx", "yolo11n-int8.onnx"), "images": "images", "split": None,
                    "class_map": ROOT / "configs" / "classmaps" / "person.yaml"},
    "coco-val-150": {"title": "coco-val-150 (150 COCO val2017 images, 80 classes)",
                     "models": ("yolov5n.onnx", "yolo11n-int8.onnx"), "images": "images", "split": None, "class_map": None},
    "bccd": {"title": "BCCD val (87 images; RBC, WBC, Platelets)", "models": ("yolov8n-bccd.pt",),
             "images": "JPEGImages", "split": "ImageSets/Main/val.txt", "class_map": None,
             "note": "BCCD's ground truth leaves many red cells unlabeled, so part of the `delete` edits are real cells."},
}
SCORERS = {  # label -> policy overrides on top of the preset
    "learned (exact)": {},
    "product (exact)": {"scorer": "product"},
    "product (today: in-sample sequence)": {"scorer": "product", "test": "ltt_sequence", "holdout": 0.0},
}
ALPHAS = (0.1, 0.2, 0.3)


def load(name: str, model: str, cache: Path | None) -> tuple[Results, Results]:
    spec = DATASETS[name]
    root = SHARED / "data" / name
    gt = read_coco(root / "instances.json")
    if spec["split"]:
        gt = _select(gt, root / spec["split"])
    path = cache / f"{Path(model).stem}-{name}{'-val' if spec['split'] else ''}-conf{PRED_CONF}.json" if cache else None
    if path is not None and path.is_file():
        preds = read_coco(path)
    else:
        paths = [str(root / spec["images"] / d.image.file_name) for d in gt]  # type: ignore[union-attr]
        preds = al.prelabel(paths, model, conf=PRED_CONF, class_map=spec["class_map"], progress=True)
        if path is not None:
            write_coco(preds, str(path) + ".tmp.json")
            os.replace(str(path) + ".tmp.json", path)
    keep = {d.image.file_name for d in gt}  # type: ignore[union-attr]
    return Results([d for d in preds if d.image.file_name in keep], preds.class_names, preds.model_id), gt  # type: ignore[union-attr]


def fmt(df: pd.DataFrame, digits: int = 3) -> str:
    def cell(v: object) -> str:
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    return md_table(pd.DataFrame({c: [cell(v) for v in df[c]] for c in df.columns}))


def summarize(label: str, cv: pd.DataFrame, alpha: float, money_rate: float) -> dict[str, object]:
    took = cv[cv["auto_accepted"] > 0]
    ok = ((cv["risk"] <= alpha) | (cv["auto_accepted"] == 0)).mean()
    return {
        "scorer": label, "alpha": alpha, "splits risk <= alpha": f"{ok:.0%}", "splits accepting": f"{len(took)}/{len(cv)}",
        "mean coverage": cv["coverage"].mean(), "mean risk (when any)": took["risk"].mean() if len(took) else float("nan"),
        "max risk": took["risk"].max() if len(took) else float("nan"), "AUC": cv["auc_no_edit"].mean(),
        "routed h": cv["routed_s"].mean() / 3600, "review-all h": cv["review_everything_s"].mean() / 3600,
        "routed money": cv["routed_s"].mean() * money_rate, "review-all money": cv["review_everything_s"].mean() * money_rate,
    }


def plot(rows: pd.DataFrame, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library call: choosing the backend is ours
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (label, model), g in rows.groupby(["scorer", "model"], sort=False):
        axes[0].plot(g["alpha"], g["mean coverage"], "o-", label=f"{model}: {label}")
        axes[1].plot(g["alpha"], g["mean risk (when any)"], "o-", label=f"{model}: {label}")
    axes[1].plot([0, 0.5], [0, 0.5], "k:", lw=1, label="risk = alpha")
    axes[0].set(xlabel="alpha", ylabel="mean coverage (test halves)", title=title)
    axes[1].set(xlabel="alpha", ylabel="mean realized risk (when any accepted)")
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(name: str, n_splits: int, delta: float, preset: str, out: Path, cache: Path | None) -> str:
    spec = DATASETS[name]
    t0 = time.perf_counter()
    base = RoutingPolicy.load(preset).model_dump()
    profile = CostProfile.load(base["cost_profile"])
    rows, naive, plans, per_split = [], [], [], {}
    for model in spec["models"]:
        preds, gt = load(name, model, cache)
        for label, extra in SCORERS.items():
            for a in ALPHAS:
                cv = cross_validate(preds, gt, {**base, **extra, "alpha": a, "delta": delta}, n_splits=n_splits)
                rate = ((profile.price_per_image or 0) * cv["images"] + (profile.price_per_box or 0) * cv["n_gt"]).sum() / cv[
                    "scratch_everything_s"].sum()
                rows.append({"model": model, **summarize(label, cv, a, rate)})
                if label == "learned (exact)":
                    per_split[(model, a)] = cv
                    if a == ALPHAS[0]:
                        clean = 1 - targets(preds, gt, RoutingPolicy.load({**base, **extra}))[1]["needs_edit"].mean()
                        naive.append({"model": model, "images needing no edit": clean,
                                      "naive coverage": cv["naive_coverage"].mean(),
                                      "naive risk": cv["naive_risk"].mean(), "splits naive risk > 0.1": f"{(cv['naive_risk'] > 0.1).mean():.0%}"})
        p = plan(preds, gt, {**base, "alpha": 0.2, "delta": delta}, target_coverage=0.1, n_repeats=4)
        sm = dict(p.summary)
        for k in ("projected_2x", "projected_4x"):
            v = sm.pop(k)
            sm[k.replace("projected_", "coverage at ")] = f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"
        for k in ("images_for_target", "images_needed_by_risk_curve"):
            lo, hi = sm.pop(f"{k}_lo_hi")
            sm[k] = f"{sm[k]} [{lo if lo is None else round(lo)}, {hi if hi is None else round(hi)}]"
        plans.append({"model": model, **sm})
    table = pd.DataFrame(rows)
    png = out / f"routing-{name}-alpha.png"
    plot(table, png, spec["title"][:40])
    strong = spec["models"][-1]
    main = table[(table.model == strong) & (table.scorer == "learned (exact)")].set_index("alpha")
    lines = [
        f"# Routing on {spec['title']}", "",
        f"Written by `python scripts/routing_experiment.py --dataset {name}` ({n_splits} half/half splits, delta = {delta}, "
        f"preset `{preset}`, cost profile `{base['cost_profile']}`; {time.perf_counter() - t0:.0f} s on a shared 2-core CPU, "
        "so timings are noisy). Predictions at conf 0.05; pre-labels score >= 0.25.", "",
        "**Risk** = share of auto-accepted test images failing QC (a person missed, a box off any crowd region, or IoU "
        "< 0.5); **coverage** = share of test images auto-accepted. A split that accepts nothing takes no risk. "
        "*exact* = fit on half of the calibration half, thresholds (coverage grid) and order chosen there, bound "
        "(Clopper–Pearson, fixed sequence) on the other half: P(risk > alpha) <= delta holds exactly "
        "(`autolabel/routing/__init__.py`). *today* = the product model with the bound on its own fit images.", "",
        "## Result", "",
        f"* `{strong}`, learned scorer: realized risk <= alpha in **{main.loc[0.2, 'splits risk <= alpha']}** of the splits "
        f"at alpha 0.2 with mean coverage **{main.loc[0.2, 'mean coverage']:.1%}** (max realized risk "
        f"{main.loc[0.2, 'max risk']:.3f}); at alpha 0.1: coverage **{main.loc[0.1, 'mean coverage']:.1%}**, risk <= alpha in "
        f"{main.loc[0.1, 'splits risk <= alpha']}.",
        *([f"* Nothing is certified for `{m}` at any alpha tested: see the share of images needing no edit below "
           "and the planner, which says whether more labeled images would change that."
           for m in spec["models"] if table[(table.model == m) & (table.scorer == "learned (exact)")]["mean coverage"].max() == 0]),
        "",
        "## Coverage and realized risk against alpha (means over splits)", "",
        fmt(table), "", f"![coverage and risk against alpha]({png.name})", "",
        f"Hours and money are per test half ({len(gt) - len(gt) // 2} images; realized: the true edits priced by the cost "
        "profile; auto-accepted images cost nothing, their remaining errors are what the risk counts). Money is in "
        f"{profile.currency} at the profile's piece rates: assisted work is paid at the rate per human second that "
        "labeling from scratch implies.", "",
        "## Images needing no edit, and the naive rule (auto-accept when every pre-label scores >= 0.5)", "",
        fmt(pd.DataFrame(naive)), "",
        "## Calibration planner (alpha 0.2, learned scorer; `autolabel calibrate --plan`)", "",
        "Coverage certified now with all labeled images (mean over refits with other holdout splits), projected "
        "at 2x and 4x as many by the subsampling curve (10–90% bootstrap interval), labeled images for a 10% "
        "coverage by that curve and by the out-of-sample risk curve (None: not reachable at the measured risk; "
        "see `autolabel/routing/planner.py`).", "",
        fmt(pd.DataFrame(plans)), "",
        f"## Per split: `{strong}`, learned scorer, alpha 0.2", "",
        fmt(per_split[(strong, 0.2)][["split", "threshold", "auto_accepted", "coverage", "risk", "auc_no_edit",
                                      "routed_s", "review_everything_s"]]), "",
        *([spec["note"], ""] if spec.get("note") else []),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=tuple(DATASETS), default="coco-person")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--preset", default="factory-pass-90")
    ap.add_argument("--cache", default=None, help="folder for prediction files (<model>-<dataset>-conf0.05.json)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports"))
    args = ap.parse_args(argv)
    os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = run(args.dataset, args.splits, args.delta, args.preset, out, Path(args.cache) if args.cache else None)
    path = out / f"routing-{args.dataset}.md"
    path.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
