"""Measured edits and time of finished annotations against their pre-labels, and the
cost fit on them (:func:`autolabel.savings.costfit.fit_costs`).

:func:`measure` builds one row per finished annotation from pairs of (pre-labels, final
boxes) and fits; :func:`autolabel.labelstudio.pull` feeds it from a Label Studio project,
:func:`measure_cvat` from a CVAT for images 1.1 export (CVAT records no time per image:
give ``times``, image -> seconds, e.g. a CSV from your time tracking, to fit; without
it you get the edits and the seconds the profile models).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np

from autolabel.config import DEFAULT_PROFILE, CostProfile
from autolabel.core import Detections, ImageInfo, Results
from autolabel.matching import EDIT_KINDS, align_classes
from autolabel.savings.costfit import CostFit, fit_costs
from autolabel.savings.edits import MatchOptions, edit_seconds, scratch_seconds

__all__ = ["Measurement", "MeasureOptions", "measure", "measure_cvat"]


@dataclass(frozen=True)
class MeasureOptions(MatchOptions):
    """How :func:`measure` matches and fits: ``profile`` (the base cost profile, name or
    YAML), ``fit`` (fit the constants when some row is timed), ``fixed`` (constants pinned
    to known values, see :func:`~autolabel.savings.costfit.fit_costs`), ``iou_accept``,
    ``iou_min`` (the matching thresholds), ``n_boot`` (bootstrap resamples).

    Raises:
        TypeError: an unknown option (:meth:`of` names the known ones).
        ValueError: a value out of range.
    """

    profile: str | CostProfile = DEFAULT_PROFILE
    fit: bool = True
    fixed: Mapping[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class Measurement:
    """Edits and measured time of finished images against their pre-labels.

    ``rows``: one per finished annotation: ``image``, ``prelabeled`` (False: labeled
    from scratch), ``pred_boxes``, ``gt_boxes``, the :data:`EDIT_KINDS` counts,
    ``seconds`` (measured; NaN when unknown) and, priced with ``profile`` (the fitted
    one when there is a fit) by :mod:`autolabel.savings.edits`, ``scratch_s``, ``assisted_s``
    and ``saved_s``. ``ground_truth``/``prelabels``: the final boxes and the pre-labels,
    one entry per image.
    """

    rows: Any
    ground_truth: Results
    prelabels: Results
    profile: CostProfile
    fit: CostFit | None = None
    source: str = ""

    def baseline(self) -> dict[str, Any]:
        """Measured seconds per image and per final box, with and without pre-labels
        (rows with a time only); ``saved_fraction_per_box`` when both kinds exist."""
        df = self.rows[np.isfinite(self.rows["seconds"].to_numpy(np.float64))]
        out: dict[str, Any] = {}
        for name, part in (("prelabeled", df[df["prelabeled"]]), ("scratch", df[~df["prelabeled"]])):
            boxes = int(part["gt_boxes"].sum())
            out[name] = {
                "rows": len(part),
                "seconds": float(part["seconds"].sum()),
                "gt_boxes": boxes,
                "seconds_per_image": float(part["seconds"].mean()) if len(part) else None,
                "seconds_per_box": float(part["seconds"].sum()) / boxes if boxes else None,
            }
        a, b = out["prelabeled"]["seconds_per_box"], out["scratch"]["seconds_per_box"]
        out["saved_fraction_per_box"] = 1.0 - a / b if a is not None and b else None
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready: counts, measured and modeled seconds, the baseline and the fit."""
        r = self.rows
        return {
            "source": self.source,
            "rows": len(r),
            "images": len(self.ground_truth),
            "timed_rows": int(np.isfinite(r["seconds"].to_numpy(np.float64)).sum()),
            "edits": {k: int(r[k].sum()) for k in EDIT_KINDS},
            "measured_seconds": float(np.nansum(r["seconds"].to_numpy(np.float64))),
            "modeled_assisted_seconds": float(r["assisted_s"].sum()),
            "modeled_scratch_seconds": float(r["scratch_s"].sum()),
            "baseline": self.baseline(),
            "fit": self.fit.summary() if self.fit else None,
        }

    def save(self, out_dir: str | os.PathLike) -> list[str]:
        """Write ``annotations.json`` (COCO, the final boxes), ``edits.csv``,
        ``summary.json`` and, with a fit, ``cost_profile.yaml``; returns the paths."""
        import json

        from autolabel.formats import write

        out = str(out_dir)
        paths = write(self.ground_truth, out, "coco")
        self.rows.to_csv(os.path.join(out, "edits.csv"), index=False)
        with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
            json.dump(self.summary(), f, indent=2, allow_nan=False)
        paths += [os.path.join(out, "edits.csv"), os.path.join(out, "summary.json")]
        if self.fit is not None:
            paths.append(self.fit.to_yaml(os.path.join(out, "cost_profile.yaml")))
        return paths

    def __repr__(self) -> str:
        fit = f"; {self.fit!r}" if self.fit else ""
        return f"Measurement({len(self.rows)} rows, {len(self.ground_truth)} images from {self.source or '?'}{fit})"


