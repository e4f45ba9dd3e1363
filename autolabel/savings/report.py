"""Savings reports: the sweep over the pre-label threshold, one model's report, and
models compared on one dataset (:class:`~autolabel.savings.comparison.Comparison`: DataFrames
and matplotlib figures, written as Markdown and as a self-contained HTML page).

Each model is scored at its best threshold (the one that saves the most human
seconds under the chosen cost profile). The 95% interval is a bootstrap over images at
that threshold; picking the threshold on the same images makes it slightly optimistic.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, DEFAULT_THRESHOLDS, IOU_ACCEPT, IOU_MIN, CostProfile
from autolabel.core import Results
from autolabel.matching import Matching, match_sweep
from autolabel.results import Record
from autolabel.savings.comparison import Comparison
from autolabel.savings.edits import EditCounts, MatchOptions, Savings, sensitivity, summarize

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
        rows.append({
            "threshold": m.conf, "pred_boxes": s.pred_boxes, **s.edits,
            "scratch_seconds": s.scratch_seconds, "assisted_seconds": s.assisted_seconds,
            "saved_fraction": s.saved_fraction, "saved_hours_per_1000": s.per_1000_images.saved_hours,
            "net_saving_per_1000": s.per_1000_images.net_saving,
        })
    df = pd.DataFrame(rows)
    df["best"] = False
    if len(df):
        df.loc[int(np.argmax(df["scratch_seconds"] - df["assisted_seconds"])), "best"] = True
    return df


@dataclass(frozen=True, eq=False, repr=False)
class SavingsReport(Record):
    """One model's savings at one pre-label threshold.

    Attributes:
        model: the name in the report.
        savings: :class:`~autolabel.savings.edits.Savings` at the threshold reported.
        best_threshold: the sweep's best threshold (``None``: an empty sweep).
        iou_accept, iou_min: the matching IoUs.
        below_threshold: predictions scoring below the threshold reported.
        per_class, sensitivity (every cost profile), sweep: DataFrames.
        matching: the :class:`~autolabel.matching.Matching` at the threshold reported.
    """

    model: str
    savings: Savings
    best_threshold: float | None
    iou_accept: float
    iou_min: float
    below_threshold: int
    per_class: Any
    sensitivity: Any
    sweep: Any
    matching: Matching | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """What the JSON report holds: ``model``, the savings fields, the threshold and
        IoUs at the top level, then the tables as lists of records."""
        tables = {k: json.loads(getattr(self, k).to_json(orient="records")) for k in ("per_class", "sensitivity", "sweep")}
        return {"model": self.model, **self.savings.to_dict(), "best_threshold": self.best_threshold,
                "iou_accept": self.iou_accept, "iou_min": self.iou_min, "below_threshold": self.below_threshold,
                **tables}

    @property
    def summary(self) -> dict[str, Any]:
        """The JSON summary without the tables (deprecated: read :attr:`savings` and the attributes)."""
        warnings.warn("SavingsReport.summary is deprecated; read .savings and the report's attributes",
                      DeprecationWarning, stacklevel=2)
        d = self.to_dict()
        return {k: v for k, v in d.items() if k not in ("per_class", "sensitivity", "sweep")}

    def to_pandas(self) -> Any:
        """The threshold sweep (one row per threshold)."""
        return self.sweep

    def __repr__(self) -> str:
        s = self.savings
        lo, hi = s.saved_fraction_ci95
        at = "every prediction" if s.conf is None else f"conf {s.conf:.2f}"
        return (f"SavingsReport({self.model!r}, {s.images} images, {at}: saved {s.saved_fraction:.1%} "
                f"(95% CI {lo:.1%} to {hi:.1%}), {s.per_1000_images.saved_hours:.2f} h and {s.currency} "
                f"{s.per_1000_images.net_saving:,.2f} net per 1,000 images; best threshold {self.best_threshold})")

    def _repr_html_(self) -> str:
        import html

        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.savings.to_pandas().to_html(index=False)


@dataclass(frozen=True)
class SavingsOptions(MatchOptions):
    """How a savings report sweeps and scores: ``thresholds`` (the sweep grid, default
    :data:`DEFAULT_THRESHOLDS`), ``iou_accept`` (IoU from which a box is accepted as is),
    ``iou_min`` (IoU from which a box counts as finding its object), ``n_boot``
    (bootstrap resamples of the 95% interval).

    Raises:
        TypeError: an unknown option (:meth:`of`). ValueError: a value out of range.
    """

    thresholds: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.thresholds is not None:
            object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))


def savings_report(
    pred: Results,
    gt: Results,
    profile: str | CostProfile = DEFAULT_PROFILE,
    conf: float | str | None = "best",
    machine_seconds: float | None = None,
    model: str | None = None,
    subset: bool = False,
    options: SavingsOptions | None = None,
    **kw: Any,
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
        model: name in the report (default: the predictions' ``model_id``).
        subset: score only the ground-truth images that have predictions (a pre-labeled
            sample of a labeled set); by default every ground-truth image needs them.
        options, kw: :class:`SavingsOptions` (``thresholds``, ``iou_accept``, ``iou_min``,
            ``n_boot``), as an object and/or keywords.

    Returns:
        The :class:`SavingsReport`; ``below_threshold`` counts predictions scoring below
        the threshold reported (not pre-labels there).

    Raises:
        TypeError: an unknown option.
        ValueError: a bad ``conf`` or option, or predictions and ground truth that do not line up
            (ground-truth images without predictions: the message names ``subset``).
    """
    opts = SavingsOptions.of(options, **kw)
    iou_accept, iou_min = opts.iou_accept, opts.iou_min
    if isinstance(conf, str) and conf != "best":
        raise ValueError(f"conf must be a number, None or 'best', got {conf!r}")
    gt = predicted_only(pred, gt, subset)
    grid = _thresholds(pred, opts.thresholds)
    at_conf = None if isinstance(conf, str) else conf
    extra: list[float | None] = [] if conf == "best" or at_conf in grid else [at_conf]
    matchings = match_sweep(pred, gt, [*grid, *extra], iou_accept, iou_min)
    sweep = sweep_table(matchings[: len(grid)], profile, machine_seconds)
    best = float(sweep.loc[sweep["best"], "threshold"].iloc[0]) if len(sweep) else None
    at = best if conf == "best" else at_conf
    chosen = next((m for m in matchings if m.conf == at), matchings[-1])
    edits = EditCounts.of(chosen)
    name = model or pred.model_id or "predictions"
    below = 0 if at is None else int(sum((d.scores < at).sum() for d in pred))
    return SavingsReport(name, summarize(edits, profile, machine_seconds, opts.n_boot), best, iou_accept, iou_min, below,
                         edits.per_class(profile), sensitivity(edits, machine_seconds=machine_seconds), sweep, chosen)


