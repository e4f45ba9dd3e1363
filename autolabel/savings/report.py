"""Savings reports: the sweep over the pre-label threshold, one model's report, and
models compared on one dataset, as DataFrames and matplotlib figures, written as
Markdown and as a self-contained HTML page (plots embedded as PNG).

Each model is scored at its best threshold (the one that saves the most human
seconds under the chosen cost profile). The 95% interval is a bootstrap over images at
that threshold; picking the threshold on the same images makes it slightly optimistic.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, DEFAULT_THRESHOLDS, IOU_ACCEPT, IOU_MIN, CostProfile
from autolabel.core import Results
from autolabel.matching import EDIT_KINDS, Matching, match_sweep
from autolabel.savings.render import CSS, formatted, md_table, png
from autolabel.savings.edits import EditCounts, kind_seconds, sensitivity, summarize

__all__ = [
    "DEFAULT_THRESHOLDS",
    "threshold_sweep",
    "sweep_table",
    "SavingsReport",
    "savings_report",
    "Comparison",
    "compare_predictions",
    "compare",
]

_KIND_COLORS = ("#2e7d32", "#9ccc65", "#ffb300", "#fb8c00", "#e53935", "#5c6bc0")


def _thresholds(pred: Results, thresholds: Sequence[float] | None) -> list[float]:
    """The grid, less the points below the lowest score but one (they all keep every box)."""
    grid = sorted(float(t) for t in (thresholds if thresholds is not None else DEFAULT_THRESHOLDS))
    scores = [float(d.scores.min()) for d in pred if len(d)]
    low = min(scores) if scores else 0.0
    kept = [t for t in grid if t >= low - 1e-6]
    below = [t for t in grid if t < low - 1e-6]
    return below[-1:] + kept


def threshold_sweep(
    pred: Results,
    gt: Results,
    profile: str | CostProfile = DEFAULT_PROFILE,
    thresholds: Sequence[float] | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    machine_seconds: float | None = None,
) -> Any:
    """DataFrame, one row per pre-label threshold: predictions kept, edits, seconds,
    fraction and hours saved per 1,000 images, net saving; ``best`` marks the threshold
    that saves the most. Of the grid points below the lowest prediction score (they all
    keep every box) only the highest is kept."""
    grid = _thresholds(pred, thresholds)
    return sweep_table(match_sweep(pred, gt, grid, iou_accept, iou_min), profile, machine_seconds)


def sweep_table(matchings: Sequence[Matching], profile: str | CostProfile = DEFAULT_PROFILE,
                machine_seconds: float | None = None) -> Any:
    """The sweep DataFrame (see :func:`threshold_sweep`) of one :class:`Matching` per
    threshold, in the order given."""
    import pandas as pd

    profile = CostProfile.load(profile)
    rows = []
    for m in matchings:
        s = summarize(EditCounts.of(m), profile, machine_seconds, n_boot=0)
        k = s["per_1000_images"]
        rows.append({
            "threshold": m.conf, "pred_boxes": s["pred_boxes"], **s["edits"],
            "scratch_seconds": s["scratch_seconds"], "assisted_seconds": s["assisted_seconds"],
            "saved_fraction": s["saved_fraction"], "saved_hours_per_1000": k["saved_hours"],
            "net_saving_per_1000": k["net_saving"],
        })
    df = pd.DataFrame(rows)
    df["best"] = False
    if len(df):
        df.loc[int(np.argmax(df["scratch_seconds"] - df["assisted_seconds"])), "best"] = True
    return df


@dataclass(eq=False)
class SavingsReport:
    """One model's savings: ``summary`` (JSON-ready dict, see
    :func:`autolabel.savings.summarize`, plus ``model`` and ``best_threshold``),
    ``per_class``, ``sensitivity`` (every cost profile) and ``sweep`` DataFrames, and
    the :class:`~autolabel.matching.Matching` at the threshold reported."""

    model: str
    summary: dict[str, Any]
    per_class: Any
    sensitivity: Any
    sweep: Any
    matching: Matching | None = field(default=None, repr=False)

    @property
    def best_threshold(self) -> float | None:
        return self.summary["best_threshold"]

    def to_dict(self) -> dict[str, Any]:
        """Summary fields at the top level, tables as lists of records."""
        tables = {k: json.loads(getattr(self, k).to_json(orient="records")) for k in ("per_class", "sensitivity", "sweep")}
        return {**self.summary, **tables}


def savings_report(
    pred: Results,
    gt: Results,
    profile: str | CostProfile = DEFAULT_PROFILE,
    conf: float | str | None = "best",
    machine_seconds: float | None = None,
    thresholds: Sequence[float] | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    n_boot: int = 1000,
    model: str | None = None,
    subset: bool = False,
) -> SavingsReport:
    """Score ``pred`` against ``gt`` at one pre-label threshold.

    Matching is done once per threshold of the sweep (plus ``conf`` when it is off the
    grid), by one :func:`~autolabel.matching.match_sweep`; every table reads those.

    Args:
        pred: predictions (any scores; a file written at a low ``--conf`` is the usual).
        gt: ground truth.
        profile: cost profile name, YAML or object.
        conf: ``"best"`` (the sweep's best threshold), a number, or ``None`` (every
            prediction as given).
        machine_seconds: measured inference seconds on these images.
        thresholds: the sweep grid (default :data:`DEFAULT_THRESHOLDS`).
        iou_accept: IoU from which a box is accepted as is.
        iou_min: IoU from which a box counts as finding its object.
        n_boot: bootstrap resamples of the 95% interval.
        model: name in the report (default: the predictions' ``model_id``).
        subset: score only the ground-truth images that have predictions (a pre-labeled
            sample of a labeled set); by default every ground-truth image needs them.

    Returns:
        The :class:`SavingsReport`; ``summary["below_threshold"]`` counts predictions
        scoring below the threshold reported (not pre-labels there).

    Raises:
        ValueError: a bad ``conf``, or predictions and ground truth that do not line up
            (ground-truth images without predictions: the message names ``subset``).
    """
    if isinstance(conf, str) and conf != "best":
        raise ValueError(f"conf must be a number, None or 'best', got {conf!r}")
    gt = predicted_only(pred, gt, subset)
    grid = _thresholds(pred, thresholds)
    extra = [] if conf == "best" or conf in grid else [conf]
    matchings = match_sweep(pred, gt, [*grid, *extra], iou_accept, iou_min)  # type: ignore[list-item]
    sweep = sweep_table(matchings[: len(grid)], profile, machine_seconds)
    best = float(sweep.loc[sweep["best"], "threshold"].iloc[0]) if len(sweep) else None
    at = best if conf == "best" else conf
    chosen = next((m for m in matchings if m.conf == at), matchings[-1])
    edits = EditCounts.of(chosen)
    summary = summarize(edits, profile, machine_seconds, n_boot)
    name = model or pred.model_id or "predictions"
    below = 0 if at is None else int(sum((d.scores < at).sum() for d in pred))
    summary = {"model": name, **summary, "best_threshold": best, "iou_accept": iou_accept, "iou_min": iou_min,
               "below_threshold": below}
    return SavingsReport(name, summary, edits.per_class(profile), sensitivity(edits, machine_seconds=machine_seconds),
                         sweep, chosen)


def predicted_only(pred: Results, gt: Results, subset: bool = True) -> Results:
    """``gt`` restricted to the images ``pred`` has (paired by file name) when ``subset``;
    without it, ``gt`` itself when every image has predictions.

    Raises:
        ValueError: ground-truth images without predictions and not ``subset``, with the way out.
    """
    have = {d.image.file_name for d in pred if d.image is not None}
    missing = [d.image.file_name for d in gt if d.image is not None and d.image.file_name not in have]
    if not missing:
        return gt
    if subset:
        return Results([d for d in gt if d.image is not None and d.image.file_name in have], gt.class_names,
                       gt.model_id, gt.failures)
    raise ValueError(f"{len(missing)} of {len(gt)} ground-truth images have no predictions (e.g. {missing[:3]}); "
                     f"to score only the {len(gt) - len(missing)} predicted images use --subset "
                     "(savings_report(..., subset=True))")


@dataclass(eq=False)
class Comparison:
    """Several models' :class:`SavingsReport` on one dataset under one cost profile."""

    reports: list[SavingsReport]
    dataset: str
    profile: str
    _figs: dict[str, Any] | None = field(default=None, init=False, repr=False)

    @property
    def summary(self) -> Any:
        """DataFrame, one row per model at its best threshold."""
        import pandas as pd

        rows = []
        for r in self.reports:
            s, k = r.summary, r.summary["per_1000_images"]
            rows.append({
                "model": r.model, "threshold": s["conf"], "pred_boxes": s["pred_boxes"],
                "saved_fraction": s["saved_fraction"], "ci95_low": s["saved_fraction_ci95"][0],
                "ci95_high": s["saved_fraction_ci95"][1], "saved_hours_per_1000": k["saved_hours"],
                "human_cost_saved_per_1000": k["human_cost_saved"],
                "machine_s_per_image": None if k["machine_seconds"] is None else k["machine_seconds"] / 1000,
                "machine_cost_per_1000": k["machine_cost"], "net_saving_per_1000": k["net_saving"],
                "currency": s["currency"],
            })
        return pd.DataFrame(rows)

    @property
    def sweep(self) -> Any:
        """DataFrame: every model's threshold sweep, with a ``model`` column."""
        import pandas as pd

        return pd.concat([r.sweep.assign(model=r.model) for r in self.reports], ignore_index=True)

    @property
    def edits(self) -> Any:
        """DataFrame: edit counts per model at its best threshold."""
        import pandas as pd

        return pd.DataFrame([{"model": r.model, "threshold": r.summary["conf"], **r.summary["edits"]} for r in self.reports])

    def figures(self) -> dict[str, Any]:
        """matplotlib Figures: ``saving_vs_threshold``, ``edits``, and
        ``saving_vs_machine`` (when machine seconds were measured)."""
        from matplotlib.figure import Figure

        out = {}
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for r in self.reports:
            sw = r.sweep
            (line,) = ax.plot(sw["threshold"], 100 * sw["saved_fraction"], marker=".", label=r.model)
            b = sw[sw["best"]]
            ax.plot(b["threshold"], 100 * b["saved_fraction"], "*", ms=14, color=line.get_color())
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="pre-label confidence threshold", ylabel="human time saved (%)",
               title=f"Saving vs threshold ({self.profile}; star = best)")
        ax.legend()
        out["saving_vs_threshold"] = fig

        fig = Figure(figsize=(6.4, 1.6 + 0.5 * len(self.reports)), layout="constrained")
        ax = fig.add_subplot()
        ed = self.edits
        left = np.zeros(len(ed))
        for kind, color in zip(EDIT_KINDS, _KIND_COLORS):
            ax.barh(ed["model"], ed[kind], left=left, color=color, label=kind)
            left += ed[kind].to_numpy()
        ax.set(xlabel="edits at the best threshold", title="Edit breakdown per model")
        ax.invert_yaxis()
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(EDIT_KINDS), fontsize="small")
        out["edits"] = fig

        sm = self.summary
        if sm["machine_s_per_image"].notna().all():
            fig = Figure(figsize=(6.4, 4.0), layout="constrained")
            ax = fig.add_subplot()
            ax.scatter(sm["machine_s_per_image"], sm["saved_hours_per_1000"])
            for _, row in sm.iterrows():
                ax.annotate(row["model"], (row["machine_s_per_image"], row["saved_hours_per_1000"]),
                            textcoords="offset points", xytext=(5, 5))
            ax.margins(0.25)
            ax.set(xlabel="machine seconds per image (measured)", ylabel="human hours saved per 1,000 images",
                   title="Saving vs machine time")
            out["saving_vs_machine"] = fig
        return out

    # -- documents: one list of blocks, rendered as Markdown or HTML ------------------------
    def _blocks(self) -> list[tuple[str, Any]]:
        b: list[tuple[str, Any]] = [("h1", f"Pre-labeling savings: {self.dataset}")]
        first = self.reports[0].summary
        intro = (f"{first['images']} images, {first['gt_boxes']} ground-truth boxes (crowd regions excluded); "
                 f"cost profile '{self.profile}'; edits matched at IoU >= {first['iou_min']} "
                 f"(accepted as is at IoU >= {first['iou_accept']}).")
        b.append(("p", intro))
        for r in self.reports:
            b.append(("p", _headline(r.summary)))
        if len(self.reports) > 1:
            ranked = sorted(self.reports, key=lambda r: -r.summary["saved_seconds"])
            top, rest = ranked[0], ranked[1:]
            diffs = ", ".join(
                f"{(top.summary['per_1000_images']['saved_hours'] - r.summary['per_1000_images']['saved_hours']):.2f} h "
                f"per 1,000 images more than {r.model}" for r in rest)
            b.append(("p", f"Best: {top.model}, saving {diffs}."))
        b += [("h2", "Summary"), ("table", self.summary), ("figure", "saving_vs_threshold")]
        b.append(("figure", "saving_vs_machine"))
        b += [("h2", "Edits at the best threshold"), ("table", self.edits), ("figure", "edits")]
        b.append(("h2", "Threshold sweep"))
        cols = ["threshold", "pred_boxes", *EDIT_KINDS, "saved_fraction", "saved_hours_per_1000", "best"]
        for r in self.reports:
            b += [("h3", r.model), ("table", r.sweep[cols])]
        b.append(("h2", "Per class (at the best threshold; seconds without the per-image overhead)"))
        for r in self.reports:
            pc = r.per_class[(r.per_class["gt_boxes"] > 0) | (r.per_class["delete"] > 0)]
            b += [("h3", r.model), ("table", pc.sort_values("gt_boxes", ascending=False))]
        b.append(("h2", "Sensitivity to the cost profile (at the best threshold)"))
        for r in self.reports:
            b += [("h3", r.model), ("table", r.sensitivity)]
        b += [("h2", "Method"), ("p", _METHOD), ("table", _profile_table(self.profile))]
        return b

    def _figures(self) -> dict[str, Any]:
        if self._figs is None:
            self._figs = self.figures()
        return self._figs

    def to_markdown(self, figure_files: Mapping[str, str] | None = None) -> str:
        """Markdown; figures are linked from ``figure_files`` (name -> relative path)."""
        out = []
        for kind, x in self._blocks():
            if kind in ("h1", "h2", "h3"):
                out.append("#" * int(kind[1]) + " " + x)
            elif kind == "p":
                out.append(x)
            elif kind == "table":
                out.append(md_table(formatted(x)))
            elif figure_files and x in figure_files:
                out.append(f"![{x}]({figure_files[x]})")
        return "\n\n".join(out) + "\n"

    def to_html(self) -> str:
        """One self-contained HTML page, plots embedded as PNG."""
        figs = self._figures()
        out = []
        for kind, x in self._blocks():
            if kind in ("h1", "h2", "h3"):
                out.append(f"<{kind}>{html.escape(x)}</{kind}>")
            elif kind == "p":
                out.append(f"<p>{html.escape(x)}</p>")
            elif kind == "table":
                out.append(formatted(x).to_html(index=False, border=0))
            elif x in figs:
                out.append(f'<img alt="{x}" src="data:image/png;base64,{base64.b64encode(png(figs[x])).decode()}">')
        title = html.escape(f"Pre-labeling savings: {self.dataset}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>{CSS}</style>"
                f"</head><body>\n" + "\n".join(out) + "\n</body></html>\n")

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "profile": self.profile, "models": [r.to_dict() for r in self.reports]}

    def save(self, out_dir: str | os.PathLike, name: str = "report") -> list[str]:
        """Write ``<name>.md`` (with ``<name>-<plot>.png`` beside it), ``<name>.html``
        and ``<name>.json`` into ``out_dir``; returns the paths."""
        from autolabel.io.files import atomic_write, safe_join

        os.makedirs(out_dir, exist_ok=True)
        written, files = [], {}
        for fig_name, fig in self._figures().items():
            rel = f"{name}-{fig_name.replace('_', '-')}.png"
            path = safe_join(out_dir, rel)
            with open(path, "wb") as f:
                f.write(png(fig))
            files[fig_name] = rel
            written.append(path)
        written.append(atomic_write(safe_join(out_dir, f"{name}.md"), self.to_markdown(files)))
        written.append(atomic_write(safe_join(out_dir, f"{name}.html"), self.to_html()))
        written.append(atomic_write(safe_join(out_dir, f"{name}.json"), json.dumps(self.to_dict(), indent=1)))
        return written


