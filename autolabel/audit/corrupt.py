"""Corrupting labels on purpose: the benchmark's protocol, and the training data of the
audit's ranker (errors injected into a copy of the labels are examples of what real
errors look like, with their answers known).

:func:`corrupt_labels` drops a fraction of the boxes, shifts some to an IoU with the
original drawn uniformly from a range, swaps the class of some, and adds spurious
boxes (a size taken from a random label of the set, a random place in a random image,
a random class). Crowd regions are never touched. Every injected error is recorded in
an :class:`Injected` table with the box a finder must hit: the original box for a
drop or a shift (and the shifted one, ``alt``), the label's box for a swap or a
spurious box.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from autolabel.boxes import paired_iou
from autolabel.core import Detections, Results

__all__ = ["Injected", "corrupt_labels", "corrupt_images", "KINDS_INJECTED", "DEFAULT_RATES"]

KINDS_INJECTED = ("missing", "loose", "wrong_class", "spurious")  # drop, shift, swap, add
DEFAULT_RATES = {"missing": 0.10, "loose": 0.10, "wrong_class": 0.05, "spurious": 0.05}


@dataclass(eq=False)
class Injected:
    """The injected errors, one row each: ``image`` (position), ``kind`` (one of
    :data:`KINDS_INJECTED`), ``xyxy`` (E, 4) the box to hit, ``alt`` (E, 4) the other
    acceptable box (the shifted label for ``loose``; ``xyxy`` otherwise)."""

    image: np.ndarray
    kind: np.ndarray
    xyxy: np.ndarray
    alt: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    def images_with_errors(self, n_images: int) -> np.ndarray:
        """(n_images,) bool: images holding at least one injected error."""
        out = np.zeros(n_images, bool)
        out[self.image] = True
        return out


def _shift(box: np.ndarray, target: float, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """``box`` moved in a random direction (and rescaled a little) until its IoU with the
    original is ``target`` (bisection on the step length), clipped to the image."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    ang = rng.uniform(0, 2 * np.pi)
    scale = np.exp(rng.uniform(-0.15, 0.15, 2))
    new_wh = np.array([bw * scale[0], bh * scale[1]])
    c = (box[:2] + box[2:]) / 2
    lim = np.array([0, 0, w, h], np.float64)

    def moved(t: float) -> np.ndarray:
        cc = c + t * np.array([np.cos(ang) * bw, np.sin(ang) * bh])
        b = np.concatenate([cc - new_wh / 2, cc + new_wh / 2])
        return np.clip(b, lim[:2].tolist() * 2, lim[2:].tolist() * 2)

    lo, hi = 0.0, 2.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if paired_iou(box[None], moved(mid)[None])[0] > target:
            lo = mid
        else:
            hi = mid
    return moved(hi)


def add_boxes(d: Detections, boxes: list[tuple[np.ndarray, int]]) -> Detections:
    """``d`` with extra labels ``(xyxy, class id)`` appended (score 1, not crowd, zero
    data; class probabilities and track ids dropped when there are any)."""
    if not boxes:
        return d
    add = Detections(np.array([b for b, _ in boxes]), np.ones(len(boxes)), np.array([c for _, c in boxes]),
                     d.class_names, d.image, iscrowd=np.zeros(len(boxes), bool) if d.iscrowd is not None else None,
                     data={k: np.zeros((len(boxes), *v.shape[1:]), v.dtype) for k, v in d.data.items()})
    if d.class_probs is not None or d.track_id is not None:
        d = replace(d, class_probs=None, track_id=None)
    return Detections.concat([d, add])