def measure(
    pairs: Iterable[tuple[Mapping[str, Any], Detections, Detections, bool]],
    ground_truth: Results,
    prelabels: Results,
    source: str = "",
    **options: Any,
) -> Measurement:
    """Tabulate edits and measured time of finished annotations, and fit the cost constants.

    Every pair is matched in one :func:`autolabel.matching.match` over all rows (each row
    its own image: one image may have several annotations, so the join key is the row).

    Args:
        pairs: ``(meta, pre-labels, final boxes, prelabeled)`` per annotation; ``meta``
            fields become columns (``image``, ``seconds``: measured, NaN when unknown).
            Pre-labels and final boxes name the same classes.
        ground_truth, prelabels: the final boxes and the pre-labels, one per image
            (kept in the result).
        source: where the annotations came from (shown in the summary).
        options: :class:`MeasureOptions` (``profile``, ``fit``, ``fixed``,
            ``iou_accept``, ``iou_min``, ``n_boot``).

    Returns:
        A :class:`Measurement`.

    Raises:
        TypeError: an unknown option.
        ValueError: pre-labels and final boxes with different classes, bad boxes, or a
            fit that breaks the profile's rules.
    """
    opts = MeasureOptions.of(None, **options)
    pairs = list(pairs)
    df = _edit_rows(pairs, ground_truth, opts)
    cost_fit = None
    if opts.fit and np.isfinite(df["seconds"].to_numpy(np.float64)).any():
        cost_fit = fit_costs(df, opts.profile, fixed=opts.fixed, n_boot=opts.n_boot)
    p = cost_fit.profile if cost_fit else CostProfile.load(opts.profile)
    c = df[list(EDIT_KINDS)].to_numpy(np.float64)
    df["scratch_s"] = scratch_seconds(df["gt_boxes"].to_numpy(np.float64), p) if len(df) else []
    df["assisted_s"] = edit_seconds(c, p) if len(df) else []
    df["saved_s"] = df["scratch_s"] - df["assisted_s"]
    return Measurement(df, ground_truth, prelabels, p, cost_fit, source)


