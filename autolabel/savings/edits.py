"""What pre-labels save: count the edits a person makes to turn them into ground truth,
and price those edits in human seconds and money.

The edits come from the one :class:`autolabel.matching.Matching` (see that module for the
matching rule and the edit kinds). Per class, a paired edit counts under the ground-truth
class, a delete under the predicted class.

**Cost** (:class:`autolabel.config.CostProfile`, ``configs/cost/*.yaml``): per image,
``image_overhead_s`` + seconds of every edit + review passes over the final boxes. A
person fixes a wrong box or replaces it (delete + draw), whichever is faster. Labeling
from scratch is the same arithmetic with every object drawn (:func:`scratch_seconds`).
Crowd regions are charged to neither side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, IOU_ACCEPT, IOU_MIN, ConfigError, CostProfile, config_names
from autolabel.core import Results
from autolabel.matching import DRAW, EDIT_KINDS, Matching, check_ious, match_sweep
from autolabel.results import Options, Record

__all__ = [
    "EditCounts",
    "MatchOptions",
    "Savings",
    "Per1000",
    "count_edits",
    "sweep_edits",
    "kind_seconds",
    "edit_seconds",
    "scratch_seconds",
    "summarize",
    "sensitivity",
    "list_profiles",
]

@dataclass(frozen=True)
class MatchOptions(Options):
    """The options every savings measurement shares: ``iou_accept`` (IoU from which a box
    is accepted as is), ``iou_min`` (IoU from which a box counts as finding its object),
    ``n_boot`` (bootstrap resamples of the 95% intervals).

    Raises:
        ValueError: IoUs not ``0 < iou_min <= iou_accept <= 1``, or ``n_boot < 0``.
    """

    iou_accept: float = IOU_ACCEPT
    iou_min: float = IOU_MIN
    n_boot: int = 1000

    def __post_init__(self) -> None:
        check_ious(self.iou_accept, self.iou_min)
        if self.n_boot < 0:
            raise ValueError(f"n_boot must be >= 0, got {self.n_boot}")


_FINAL = np.array([1, 1, 1, 1, 0, 1], np.float64)  # kinds that leave a box in the finished labels
_DRAW_ONLY = np.eye(len(EDIT_KINDS))[DRAW]


@dataclass(frozen=True, eq=False, repr=False)
class EditCounts(Record):
    """Edits per image and class: ``counts[i, c, k]`` is the number of edits of kind
    ``EDIT_KINDS[k]`` on image ``images[i]`` for class ``class_names[c]``; ``ignored[i]``
    the predictions ignored on crowd regions; ``conf`` the pre-label threshold used.

    :meth:`to_pandas` is :meth:`per_image`; in a notebook it shows :meth:`per_class`."""

    images: tuple[str, ...]
    class_names: tuple[str, ...]
    counts: np.ndarray
    ignored: np.ndarray
    conf: float | None = None

    @classmethod
    def of(cls, m: Matching) -> EditCounts:
        """The counts of one :class:`~autolabel.matching.Matching`."""
        return cls(m.images, m.class_names, m.class_counts(), m.ignored, m.conf)

    @property
    def per_image_counts(self) -> np.ndarray:
        """(images, kinds) edit counts."""
        return self.counts.sum(1)

    @property
    def pred_boxes(self) -> int:
        return int(self.counts[..., :DRAW].sum() + self.ignored.sum())

    def totals(self) -> dict[str, int]:
        return dict(zip(EDIT_KINDS, map(int, self.counts.sum((0, 1)))))

    def to_dict(self) -> dict[str, Any]:
        """``conf``, ``images``, ``class_names``, ``counts`` (images x classes x kinds),
        ``ignored`` (per image) and the ``totals`` per kind."""
        return {"conf": self.conf, "images": list(self.images), "class_names": list(self.class_names),
                "counts": self.counts.astype(int).tolist(), "ignored": self.ignored.astype(int).tolist(),
                "totals": self.totals()}

    def to_pandas(self) -> Any:
        return self.per_image()

    def __repr__(self) -> str:
        conf = "none" if self.conf is None else f"{self.conf:g}"
        edits = ", ".join(f"{k} {v}" for k, v in self.totals().items())
        return (f"EditCounts({len(self.images)} images, {len(self.class_names)} classes, conf {conf}, "
                f"{self.pred_boxes} pre-labels; {edits})")

    def _repr_html_(self) -> str:
        import html

        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.per_class().to_html(index=False)

    def _table(self, c: np.ndarray, index: Sequence[str], name: str, profile: Any, overhead: bool) -> Any:
        import pandas as pd

        df = pd.DataFrame(c.astype(np.int64), columns=list(EDIT_KINDS))
        df.insert(0, name, list(index))
        df.insert(1, "gt_boxes", (c @ _FINAL).astype(np.int64))
        if profile is not None:
            p = CostProfile.load(profile)
            extra = p.image_overhead_s if overhead else 0.0
            df["scratch_s"] = _box_seconds((c @ _FINAL)[:, None] * _DRAW_ONLY, p) + extra
            df["assisted_s"] = _box_seconds(c, p) + extra
            df["saved_s"] = df["scratch_s"] - df["assisted_s"]
        return df

    def per_image(self, profile: str | CostProfile | None = None) -> Any:
        """DataFrame, one row per image: edit counts, ``gt_boxes``, ``ignored`` and, with
        a profile, ``scratch_s``, ``assisted_s``, ``saved_s``."""
        df = self._table(self.per_image_counts, self.images, "image", profile, True)
        df.insert(2, "ignored", self.ignored.astype(np.int64))
        return df

    def per_class(self, profile: str | CostProfile | None = None) -> Any:
        """DataFrame, one row per class (seconds without the per-image overhead)."""
        return self._table(self.counts.sum(0), self.class_names, "class", profile, False)


def count_edits(pred: Results, gt: Results, conf: float | None = None, **match_options: Any) -> EditCounts:
    """Edit counts of the pre-labels ``score >= conf``.

    Args:
        pred, gt: predictions and ground truth (see :func:`autolabel.matching.match`).
        conf: pre-label threshold (``None``: every prediction).
        match_options: ``iou_accept``, ``iou_min``, ``relabel`` of :func:`~autolabel.matching.match`.

    Returns:
        The :class:`EditCounts`.
    """
    return sweep_edits(pred, gt, [conf], **match_options)[0]


def sweep_edits(pred: Results, gt: Results, thresholds: Sequence[float | None], **match_options: Any) -> list[EditCounts]:
    """:func:`count_edits` at each pre-label threshold, aligning and checking the boxes once
    (:func:`autolabel.matching.match_sweep`)."""
    return [EditCounts.of(m) for m in match_sweep(pred, gt, thresholds, **match_options)]


# -- cost arithmetic ----------------------------------------------------------------------
def kind_seconds(profile: str | CostProfile = DEFAULT_PROFILE) -> dict[str, float]:
    """Human seconds per edit kind. A wrong box is fixed or replaced (delete + draw),
    whichever is faster."""
    p = CostProfile.load(profile)
    replace_s = p.delete_s + p.draw_s
    return {
        "accept": p.verify_s,
        "adjust": min(p.adjust_s, replace_s),
        "relabel": min(p.relabel_s, replace_s),
        "adjust_relabel": min(p.adjust_s + p.relabel_s, replace_s),
        "delete": p.delete_s,
        "draw": p.draw_s,
    }


def _box_seconds(counts: np.ndarray, p: CostProfile) -> np.ndarray:
    """Seconds of the edits in ``counts`` (..., kinds) plus review of the final boxes."""
    per_kind = np.array(list(kind_seconds(p).values()))
    return counts @ per_kind + p.review_passes * p.review_s_per_box * (counts @ _FINAL)


def edit_seconds(counts: Mapping[str, int] | np.ndarray, profile: str | CostProfile = DEFAULT_PROFILE) -> Any:
    """Human seconds to turn one image's pre-labels into ground truth: the image
    overhead, every edit, and the review passes over the final boxes.

    ``counts`` maps :data:`EDIT_KINDS` to numbers (e.g. ``ImageMatch.counts``), or is
    an array (..., 6) of many images' counts (returns an array).
    """
    p = CostProfile.load(profile)
    if isinstance(counts, Mapping):
        unknown = set(counts) - set(EDIT_KINDS) - {"ignore"}
        if unknown:
            raise ValueError(f"unknown edit kinds {sorted(unknown)}; expected {EDIT_KINDS}")
        c = np.array([counts.get(k, 0) for k in EDIT_KINDS], np.float64)
    else:
        c = np.asarray(counts, np.float64)
    out = p.image_overhead_s + _box_seconds(c, p)
    return float(out) if np.ndim(out) == 0 else out


def scratch_seconds(n_gt: int | np.ndarray, profile: str | CostProfile = DEFAULT_PROFILE) -> Any:
    """Human seconds to label an image with ``n_gt`` objects from nothing (every box drawn)."""
    return edit_seconds(np.asarray(n_gt, np.float64)[..., None] * _DRAW_ONLY, profile)


def _money_per_second(p: CostProfile, n_images: int, n_gt: int, scratch_s: float) -> float:
    if p.hourly_wage is not None:
        return p.hourly_wage / 3600.0
    price = (p.price_per_image or 0.0) * n_images + (p.price_per_box or 0.0) * n_gt
    return price / scratch_s if scratch_s > 0 else 0.0


@dataclass(frozen=True, repr=False)
class Per1000(Record):
    """Savings per 1,000 images: hours, human money (in the profile's currency), machine
    seconds and cost (``None`` when not measured), net saving (human money saved less
    machine cost); ``saved_hours_ci95``: the 95% bootstrap interval."""

    scratch_hours: float
    assisted_hours: float
    saved_hours: float
    saved_hours_ci95: tuple[float, float]
    human_cost_scratch: float
    human_cost_assisted: float
    human_cost_saved: float
    machine_seconds: float | None
    machine_cost: float | None
    net_saving: float
    _REPR = ("saved_hours", "human_cost_saved", "net_saving")


@dataclass(frozen=True, repr=False)
class Savings(Record):
    """What one set of pre-labels saves under one cost profile (:func:`summarize`).

    Attributes:
        images, gt_boxes, pred_boxes, ignored_predictions: counts (ignored: on crowd regions).
        conf: the pre-label threshold (``None``: every prediction). profile, currency.
        edits: edit counts per kind. scratch_seconds, assisted_seconds, saved_seconds: human seconds.
        saved_fraction: ``1 - assisted / scratch``; saved_fraction_ci95: its 95% bootstrap interval.
        per_1000_images: :class:`Per1000`.
    """

    images: int
    gt_boxes: int
    pred_boxes: int
    ignored_predictions: int
    conf: float | None
    profile: str
    currency: str
    edits: Mapping[str, int]
    scratch_seconds: float
    assisted_seconds: float
    saved_seconds: float
    saved_fraction: float
    saved_fraction_ci95: tuple[float, float]
    per_1000_images: Per1000
    _REPR = ("images", "conf", "profile", "saved_fraction", "saved_fraction_ci95")

    def __repr__(self) -> str:
        lo, hi = self.saved_fraction_ci95
        conf = "every prediction" if self.conf is None else f"conf {self.conf:.2f}"
        return (f"Savings({self.images} images, {conf}, profile {self.profile!r}: saved {self.saved_fraction:.1%} "
                f"(95% CI {lo:.1%} to {hi:.1%}), {self.per_1000_images.saved_hours:.2f} h per 1,000 images)")


def summarize(
    edits: EditCounts,
    profile: str | CostProfile = DEFAULT_PROFILE,
    machine_seconds: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Savings:
    """The savings of one set of pre-labels under one cost profile.

    Totals (``scratch_seconds``, ``assisted_seconds``, ``saved_fraction`` ...), edit
    counts, a 95% bootstrap interval over images (``n_boot`` resamples; 0 = none), and
    per 1,000 images: hours, human money, machine cost (``machine_seconds`` = measured
    inference seconds for these images) and the net saving. ``to_dict()`` is JSON-ready.
    """
    p = CostProfile.load(profile)
    order = np.argsort(np.array(edits.images, dtype=object))  # bootstrap independent of image order
    c = edits.per_image_counts[order].astype(np.float64)
    n_gt = c @ _FINAL
    scratch, assisted = scratch_seconds(n_gt, p), edit_seconds(c, p)
    n_img = len(edits.images)
    s_tot, a_tot = float(np.sum(scratch)), float(np.sum(assisted))
    frac = 1.0 - a_tot / s_tot if s_tot > 0 else 0.0
    rate = _money_per_second(p, n_img, int(n_gt.sum()), s_tot)
    per = 1000.0 / max(n_img, 1)
    ci_frac, ci_hours = (frac, frac), ((s_tot - a_tot) * per / 3600,) * 2
    if n_boot and n_img:
        idx = np.random.default_rng(seed).integers(0, n_img, (n_boot, n_img))
        sb, ab = scratch[idx].sum(1), assisted[idx].sum(1)
        fb = np.where(sb > 0, 1.0 - ab / np.where(sb > 0, sb, 1.0), 0.0)
        ci_frac = _pair(np.percentile(fb, [2.5, 97.5]))
        ci_hours = _pair(np.percentile((sb - ab) * per / 3600, [2.5, 97.5]))
    machine = None if machine_seconds is None else machine_seconds * per / 3600 * p.machine_price_per_hour
    saved_money = (s_tot - a_tot) * per * rate
    k = Per1000(
        s_tot * per / 3600, a_tot * per / 3600, (s_tot - a_tot) * per / 3600, ci_hours, s_tot * per * rate,
        a_tot * per * rate, saved_money, None if machine_seconds is None else machine_seconds * per, machine,
        saved_money - (machine or 0.0),
    )
    return Savings(
        n_img, int(n_gt.sum()), edits.pred_boxes, int(edits.ignored.sum()), edits.conf,
        profile if isinstance(profile, str) else (p.description or "custom"), p.currency, edits.totals(),
        s_tot, a_tot, s_tot - a_tot, frac, ci_frac, k,
    )


def _pair(a: np.ndarray) -> tuple[float, float]:
    return float(a[0]), float(a[1])


def list_profiles() -> list[str]:
    """Names of the shipped image cost profiles (``configs/cost/*.yaml``; ``video-*`` are
    :class:`~autolabel.config.VideoCostProfile` files, see :mod:`autolabel.video.savings`;
    ``keypoints*`` are :class:`~autolabel.config.KeypointCostProfile` files)."""
    names = [n for n in config_names("cost") if not n.startswith(("video-", "keypoints"))]
    if not names:
        raise ConfigError("no cost profiles packaged under configs/cost/")
    return names


def sensitivity(
    edits: EditCounts, profiles: Sequence[str | CostProfile] | None = None, machine_seconds: float | None = None
) -> Any:
    """DataFrame, one row per cost profile (default: every shipped one): fraction saved,
    hours and money per 1,000 images, machine cost and net saving."""
    import pandas as pd

    rows = []
    for prof in profiles if profiles is not None else list_profiles():
        s = summarize(edits, prof, machine_seconds, n_boot=0)
        k = s.per_1000_images
        rows.append({
            "profile": s.profile, "draw_s": CostProfile.load(prof).draw_s, "saved_fraction": s.saved_fraction,
            "saved_hours_per_1000": k.saved_hours, "currency": s.currency,
            "human_cost_saved_per_1000": k.human_cost_saved, "machine_cost_per_1000": k.machine_cost,
            "net_saving_per_1000": k.net_saving,
        })
    return pd.DataFrame(rows)