_METHOD = (
    "Each image's pre-labels (score >= threshold) are paired one-to-one with its ground truth by an optimal "
    "assignment (scipy linear_sum_assignment) over pairs with IoU >= iou_min, preferring right-class pairs, then "
    "more pairs, then higher total IoU. A pre-label on a crowd region of its class is "
    "ignored (COCO's rule). Edits: accept (right class, IoU >= iou_accept), adjust (right class, lower IoU), "
    "relabel (wrong class, IoU >= iou_accept), adjust_relabel (wrong class, lower IoU), delete (unpaired or "
    "duplicate), draw (missed object). Scratch = every object drawn by hand; assisted = correcting the "
    "pre-labels; both include the per-image overhead and review passes. A wrong box costs the cheaper of fixing "
    "it and deleting + redrawing it. Machine time is the measured pre-labeling wall time on the machine that "
    "made this report. Seconds per action of this profile:"
)



def _headline(s: Mapping[str, Any]) -> str:
    k, cur = s["per_1000_images"], s["currency"]
    lo, hi = s["saved_fraction_ci95"]
    at = "every prediction as given" if s["conf"] is None else f"pre-label threshold {s['conf']:.2f}"
    machine = (f"; machine time {k['machine_seconds'] / 1000:.3f} s per image costs {cur} {k['machine_cost']:.4f} "
               f"per 1,000 images, net saving {cur} {k['net_saving']:,.2f}") if k["machine_seconds"] is not None else ""
    return (f"{s['model']} saves {s['saved_fraction']:.1%} of human labeling time (95% CI {lo:.1%} to {hi:.1%}) "
            f"at {at}: {k['saved_hours']:.2f} h per 1,000 images ({k['scratch_hours']:.2f} h from scratch, "
            f"{k['assisted_hours']:.2f} h assisted), {cur} {k['human_cost_saved']:,.2f} of labeling pay{machine}.")