def _edit_rows(pairs: list[tuple[Mapping[str, Any], Detections, Detections, bool]], ground_truth: Results,
               opts: MeasureOptions) -> Any:
    """The meta columns, ``prelabeled``, ``pred_boxes``, ``gt_boxes``, the edit counts
    and ``seconds`` of every pair (all matched at once, each row its own image)."""
    import pandas as pd

    from autolabel.matching import match

    names = pairs[0][2].class_names if pairs else ground_truth.class_names

    def row(i: int, d: Detections) -> Detections:
        return replace(d, image=ImageInfo(str(i), *(d.image.width, d.image.height) if d.image else (0, 0)))

    pre = Results([row(i, p) for i, (_, p, _, _) in enumerate(pairs)], pairs[0][1].class_names if pairs else names)
    final = Results([row(i, g) for i, (_, _, g, _) in enumerate(pairs)], names)
    m = match(pre, final, None, opts.iou_accept, opts.iou_min)
    counts = pd.DataFrame(m.image_counts, columns=list(EDIT_KINDS))
    records = [{**meta, "prelabeled": bool(pl), "pred_boxes": len(p)} for meta, p, _, pl in pairs]
    df = pd.DataFrame(records, columns=list(dict.fromkeys([*(records[0] if records else {}), "image", "prelabeled",
                                                             "pred_boxes"])))
    df["gt_boxes"] = np.bincount(m.gt_image[~m.gt_crowd], minlength=len(pairs)).astype(np.int64)
    df = pd.concat([df, counts], axis=1)
    if "seconds" not in df.columns:
        df["seconds"] = math.nan
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce").astype(np.float64)
    cols = [*dict.fromkeys([*(records[0] if records else {}), "image", "prelabeled", "pred_boxes", "gt_boxes",
                            *EDIT_KINDS, "seconds"])]
    return df[cols]


def _times(times: Mapping[str, float] | str | os.PathLike | None) -> dict[str, float]:
    """image -> seconds, from a mapping or a CSV with columns ``image`` and ``seconds``."""
    if times is None:
        return {}
    if isinstance(times, Mapping):
        return {str(k): float(v) for k, v in times.items()}
    import pandas as pd

    try:
        df = pd.read_csv(times)
    except (OSError, ValueError) as e:
        raise ValueError(f"{times}: cannot read the times CSV: {e}") from e
    if not {"image", "seconds"} <= set(df.columns):
        raise ValueError(f"{times}: a times CSV needs columns 'image' and 'seconds'; got {list(df.columns)}")
    secs = pd.to_numeric(df["seconds"], errors="coerce")
    bad = df.index[secs.isna() | (secs < 0)]
    if len(bad):
        raise ValueError(
            f"{times}: row {int(bad[0]) + 2}: seconds must be a non-negative number, got {df['seconds'][bad[0]]!r}"
        )
    if df["image"].duplicated().any():
        raise ValueError(f"{times}: image {df['image'][df['image'].duplicated()].iloc[0]!r} appears twice")
    return dict(zip(df["image"].astype(str), secs.astype(float)))


def measure_cvat(
    annotations: str | os.PathLike,
    prelabels: Results | str | os.PathLike,
    times: Mapping[str, float] | str | os.PathLike | None = None,
    **options: Any,
) -> Measurement:
    """Measure a CVAT for images 1.1 export (the corrected boxes) against the pre-labels
    that were loaded into CVAT (``Results`` or a COCO JSON path).

    CVAT keeps no time per image: with ``times`` the cost constants are fitted;
    without, the rows carry the edits and the seconds the cost profile models for them.

    Args:
        annotations: the CVAT for images 1.1 XML export.
        prelabels: the pre-labels loaded into CVAT (``Results`` or a COCO JSON path).
        times: image file name -> seconds, or a CSV with columns ``image,seconds``.
        options: :class:`MeasureOptions` (``profile``, ``fit``, ``fixed``,
            ``iou_accept``, ``iou_min``, ``n_boot``).

    Returns:
        A :class:`Measurement`, one row per image.

    Raises:
        ValueError: an unreadable export, times CSV or pre-labels (named), classes or
            images that do not line up, times for images not in the export.
    """
    from autolabel.formats import read_coco, read_cvat

    gt = read_cvat(annotations)
    pre = prelabels if isinstance(prelabels, Results) else read_coco(prelabels)
    pre, gt = align_classes(pre, gt)
    secs = _times(times)
    unknown = sorted(set(secs) - {d.image.file_name for d in gt})
    if unknown:
        raise ValueError(f"times name {len(unknown)} images not in {annotations}: {unknown[:5]}")
    pairs = [
        ({"image": g.image.file_name, "seconds": secs.get(g.image.file_name, math.nan)}, p, g, True)
        for p, g in zip(pre, gt)
    ]
    return measure(pairs, gt, pre, source=str(annotations), **options)
