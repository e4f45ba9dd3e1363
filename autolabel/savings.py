"""What pre-labels save: match them to ground truth, count the edits a person makes to
turn them into ground truth, and price those edits in human seconds and money.

**Matching** (:func:`match_image`, the one matcher every stage uses): per image,
predictions and non-crowd ground truth are paired one-to-one by an optimal assignment
(``scipy.optimize.linear_sum_assignment``) over pairs with IoU >= ``iou_min``. The
assignment maximises, in this order: right-class pairs (COCO's hits), pairs, summed IoU.
A wrong-class box is worth pairing (relabelling is cheaper than delete + draw) but never
at the cost of a right-class pair. The matching does not depend on the cost profile.
COCO's crowd rule: an unpaired prediction covering a crowd region of its class
(intersection over the prediction's area >= ``iou_min``) is *ignored*, neither a hit
nor a false alarm. Boxes are put in a canonical order first, so nothing depends on the
order they come in.

**Edits** (:data:`EDIT_KINDS`): ``accept`` (right class, IoU >= iou_accept), ``adjust``
(right class, iou_min <= IoU < iou_accept), ``relabel`` (wrong class, IoU >= iou_accept),
``adjust_relabel`` (wrong class, lower IoU), ``delete`` (unpaired or duplicate
prediction), ``draw`` (missed object). Per class, a paired edit counts under the
ground-truth class, a delete under the predicted class.

**Cost** (:class:`autolabel.config.CostProfile`, ``configs/cost/*.yaml``): per image,
``image_overhead_s`` + seconds of every edit + review passes over the final boxes. A
person fixes a wrong box or replaces it (delete + draw), whichever is faster. Labeling
from scratch is the same arithmetic with every object drawn (:func:`scratch_seconds`).
Crowd regions are charged to neither side.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import ConfigError, CostProfile, config_names
from autolabel.core import Detections, Results

__all__ = [
    "EDIT_KINDS",
    "ImageMatch",
    "EditCounts",
    "match_image",
    "align_classes",
    "count_edits",
    "sweep_edits",
    "kind_seconds",
    "edit_seconds",
    "scratch_seconds",
    "summarize",
    "sensitivity",
    "list_profiles",
]

EDIT_KINDS = ("accept", "adjust", "relabel", "adjust_relabel", "delete", "draw")
_DELETE, _DRAW, _IGNORE = 4, 5, 6
_PRED_EDITS = np.array(EDIT_KINDS + ("ignore",))
_FINAL = np.array([1, 1, 1, 1, 0, 1], np.float64)  # kinds that leave a box in the finished labels
_DRAW_ONLY = np.eye(len(EDIT_KINDS))[_DRAW]
DEFAULT_PROFILE = "extreme-clicking"


@dataclass(eq=False)
class ImageMatch:
    """How one image's predictions pair with its ground truth.

    ``pred_edit``: per prediction, one of accept/adjust/relabel/adjust_relabel/delete or
    ``ignore`` (on a crowd region); ``pred_gt``: the paired ground-truth index (the crowd
    region for ``ignore``) or -1; ``pred_iou``: IoU with it (intersection over the
    prediction's area for ``ignore``); ``gt_matched``: per ground-truth box, paired or
    not (crowd regions: never); ``counts``: number of each of :data:`EDIT_KINDS`, where
    ``draw`` counts unpaired non-crowd ground truth.
    """

    pred_edit: np.ndarray
    pred_gt: np.ndarray
    pred_iou: np.ndarray
    gt_matched: np.ndarray
    counts: dict[str, int]


def _check_boxes(d: Detections, what: str) -> None:
    b = d.xyxy
    bad = ~np.isfinite(b).all(1) | (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        why = "is not finite" if not np.isfinite(b[i]).all() else "has negative width or height"
        where = repr(d.image.file_name) if d.image else "(no image info)"
        raise ValueError(f"{what} image {where}, box {i}: xyxy {b[i].tolist()} {why}")


def _check_thresholds(iou_accept: float, iou_min: float) -> None:
    if not 0 < iou_min <= iou_accept <= 1:
        raise ValueError(f"need 0 < iou_min <= iou_accept <= 1, got iou_min={iou_min}, iou_accept={iou_accept}")


def _check_all(boxes: np.ndarray, dets: Sequence[Detections], what: str) -> None:
    """Validate every image's boxes at once (``boxes``: theirs, concatenated)."""
    if not (np.isfinite(boxes).all() and (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()):
        for d in dets:
            _check_boxes(d, what)


@dataclass
class _Boxes:
    """Boxes of many images concatenated image after image: ``img`` is ascending."""

    xyxy: np.ndarray
    cls: np.ndarray
    img: np.ndarray
    score: np.ndarray | None = None  # predictions
    crowd: np.ndarray | None = None  # ground truth

    @classmethod
    def of(cls, dets: Sequence[Detections], what: str, ground_truth: bool) -> _Boxes:
        def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts) if parts else empty

        xyxy = cat([d.xyxy for d in dets], np.zeros((0, 4), np.float32))
        _check_all(xyxy, dets, what)
        img = np.repeat(np.arange(len(dets)), [len(d) for d in dets])
        cl = cat([d.class_ids for d in dets], np.zeros(0, np.int64))
        if ground_truth:
            return cls(xyxy, cl, img, crowd=cat([d.crowd for d in dets], np.zeros(0, bool)))
        return cls(xyxy, cl, img, score=cat([d.scores for d in dets], np.zeros(0, np.float32)))

    def __getitem__(self, keep: np.ndarray) -> _Boxes:
        score, crowd = (None if a is None else a[keep] for a in (self.score, self.crowd))
        return _Boxes(self.xyxy[keep], self.cls[keep], self.img[keep], score, crowd)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection and areas of the box pairs ``a[k], b[k]`` (float64)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    return wh[:, 0] * wh[:, 1], (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _match(
    p: _Boxes, g: _Boxes, n_img: int, iou_accept: float, iou_min: float, relabel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match every image at once: edit codes (indices into EDIT_KINDS, 6 = ignore), paired
    GT index (or the crowd region), IoU (IoA for crowd), GT paired.

    All (prediction, GT) pairs of each image are scored in one vectorised pass. An
    image whose candidate pairs (IoU >= iou_min) share no box needs no assignment:
    every candidate pair is taken. The others get ``linear_sum_assignment`` on their
    block, in a canonical box order so that input order never matters.
    """
    from scipy.optimize import linear_sum_assignment

    po = np.lexsort((*p.xyxy.T[::-1], p.cls, -p.score, p.img))  # type: ignore[operator]
    go = np.lexsort((*g.xyxy.T[::-1], g.cls, g.crowd, g.img))
    p, g = p[po], g[go]
    n_p, n_g = np.bincount(p.img, minlength=n_img), np.bincount(g.img, minlength=n_img)
    g_start = np.cumsum(n_g) - n_g
    per_pred = n_g[p.img]
    pair_start = np.cumsum(per_pred) - per_pred
    pi = np.repeat(np.arange(len(po)), per_pred)  # every (prediction, GT) pair of each image
    gi = g_start[p.img[pi]] + np.arange(len(pi)) - pair_start[pi]
    inter, area_p, area_g = _overlap(p.xyxy[pi], g.xyxy[gi])
    union = area_p + area_g - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    same = p.cls[pi] == g.cls[gi]
    crowd = g.crowd[gi]  # type: ignore[index]
    edge = ~crowd & (iou >= iou_min) & (same | relabel)

    conflict = np.zeros(n_img, bool)  # a box in two candidate pairs
    conflict[p.img[np.bincount(pi[edge], minlength=len(po)) > 1]] = True
    conflict[g.img[np.bincount(gi[edge], minlength=len(go)) > 1]] = True
    chosen = [np.flatnonzero(edge & ~conflict[p.img[pi]])]
    first_pred = np.cumsum(n_p) - n_p
    for i in np.flatnonzero(conflict):
        rows, cols, start = n_p[i], n_g[i], pair_start[first_pred[i]]  # the image's block of pairs
        blk = slice(start, start + rows * cols)
        ok = edge[blk].reshape(rows, cols)
        base = min(rows, cols) + 2.0  # tiers: right-class pairs, then pairs, then IoU
        w = np.where(ok, iou[blk].reshape(rows, cols) + base + base**2 * same[blk].reshape(rows, cols), 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        keep = ok[r, c]
        chosen.append(start + r[keep] * cols + c[keep])
    sel = np.concatenate(chosen)

    code = np.full(len(po), _DELETE, np.int64)
    pred_gt = np.full(len(po), -1, np.int64)
    pred_iou = np.zeros(len(po))
    gt_matched = np.zeros(len(go), bool)
    code[pi[sel]] = np.where(same[sel], 0, 2) + (iou[sel] < iou_accept)
    pred_gt[pi[sel]], pred_iou[pi[sel]] = gi[sel], iou[sel]
    gt_matched[gi[sel]] = True
    # COCO's crowd rule: an unpaired prediction on a crowd region of its class is ignored
    ioa = np.where(area_p > 0, inter / np.where(area_p > 0, area_p, 1), 0.0)
    on_crowd = np.flatnonzero(crowd & same & (ioa >= iou_min) & (code[pi] == _DELETE))
    if len(on_crowd):
        on_crowd = on_crowd[np.lexsort((-ioa[on_crowd], pi[on_crowd]))]
        first = on_crowd[np.unique(pi[on_crowd], return_index=True)[1]]  # best crowd region per prediction
        code[pi[first]], pred_gt[pi[first]], pred_iou[pi[first]] = _IGNORE, gi[first], ioa[first]

    out_code, out_gt, out_iou, out_matched = (np.empty_like(a) for a in (code, pred_gt, pred_iou, gt_matched))
    out_code[po], out_iou[po], out_matched[go] = code, pred_iou, gt_matched  # back to the input order
    out_gt[po] = np.where(pred_gt >= 0, go[np.maximum(pred_gt, 0)] if len(go) else -1, -1)
    return out_code, out_gt, out_iou, out_matched


def match_image(
    pred: Detections, gt: Detections, iou_accept: float = 0.7, iou_min: float = 0.5, relabel: bool = True
) -> ImageMatch:
    """Pair one image's predictions with its ground truth and name the edit for each box.

    ``pred`` and ``gt`` class ids must index the same class names (see
    :func:`align_classes`); ``gt.iscrowd`` marks crowd regions. Filter ``pred`` by
    confidence first (``pred.filter(conf)``). ``relabel=False`` pairs boxes of the same
    class only (as COCO evaluation does): a wrong-class box is then a delete.
    """
    _check_thresholds(iou_accept, iou_min)
    if pred.class_names and gt.class_names and pred.class_names != gt.class_names:
        raise ValueError("predictions and ground truth use different class names; align them with align_classes()")
    p, g = _Boxes.of([pred], "predictions", False), _Boxes.of([gt], "ground truth", True)
    code, pred_gt, pred_iou, gt_matched = _match(p, g, 1, iou_accept, iou_min, relabel)
    n = np.bincount(code, minlength=_IGNORE + 1)
    n[_DRAW] = int((~gt_matched & ~g.crowd).sum())  # type: ignore[operator]
    return ImageMatch(_PRED_EDITS[code], pred_gt, pred_iou, gt_matched, dict(zip(EDIT_KINDS, map(int, n))))


def align_classes(pred: Results, gt: Results) -> tuple[Results, Results]:
    """Predictions mapped onto the ground truth's class names (by name) and ordered as
    the ground truth's images (paired by ``ImageInfo.file_name``), and the ground truth.

    Raises ``ValueError`` listing prediction classes the ground truth lacks, or images
    present on one side only.
    """
    names = tuple(gt.class_names)
    if len(set(names)) != len(names):
        raise ValueError(f"ground truth has duplicate class names: {list(names)}")
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in pred.class_names if n not in index]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction classes are not ground-truth categories: {unknown[:10]}; "
            f"ground truth has {list(names)[:10]}{' ...' if len(names) > 10 else ''}. "
            "Map model classes onto the label set with a class map when pre-labeling (--class-map)."
        )
    lut = np.array([index[n] for n in pred.class_names] or [0], np.int64)
    pk, gk = _keys(pred, "predictions"), _keys(gt, "ground truth")
    missing, extra = [k for k in gk if k not in pk], [k for k in pk if k not in gk]
    if missing or extra:
        parts = [f"{len(missing)} ground-truth images have no predictions (e.g. {missing[:3]})"] if missing else []
        parts += [f"{len(extra)} predicted images are not in the ground truth (e.g. {extra[:3]})"] if extra else []
        raise ValueError("images do not line up: " + "; ".join(parts))
    for r, what, n in ((pred, "predictions", len(pred.class_names)), (gt, "ground truth", len(names))):
        for d in r:
            if len(d) and (d.class_ids.min() < 0 or d.class_ids.max() >= n):
                raise ValueError(f"{what} image {d.image.file_name!r}: class id outside 0..{n - 1}")  # type: ignore[union-attr]
    same = tuple(pred.class_names) == names
    dets = [pk[k] if same else replace(pk[k], class_ids=lut[pk[k].class_ids], class_names=names, class_probs=None) for k in gk]
    return replace(pred, detections=dets, class_names=names), gt


def _keys(r: Results, what: str) -> dict[str, Detections]:
    out: dict[str, Detections] = {}
    for i, d in enumerate(r):
        if d.image is None:
            raise ValueError(f"{what}: detections #{i} have no image (file name) to pair by")
        if d.image.file_name in out:
            raise ValueError(f"{what}: image {d.image.file_name!r} appears twice")
        out[d.image.file_name] = d
    return out


@dataclass(eq=False)
class EditCounts:
    """Edits per image and class: ``counts[i, c, k]`` is the number of edits of kind
    ``EDIT_KINDS[k]`` on image ``images[i]`` for class ``class_names[c]``; ``ignored[i]``
    the predictions ignored on crowd regions; ``conf`` the pre-label threshold used."""

    images: tuple[str, ...]
    class_names: tuple[str, ...]
    counts: np.ndarray
    ignored: np.ndarray
    conf: float | None = None

    @property
    def per_image_counts(self) -> np.ndarray:
        """(images, kinds) edit counts."""
        return self.counts.sum(1)

    @property
    def pred_boxes(self) -> int:
        return int(self.counts[..., :_DRAW].sum() + self.ignored.sum())

    def totals(self) -> dict[str, int]:
        return dict(zip(EDIT_KINDS, map(int, self.counts.sum((0, 1)))))

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


def count_edits(
    pred: Results,
    gt: Results,
    conf: float | None = None,
    iou_accept: float = 0.7,
    iou_min: float = 0.5,
    relabel: bool = True,
) -> EditCounts:
    """Match every image (predictions with ``score >= conf``, see :func:`match_image`)
    and count the edits. Classes and images are aligned with :func:`align_classes` first.
    """
    return sweep_edits(pred, gt, [conf], iou_accept, iou_min, relabel)[0]


def sweep_edits(
    pred: Results,
    gt: Results,
    thresholds: Sequence[float | None],
    iou_accept: float = 0.7,
    iou_min: float = 0.5,
    relabel: bool = True,
) -> list[EditCounts]:
    """:func:`count_edits` at each pre-label threshold, aligning and checking the boxes once."""
    _check_thresholds(iou_accept, iou_min)
    pred, gt = align_classes(pred, gt)
    p = _Boxes.of(pred.detections, "predictions", False)
    g = _Boxes.of(gt.detections, "ground truth", True)
    return [_count(p if t is None else p[p.score >= t], g, gt, t, iou_accept, iou_min, relabel) for t in thresholds]


def _count(
    p: _Boxes, g: _Boxes, gt: Results, conf: float | None, iou_accept: float, iou_min: float, relabel: bool
) -> EditCounts:
    code, pred_gt, _, gt_matched = _match(p, g, len(gt), iou_accept, iou_min, relabel)
    n_cls, n_k = len(gt.class_names), len(EDIT_KINDS)
    edit = code != _IGNORE
    cls = p.cls.copy()
    cls[pred_gt >= 0] = g.cls[pred_gt[pred_gt >= 0]]  # paired edits count under the GT class
    drawn = ~gt_matched & ~g.crowd  # type: ignore[operator]
    keys = np.concatenate([(p.img * n_cls + cls)[edit] * n_k + code[edit], (g.img * n_cls + g.cls)[drawn] * n_k + _DRAW])
    counts = np.bincount(keys, minlength=len(gt) * n_cls * n_k).reshape(len(gt), n_cls, n_k)
    ignored = np.bincount(p.img[~edit], minlength=len(gt))
    names = tuple(d.image.file_name for d in gt)  # type: ignore[union-attr]
    return EditCounts(names, tuple(gt.class_names), counts, ignored, conf)


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


def summarize(
    edits: EditCounts,
    profile: str | CostProfile = DEFAULT_PROFILE,
    machine_seconds: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The savings of one set of pre-labels under one cost profile, JSON-ready.

    Totals (``scratch_seconds``, ``assisted_seconds``, ``saved_fraction`` ...), edit
    counts, a 95% bootstrap interval over images (``n_boot`` resamples; 0 = none), and
    per 1,000 images: hours, human money, machine cost (``machine_seconds`` = measured
    inference seconds for these images) and the net saving.
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
    ci_frac, ci_hours = [frac, frac], [(s_tot - a_tot) * per / 3600] * 2
    if n_boot and n_img:
        idx = np.random.default_rng(seed).integers(0, n_img, (n_boot, n_img))
        sb, ab = scratch[idx].sum(1), assisted[idx].sum(1)
        fb = np.where(sb > 0, 1.0 - ab / np.where(sb > 0, sb, 1.0), 0.0)
        ci_frac = np.percentile(fb, [2.5, 97.5]).tolist()
        ci_hours = np.percentile((sb - ab) * per / 3600, [2.5, 97.5]).tolist()
    machine = None if machine_seconds is None else machine_seconds * per / 3600 * p.machine_price_per_hour
    saved_money = (s_tot - a_tot) * per * rate
    return {
        "images": n_img,
        "gt_boxes": int(n_gt.sum()),
        "pred_boxes": edits.pred_boxes,
        "ignored_predictions": int(edits.ignored.sum()),
        "conf": edits.conf,
        "profile": profile if isinstance(profile, str) else (p.description or "custom"),
        "currency": p.currency,
        "edits": edits.totals(),
        "scratch_seconds": s_tot,
        "assisted_seconds": a_tot,
        "saved_seconds": s_tot - a_tot,
        "saved_fraction": frac,
        "saved_fraction_ci95": ci_frac,
        "per_1000_images": {
            "scratch_hours": s_tot * per / 3600,
            "assisted_hours": a_tot * per / 3600,
            "saved_hours": (s_tot - a_tot) * per / 3600,
            "saved_hours_ci95": ci_hours,
            "human_cost_scratch": s_tot * per * rate,
            "human_cost_assisted": a_tot * per * rate,
            "human_cost_saved": saved_money,
            "machine_seconds": None if machine_seconds is None else machine_seconds * per,
            "machine_cost": machine,
            "net_saving": saved_money - (machine or 0.0),
        },
    }


def list_profiles() -> list[str]:
    """Names of the shipped cost profiles (``configs/cost/*.yaml``)."""
    names = config_names("cost")
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
        k = s["per_1000_images"]
        rows.append({
            "profile": s["profile"], "draw_s": CostProfile.load(prof).draw_s, "saved_fraction": s["saved_fraction"],
            "saved_hours_per_1000": k["saved_hours"], "currency": s["currency"],
            "human_cost_saved_per_1000": k["human_cost_saved"], "machine_cost_per_1000": k["machine_cost"],
            "net_saving_per_1000": k["net_saving"],
        })
    return pd.DataFrame(rows)
