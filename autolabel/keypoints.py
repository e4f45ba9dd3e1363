"""Keypoint metadata and keypoint similarity (the core layer, beside :mod:`autolabel.core`).

A :class:`KeypointSpec` names a model's or a dataset's keypoints, the skeleton edges
between them and COCO's per-keypoint falloff constants ``sigmas`` (``k_i = 2 sigma_i``
in the COCO keypoint evaluation). :class:`~autolabel.core.Detections` carries one beside
``class_names``; its per-box ``keypoints`` array is ``(N, K, 3)``: x, y in original-image
pixels and a visibility score (a model's probability in 0..1, or COCO's ``v`` flag 0/1/2
for ground truth; 0 = not labeled).

:func:`keypoint_similarity` is COCO's object keypoint similarity (OKS) per keypoint:
``exp(-d_i^2 / (2 s^2 k_i^2))`` with ``s^2`` the object's area, exactly the terms
``pycocotools.cocoeval.COCOeval.computeOks`` averages (hand-written here because
pycocotools computes only the average over a whole person, and savings need each joint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["KeypointSpec", "COCO_PERSON", "COCO_SIGMAS", "keypoint_similarity", "oks", "keypoint_box_agreement"]

#: COCO's per-keypoint sigmas (pycocotools ``COCOeval.Params.kpt_oks_sigmas``), person order
COCO_SIGMAS = tuple(s / 10 for s in (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                                      .89, .89))
_COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
               "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
               "right_knee", "left_ankle", "right_ankle")
# COCO's person skeleton (person_keypoints_*.json), converted from 1-based to 0-based indices
_COCO_SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
                  (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
_DEFAULT_SIGMA = 0.05  # assumption for keypoints COCO does not define: about a COCO face/hand point


@dataclass(frozen=True)
class KeypointSpec:
    """Names of the K keypoints, skeleton edges (0-based index pairs) and per-keypoint OKS sigmas."""

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        sig = tuple(float(s) for s in self.sigmas) or (_DEFAULT_SIGMA,) * len(self.names)
        object.__setattr__(self, "sigmas", sig)
        k = len(self.names)
        if len(set(self.names)) != k or not all(self.names):
            raise ValueError(f"keypoint names must be unique and non-empty: {list(self.names)}")
        if len(self.sigmas) != k or min(self.sigmas, default=1.0) <= 0:
            raise ValueError(f"need {k} positive sigmas, got {list(self.sigmas)}")
        bad = [e for e in self.skeleton if not (0 <= e[0] < k and 0 <= e[1] < k)]
        if bad:
            raise ValueError(f"skeleton edges {bad} index outside 0..{k - 1}")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def default(cls, k: int) -> KeypointSpec:
        """COCO's person spec for 17 keypoints, else ``kp0 .. kp{k-1}`` without a skeleton."""
        return COCO_PERSON if k == len(_COCO_NAMES) else cls(tuple(f"kp{i}" for i in range(k)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``names``, ``skeleton`` (0-based), ``sigmas``."""
        return {"names": list(self.names), "skeleton": [list(e) for e in self.skeleton], "sigmas": list(self.sigmas)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> KeypointSpec:
        return cls(tuple(d["names"]), tuple(tuple(e) for e in d.get("skeleton", ())),
                   tuple(d.get("sigmas", ())))

    @classmethod
    def from_coco_category(cls, category: Mapping[str, Any]) -> KeypointSpec:
        """From a COCO category's ``keypoints`` names and 1-based ``skeleton``; COCO's sigmas when
        the names are COCO's person keypoints."""
        names = tuple(str(n) for n in category["keypoints"])
        sigmas = COCO_SIGMAS if names == _COCO_NAMES else ()
        return cls(names, tuple((int(a) - 1, int(b) - 1) for a, b in category.get("skeleton") or ()), sigmas)


COCO_PERSON = KeypointSpec(_COCO_NAMES, _COCO_SKELETON, COCO_SIGMAS)


def keypoint_similarity(pred: np.ndarray, gt: np.ndarray, area: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """COCO's per-keypoint similarity ``exp(-d^2 / (2 area (2 sigma)^2))``.

    Args:
        pred: (N, K, >=2) predicted keypoints, pixels.
        gt: (N, K, >=2) ground-truth keypoints of the paired objects, pixels.
        area: (N,) object areas in pixels² (COCO: the segment area).
        sigmas: K per-keypoint sigmas.

    Returns:
        (N, K) float64 in (0, 1]; 1 = on the spot.
    """
    p, g = np.asarray(pred, np.float64)[..., :2], np.asarray(gt, np.float64)[..., :2]
    var = (2 * np.asarray(sigmas, np.float64)) ** 2
    d2 = ((p - g) ** 2).sum(-1)
    return np.exp(-d2 / var / (np.asarray(area, np.float64)[:, None] + np.spacing(1)) / 2)


def oks(pred: np.ndarray, gt: np.ndarray, area: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """(N,) OKS: the mean :func:`keypoint_similarity` over the labeled (``v > 0``) ground-truth
    keypoints of each pair, as pycocotools computes it (NaN where none is labeled)."""
    ks = keypoint_similarity(pred, gt, area, sigmas)
    vis = np.asarray(gt)[..., 2] > 0
    n = vis.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (ks * vis).sum(1) / n, np.nan)


def keypoint_box_agreement(xyxy: np.ndarray, keypoints: np.ndarray, t: float = 0.5, margin: float = 0.1) -> np.ndarray:
    """How each box's keypoints agree with it: (N, 2) ``visible_share`` (share of its K keypoints
    with visibility >= ``t``) and ``outside_share`` (share of those lying outside the box grown
    by ``margin`` of its size on each side; 0 when none is visible).

    Args:
        xyxy: (N, 4) boxes, pixels.
        keypoints: (N, K, 3) keypoints, pixels and visibility (score or COCO flag).
        t: visibility threshold (a COCO flag counts as visible when > 0 with ``t`` <= 1).
        margin: slack around the box, as a fraction of its width / height.

    Returns:
        (N, 2) float64.
    """
    b = np.asarray(xyxy, np.float64)
    kp = np.asarray(keypoints, np.float64)
    vis = kp[..., 2] >= t
    pad = (b[:, 2:] - b[:, :2]) * margin
    lo, hi = (b[:, :2] - pad)[:, None], (b[:, 2:] + pad)[:, None]
    out = ((kp[..., :2] < lo) | (kp[..., :2] > hi)).any(-1) & vis
    n_vis = vis.sum(1)
    share = np.where(n_vis > 0, out.sum(1) / np.maximum(n_vis, 1), 0.0)
    return np.stack([n_vis / max(kp.shape[1], 1), share], 1)
