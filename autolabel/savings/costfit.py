"""Fit a cost profile to your own team's measured time.

Given one row per finished image (or per annotation) with its edit counts
(:data:`autolabel.matching.EDIT_KINDS`, from :mod:`autolabel.matching`) and the seconds a person
spent on it, fit the linear model the savings module prices with

    seconds = image_overhead_s + verify_s * accept + adjust_s * (adjust + adjust_relabel)
              + relabel_s * (relabel + adjust_relabel) + delete_s * delete + draw_s * draw

by non-negative least squares (``scipy.optimize.nnls``: no action takes negative time).
Images labeled without pre-labels are rows with only ``draw`` counts: they pin
``draw_s`` and ``image_overhead_s`` (the from-scratch baseline). Each constant gets a
95% percentile-bootstrap interval over rows; ``r2`` says how much of the variation in
measured time the model explains. A constant no row exercises (e.g. no relabels) is
not estimated: the base profile's value is kept and marked. Review passes, currency and
prices are taken from the base profile (a task's measured time does not include review).

:func:`measure` builds those rows from pairs of (pre-labels, final boxes) and fits;
:func:`autolabel.labelstudio.pull` feeds it from a Label Studio project,
:func:`measure_cvat` from a CVAT for images 1.1 export (CVAT records no time per image:
give ``times``, image -> seconds, e.g. a CSV from your time tracking, to fit; without
it you get the edits and the seconds the profile models).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping

import numpy as np

from pydantic import ValidationError

from autolabel.config import DEFAULT_PROFILE, IOU_ACCEPT, IOU_MIN, CostProfile
from autolabel.core import Detections, ImageInfo, Results
from autolabel.matching import EDIT_KINDS, align_classes
from autolabel.savings.edits import edit_seconds, scratch_seconds

__all__ = ["FIT_PARAMS", "CostFit", "Measurement", "design_matrix", "fit_costs", "measure", "measure_cvat"]

FIT_PARAMS = ("image_overhead_s", "verify_s", "adjust_s", "relabel_s", "delete_s", "draw_s")
# rows: 1 (the image) followed by EDIT_KINDS; columns: FIT_PARAMS
_DESIGN = np.array(
    [
        [1, 0, 0, 0, 0, 0],  # image
        [0, 1, 0, 0, 0, 0],  # accept
        [0, 0, 1, 0, 0, 0],  # adjust
        [0, 0, 0, 1, 0, 0],  # relabel
        [0, 0, 1, 1, 0, 0],  # adjust_relabel
        [0, 0, 0, 0, 1, 0],  # delete
        [0, 0, 0, 0, 0, 1],  # draw
    ],
    np.float64,
)


def design_matrix(counts: np.ndarray) -> np.ndarray:
    """The fit's regressors.

    Args:
        counts: (rows, 6) edit counts in :data:`EDIT_KINDS` order.

    Returns:
        (rows, 6) float64 regressors in :data:`FIT_PARAMS` order (1 for the image,
        ``adjust_relabel`` counted under both ``adjust_s`` and ``relabel_s``).
    """
    c = np.asarray(counts, np.float64).reshape(-1, len(EDIT_KINDS))
    return np.hstack([np.ones((len(c), 1)), c]) @ _DESIGN


@dataclass(eq=False)
class CostFit:
    """A fitted cost profile and how well it explains the measured time.

    ``table``: one row per constant in :data:`FIT_PARAMS` with ``estimate``,
    ``ci_low``/``ci_high`` (95% bootstrap), ``base`` (the base profile's value),
    ``rows`` (rows that exercise it) and ``status`` (``fitted``, ``fixed`` or
    ``not observed``); ``profile``: the base profile with the estimates in place.
    """

    profile: CostProfile
    table: Any
    r2: float
    rmse_s: float
    n_rows: int
    total_seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the constants with intervals, ``r2``, ``rmse_s`` and ``rows``."""
        return {
            "rows": self.n_rows,
            "measured_seconds": self.total_seconds,
            "r2": self.r2,
            "rmse_s": self.rmse_s,
            "constants": {
                p: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                for p, r in self.table.to_dict(orient="index").items()
            },
        }

    def to_yaml(self, path: str | os.PathLike) -> str:
        """Write the profile as a cost profile YAML (``CostProfile.load(path)`` reads it back)."""
        import yaml

        lines = [
            f"# Fitted by autolabel from {self.n_rows} measured rows: R^2 = {self.r2:.3f}, RMSE = {self.rmse_s:.2f} s."
        ]
        for p, r in self.table.iterrows():
            if r["status"] == "fitted":
                lines.append(
                    f"# {p}: {r['estimate']:.3f} s, 95% interval {r['ci_low']:.3f}-{r['ci_high']:.3f} ({r['rows']} rows)"
                )
            else:
                lines.append(f"# {p}: {r['status']}, kept at {r['estimate']:.3f} s")
        values = {
            k: round(v, 4) if k in FIT_PARAMS else v for k, v in self.profile.model_dump(exclude_none=True).items()
        }
        body = yaml.safe_dump(values, sort_keys=False, allow_unicode=True, width=120)
        path = str(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n" + body)
        return path

    def __repr__(self) -> str:
        est = ", ".join(f"{p}={v:.2f}" for p, v in self.table["estimate"].items())
        return f"CostFit({self.n_rows} rows, R^2={self.r2:.3f}, RMSE={self.rmse_s:.2f} s; {est})"


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    if a.shape[1] == 0:
        return np.zeros(0)
    return nnls(a, y)[0]


def fit_costs(
    rows: Any,
    base: str | CostProfile = DEFAULT_PROFILE,
    seconds: str = "seconds",
    fixed: Mapping[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> CostFit:
    """Fit the cost constants to measured seconds by non-negative least squares.

    Args:
        rows: a DataFrame (or anything ``pandas.DataFrame`` accepts) with one column per
            edit kind in :data:`EDIT_KINDS` (counts per row) and a ``seconds`` column;
            rows without a finite time are left out.
        base: the profile that supplies review passes, money and unobserved constants.
        seconds: the name of the time column (seconds).
        fixed: constants pinned to known values in seconds (their share is subtracted
            before fitting).
        n_boot: bootstrap resamples for the 95% intervals (0: none).
        seed: the bootstrap's random seed.

    Returns:
        A :class:`CostFit`.

    Raises:
        ValueError: missing columns, no usable rows, negative counts, unknown fixed
            names, or estimates that break the profile's rules (e.g. ``verify_s``
            above ``relabel_s`` with few relabels: pin one with ``fixed``).
    """
    import pandas as pd

    df = pd.DataFrame(rows)
    missing = [c for c in (*EDIT_KINDS, seconds) if c not in df.columns]
    if missing:
        raise ValueError(f"cost fit needs columns {missing}; got {list(df.columns)}")
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(FIT_PARAMS))
    if unknown:
        raise ValueError(f"cannot fix {unknown}: not fitted constants {FIT_PARAMS}")
    y_all = pd.to_numeric(df[seconds], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(y_all)
    if not ok.any():
        raise ValueError(f"no row has a measured time in column {seconds!r}: nothing to fit")
    counts = df.loc[ok, list(EDIT_KINDS)].to_numpy(np.float64)
    if (counts < 0).any():
        raise ValueError("edit counts must not be negative")
    x, y = design_matrix(counts), y_all[ok]
    pin = np.array([fixed.get(p, np.nan) for p in FIT_PARAMS])
    pinned = np.isfinite(pin)
    used = (x != 0).sum(0)
    free = ~pinned & (used > 0)
    target = y - x[:, pinned] @ pin[pinned]
    est = np.zeros(len(FIT_PARAMS))
    xf = x[:, free]
    est[free] = _nnls(xf, target)
    est[pinned] = pin[pinned]

    lo = np.full(len(FIT_PARAMS), np.nan)
    hi = np.full(len(FIT_PARAMS), np.nan)
    if n_boot > 0 and free.any():
        rng = np.random.default_rng(seed)
        boots = np.empty((n_boot, int(free.sum())))
        for b in range(n_boot):
            i = rng.integers(0, len(y), len(y))
            boots[b] = _nnls(xf[i], target[i])
        lo[free], hi[free] = np.percentile(boots, [2.5, 97.5], axis=0)

    base_p = CostProfile.load(base)
    base_v = np.array([getattr(base_p, p) for p in FIT_PARAMS], np.float64)
    status = np.where(pinned, "fixed", np.where(free, "fitted", "not observed"))
    final = np.where(free | pinned, est, base_v)
    pred = x @ np.where(free | pinned, est, 0.0)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    table = pd.DataFrame(
        {"estimate": final, "ci_low": lo, "ci_high": hi, "base": base_v, "rows": used.astype(int), "status": status},
        index=pd.Index(FIT_PARAMS, name="constant"),
    )
    values = {p: float(v) for p, v in zip(FIT_PARAMS, final)}
    desc = f"fitted to {len(y)} measured rows (R^2 {r2:.3f}) on top of: {base_p.description or 'custom profile'}"
    try:
        profile = CostProfile.model_validate({**base_p.model_dump(), **values, "description": desc})
    except ValidationError as e:
        shown = ", ".join(f"{p}={v:.3f}" for p, v in values.items())
        why = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        raise ValueError(
            f"the fitted constants ({shown}) do not make a valid cost profile: {why}. "
            "Constants backed by few rows are unreliable: pin them with fixed={...}"
        ) from e
    return CostFit(profile, table, r2, math.sqrt(ss_res / len(y)), len(y), float(y.sum()))


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
    profile: str | CostProfile = DEFAULT_PROFILE,
    fit: bool = True,
    fixed: Mapping[str, float] | None = None,
    iou_accept: float = IOU_ACCEPT,
    iou_min: float = IOU_MIN,
    n_boot: int = 1000,
    source: str = "",
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
        profile: the base cost profile (name or YAML).
        fit: fit the constants when some row is timed.
        fixed: constants pinned to known values (see :func:`fit_costs`).
        iou_accept, iou_min: the matching thresholds.
        n_boot: bootstrap resamples for the intervals.
        source: where the annotations came from (shown in the summary).

    Returns:
        A :class:`Measurement`.

    Raises:
        ValueError: pre-labels and final boxes with different classes, bad boxes, or a
            fit that breaks the profile's rules.
    """
    import pandas as pd

    from autolabel.matching import match

    pairs = list(pairs)
    names = pairs[0][2].class_names if pairs else ground_truth.class_names

    def row(i: int, d: Detections) -> Detections:
        return replace(d, image=ImageInfo(str(i), *(d.image.width, d.image.height) if d.image else (0, 0)))

    pre = Results([row(i, p) for i, (_, p, _, _) in enumerate(pairs)], pairs[0][1].class_names if pairs else names)
    final = Results([row(i, g) for i, (_, _, g, _) in enumerate(pairs)], names)
    m = match(pre, final, None, iou_accept, iou_min)
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
    df = df[cols]
    cost_fit = None
    if fit and np.isfinite(df["seconds"].to_numpy(np.float64)).any():
        cost_fit = fit_costs(df, profile, fixed=fixed, n_boot=n_boot)
    p = cost_fit.profile if cost_fit else CostProfile.load(profile)
    c = df[list(EDIT_KINDS)].to_numpy(np.float64)
    df["scratch_s"] = scratch_seconds(df["gt_boxes"].to_numpy(np.float64), p) if len(df) else []
    df["assisted_s"] = edit_seconds(c, p) if len(df) else []
    df["saved_s"] = df["scratch_s"] - df["assisted_s"]
    return Measurement(df, ground_truth, prelabels, p, cost_fit, source)


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
        options: go to :func:`measure` (``profile``, ``fit``, ``fixed``,
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