def predicted_only(pred: Results, gt: Results, subset: bool = True) -> Results:
    """``gt`` restricted to the images ``pred`` has (paired by file name) when ``subset``;
    without it, ``gt`` itself when every image has predictions.

    Raises:
        ValueError: ground-truth images without predictions and not ``subset``, with the way out.
    """
    have = {d.info.file_name for d in pred if d.image is not None}
    missing = [d.info.file_name for d in gt if d.image is not None and d.info.file_name not in have]
    if not missing:
        return gt
    if subset:
        return Results([d for d in gt if d.image is not None and d.info.file_name in have], gt.class_names,
                       gt.model_id, gt.failures)
    raise ValueError(f"{len(missing)} of {len(gt)} ground-truth images have no predictions (e.g. {missing[:3]}); "
                     f"to score only the {len(gt) - len(missing)} predicted images use --subset "
                     "(savings_report(..., subset=True))")


def compare_predictions(
    predictions: Mapping[str, Results],
    gt: Results,
    machine_seconds: Mapping[str, float] | None = None,
    profile: str = DEFAULT_PROFILE,
    dataset: str = "dataset",
    options: SavingsOptions | None = None,
    **kw: Any,
) -> Comparison:
    """Compare pre-labels made earlier (model name -> :class:`Results`); ``options`` and
    ``kw`` as :func:`savings_report`."""
    CostProfile.load(profile)
    opts = SavingsOptions.of(options, **kw)
    reports = [savings_report(p, gt, profile, "best", (machine_seconds or {}).get(name), name, options=opts)
               for name, p in predictions.items()]
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
    found = {d.image.file_name for d in keep} | {os.path.splitext(d.image.file_name)[0] for d in keep}
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
    evidence_conf: float = 0.05,
    progress: bool = False,
    **options: Any,
) -> Comparison:
    """Pre-label the ground truth's images (``images`` folder + ``file_name``; only
    those in ``split`` if given) with every model at ``evidence_conf``, time each run, and
    compare. ``options`` go to :func:`compare_predictions`."""
    from autolabel.detectors import load_detector
    from autolabel.formats import read_coco
    from autolabel.pipeline import prelabel
    from autolabel.sources import Item, Source

    gt = ground_truth if isinstance(ground_truth, Results) else read_coco(ground_truth)
    gt = _select(gt, split)
    items = [Item(d.image.file_name, os.path.join(str(images), d.image.file_name)) for d in gt]
    preds: dict[str, Results] = {}
    seconds: dict[str, float] = {}
    for spec in models:
        det = load_detector(spec)
        name = det.name if det.name not in preds else f"{det.name}#{len(preds)}"
        t0 = time.perf_counter()
        res = prelabel(Source(items, f"{len(items)} images under {images}", len(items)), det, conf=evidence_conf, progress=progress)
        seconds[name] = time.perf_counter() - t0
        if res.failures:
            f = res.failures[0]
            raise ValueError(f"{name}: {len(res.failures)} images could not be read, e.g. {f.key}: {f.reason}")
        preds[name] = res
    dataset = options.pop("dataset", os.path.basename(os.path.abspath(str(images))))
    return compare_predictions(preds, gt, seconds, profile, dataset=dataset, **options)