def _profile_table(profile: str) -> Any:
    import pandas as pd

    p = CostProfile.load(profile)
    rows = [{"item": f"{k} (s)", "value": v} for k, v in kind_seconds(p).items()]
    rows += [{"item": "image overhead (s)", "value": p.image_overhead_s},
             {"item": "review passes x s per box", "value": f"{p.review_passes} x {p.review_s_per_box}"},
             {"item": "pay", "value": f"{p.currency} {p.hourly_wage}/h" if p.hourly_wage is not None else
              f"{p.currency} {p.price_per_image or 0}/image + {p.price_per_box or 0}/box"},
             {"item": "machine price", "value": f"{p.currency} {p.machine_price_per_hour}/h"}]
    return pd.DataFrame(rows)


def compare_predictions(
    predictions: Mapping[str, Results],
    gt: Results,
    machine_seconds: Mapping[str, float] | None = None,
    profile: str = DEFAULT_PROFILE,
    thresholds: Sequence[float] | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    n_boot: int = 1000,
    dataset: str = "dataset",
) -> Comparison:
    """Compare pre-labels made earlier (model name -> :class:`Results`)."""
    CostProfile.load(profile)
    reports = [
        savings_report(p, gt, profile, "best", (machine_seconds or {}).get(name), thresholds, iou_accept, iou_min,
                       n_boot, model=name)
        for name, p in predictions.items()
    ]
    if not reports:
        raise ValueError("no models to compare")
    return Comparison(reports, dataset, profile)


