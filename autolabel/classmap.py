"""Map a model's classes onto a project's label set: rename, merge, drop; and line
predictions up with ground truth by class name and image (:func:`align_classes`).

Config (``configs/classmaps/*.yaml``, validated by :class:`autolabel.config.ClassMapConfig`)::

    mapping: {car: vehicle, truck: vehicle, bus: vehicle, person: pedestrian, bicycle: null}
    keep_unmapped: false

Merged classes take the **max** of their source class probabilities (YOLO class
probabilities are independent sigmoids), and boxes that become the same class are
de-duplicated with class-wise NMS at the detector's IoU.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import ClassMapConfig, ConfigError
from autolabel.core import Detections, Results
from autolabel.boxes import batched_nms

__all__ = ["ClassMap", "align_classes"]


class ClassMap:
    """A validated mapping from ``source_names`` (the model's) to ``target_names``."""

    def __init__(self, config: ClassMapConfig, source_names: Sequence[str]):
        self.source_names = tuple(source_names)
        unknown = sorted(set(config.mapping) - set(self.source_names))
        if unknown:
            raise ConfigError(f"class map names classes the model does not have: {unknown}")
        targets: list[str] = list(config.labels or [])
        lut = np.full(len(self.source_names), -1, np.int64)
        for i, name in enumerate(self.source_names):
            t = config.mapping[name] if name in config.mapping else (name if config.keep_unmapped else None)
            if t is None:
                continue
            if t not in targets:
                targets.append(t)
            lut[i] = targets.index(t)
        self.target_names = tuple(targets)
        self.lut = lut
        self.merges = len(set(lut[lut >= 0].tolist())) < int((lut >= 0).sum())

    @classmethod
    def load(cls, spec: ClassMap | ClassMapConfig | Mapping[str, Any] | str | os.PathLike, source_names: Sequence[str]) -> ClassMap:
        """From a ClassMap, a config, a dict, a YAML path or a name under ``configs/classmaps/``."""
        if isinstance(spec, ClassMap):
            if spec.source_names != tuple(source_names):
                raise ConfigError("class map was built for a model with other classes")
            return spec
        return cls(ClassMapConfig.load(spec), source_names)

    def __call__(self, det: Detections, iou: float | None = None) -> Detections:
        """Remap one image's detections; ``iou`` re-runs NMS where classes were merged."""
        ids = self.lut[det.class_ids]
        keep = ids >= 0
        probs = None
        if det.class_probs is not None:
            probs = np.zeros((len(det), len(self.target_names)), np.float32)
            for t in range(len(self.target_names)):
                cols = np.flatnonzero(self.lut == t)
                probs[:, t] = det.class_probs[:, cols].max(1) if len(det) else 0
            probs = probs[keep]
        out = replace(det[keep], class_ids=ids[keep], class_names=self.target_names, class_probs=probs)
        if iou is not None and self.merges and len(out):
            out = out[np.sort(batched_nms(out.xyxy, out.scores, out.class_ids, iou, len(out)))]
        return out

    def __repr__(self) -> str:
        return f"ClassMap({len(self.source_names)} model classes -> {list(self.target_names)})"


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
                raise ValueError(f"{what} image {d.image.file_name!r}: class id outside 0..{n - 1}")
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