def corrupt_labels(
    labels: Results, seed: int = 0, rates: dict[str, float] | None = None
) -> tuple[Results, Injected]:
    """Inject errors into a copy of ``labels``.

    Args:
        labels: the labels (COCO ground truth read with ``read_coco``); images need
            ``ImageInfo`` (width, height) for spurious boxes.
        seed: random seed; the same seed gives the same corruption.
        rates: fraction of the (non-crowd) boxes for each of :data:`KINDS_INJECTED`;
            missing, loose and wrong_class pick disjoint boxes; spurious adds that
            fraction of new boxes. Default :data:`DEFAULT_RATES`.

    Returns:
        ``(corrupted labels, injected errors)``; images keep their order.

    Raises:
        ValueError: rates that are negative or pick more than all the boxes.
    """
    r = dict(DEFAULT_RATES if rates is None else rates)
    if any(v < 0 for v in r.values()) or sum(r.get(k, 0) for k in KINDS_INJECTED[:3]) > 1:
        raise ValueError(f"rates must be >= 0 and drop + shift + swap <= 1, got {r}")
    rng = np.random.default_rng(seed)
    n_cls = len(labels.class_names)
    where = [(i, j) for i, d in enumerate(labels) for j in np.flatnonzero(~d.crowd)]
    n = len(where)
    order = rng.permutation(n)
    counts = [int(round(r.get(k, 0) * n)) for k in KINDS_INJECTED]
    pick, start = {}, 0
    for k, c in zip(KINDS_INJECTED[:3], counts[:3]):
        pick[k] = order[start:start + c]
        start += c
    dets = [replace(d, xyxy=d.xyxy.copy(), class_ids=d.class_ids.copy()) for d in labels]
    keep = [np.ones(len(d), bool) for d in labels]
    rows: list[tuple[int, str, np.ndarray, np.ndarray]] = []
    for k in KINDS_INJECTED[:3]:
        for t in pick[k]:
            i, j = where[t]
            d, box = dets[i], labels[i].xyxy[j].astype(np.float64)
            if k == "missing":
                keep[i][j] = False
                rows.append((i, k, box, box))
            elif k == "loose":
                info = d.image
                w, h = (info.width, info.height) if info else (int(box[2]) + 1, int(box[3]) + 1)
                new = _shift(box, rng.uniform(0.4, 0.65), w, h, rng)
                d.xyxy[j] = new
                rows.append((i, k, box, new))
            elif n_cls > 1:
                d.class_ids[j] = (d.class_ids[j] + rng.integers(1, n_cls)) % n_cls
                rows.append((i, k, box, box))
    sizes = np.array([labels[i].xyxy[j, 2:] - labels[i].xyxy[j, :2] for i, j in where]).reshape(-1, 2)
    extra: list[list[tuple[np.ndarray, int]]] = [[] for _ in dets]
    for _ in range(counts[3] if n else 0):
        i = int(rng.integers(len(dets)))
        info = dets[i].image
        if info is None:
            raise ValueError("spurious boxes need image sizes: labels without ImageInfo")
        bw, bh = np.minimum(sizes[rng.integers(len(sizes))], [info.width, info.height])
        x, y = rng.uniform(0, info.width - bw), rng.uniform(0, info.height - bh)
        box = np.array([x, y, x + bw, y + bh])
        extra[i].append((box, int(rng.integers(n_cls))))
        rows.append((i, "spurious", box, box))
    out = []
    for d, m, ex in zip(dets, keep, extra):
        out.append(add_boxes(d[m], ex))
    rows.sort(key=lambda t: t[0])
    inj = Injected(np.array([t[0] for t in rows], np.int64), np.array([t[1] for t in rows], dtype=object),
                   np.array([t[2] for t in rows]).reshape(-1, 4), np.array([t[3] for t in rows]).reshape(-1, 4))
    return replace(labels, detections=out), inj


def corrupt_images(labels: Results, images: np.ndarray, seed: int = 0) -> Results:
    """A copy of ``labels`` with exactly one injected error (a random kind of
    :data:`KINDS_INJECTED`) on each image of ``images`` (positions), the others untouched:
    a batch whose failing images are known.

    Raises:
        ValueError: a chosen image without a (non-crowd) box to corrupt.
    """
    rng = np.random.default_rng(seed)
    dets = list(labels.detections)
    for i in np.asarray(images, np.int64):
        d = labels[int(i)]
        m = int((~d.crowd).sum())
        if not m:
            raise ValueError(f"image {d.image.file_name if d.image else i!r} has no box to corrupt")
        kind = KINDS_INJECTED[int(rng.integers(len(KINDS_INJECTED)))]
        bad, inj = corrupt_labels(replace(labels, detections=[d]), int(rng.integers(1 << 30)), {kind: 1 / m})
        dets[int(i)] = bad[0]
    return replace(labels, detections=dets)