def _select(gt: Results, split: str | os.PathLike | Sequence[str] | None) -> Results:
    """Ground-truth images named in ``split`` (a text file, one file name or stem a line, or a list)."""
    if split is None:
        return gt
    if isinstance(split, (str, os.PathLike)):
        with open(split, encoding="utf-8") as f:
            split = [line.strip() for line in f if line.strip()]
    wanted = set(split)
    keep = [d for d in gt if d.image and (d.image.file_name in wanted or os.path.splitext(d.image.file_name)[0] in wanted)]
    found = {d.image.file_name for d in keep} | {os.path.splitext(d.image.file_name)[0] for d in keep}  # type: ignore[union-attr]
    unknown = sorted(wanted - found)
    if unknown:
        raise ValueError(f"{len(unknown)} split entries are not ground-truth images (e.g. {unknown[:3]})")
    return Results(keep, gt.class_names, gt.model_id)


def compare(
    models: Sequence[Any],
    images: str | os.PathLike,
    ground_truth: str | os.PathLike | Results,
    profile: str = DEFAULT_PROFILE,
    split: str | os.PathLike | Sequence[str] | None = None,
    min_conf: float = 0.05,
    progress: bool = False,
    **options: Any,
) -> Comparison:
    """Pre-label the ground truth's images (``images`` folder + ``file_name``; only
    those in ``split`` if given) with every model at ``min_conf``, time each run, and
    compare. ``options`` go to :func:`compare_predictions`."""
    from autolabel.detectors import load_detector
    from autolabel.formats import read_coco
    from autolabel.pipeline import prelabel
    from autolabel.sources import Item, Source

    gt = ground_truth if isinstance(ground_truth, Results) else read_coco(ground_truth)
    gt = _select(gt, split)
    items = [Item(d.image.file_name, os.path.join(str(images), d.image.file_name)) for d in gt]  # type: ignore[union-attr]
    preds: dict[str, Results] = {}
    seconds: dict[str, float] = {}
    for spec in models:
        det = load_detector(spec)
        name = det.name if det.name not in preds else f"{det.name}#{len(preds)}"
        t0 = time.perf_counter()
        res = prelabel(Source(items, f"{len(items)} images under {images}", len(items)), det, conf=min_conf, progress=progress)
        seconds[name] = time.perf_counter() - t0
        if res.failures:
            f = res.failures[0]
            raise ValueError(f"{name}: {len(res.failures)} images could not be read, e.g. {f.key}: {f.reason}")
        preds[name] = res
    dataset = options.pop("dataset", os.path.basename(os.path.abspath(str(images))))
    return compare_predictions(preds, gt, seconds, profile, dataset=dataset, **options)
