"""What a training run leaves behind: :class:`TrainResult` and the model card, and the
validation score every model is compared by (:func:`evaluate`)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from autolabel.core import Results

__all__ = ["TrainResult", "evaluate", "read_card", "CARD_NAME"]

CARD_NAME = "model_card.json"


@dataclass(frozen=True)
class TrainResult:
    """A finished fine-tuning run (:func:`autolabel.train`).

    Paths are inside the run's ``out`` folder. ``model_id`` is what
    ``load_detector(model_pt).model_id`` reports (``onnx_model_id`` the same for the ONNX
    file): every pre-label made with the model carries it. ``map50``/``map50_95`` are
    pycocotools' scores of ``model.pt`` on the held-back validation images.
    """

    out: str
    model_pt: str
    model_onnx: str
    model_card: str
    model_id: str
    onnx_model_id: str
    class_names: tuple[str, ...]
    map50: float
    map50_95: float
    train_seconds: float  #: wall seconds of Ultralytics' trainer (set-up, epochs, final validation)
    total_seconds: float  #: wall seconds of the whole call (checks, data set, training, export, evaluation)
    imgsz: int
    imgsz_reason: str
    epochs: int  #: epochs run (in this call, when resumed)
    stopped_by_budget: bool
    val_images: int
    train_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """Two lines for people: the model, its validation score and what training cost."""
        why = "stopped by the time budget" if self.stopped_by_budget else "all epochs"
        return (f"{self.model_id}: val mAP50 {self.map50:.3f}, mAP50-95 {self.map50_95:.3f} on {self.val_images} "
                f"held-back images; {self.epochs} epochs at {self.imgsz} px on {self.train_images} images in "
                f"{self.train_seconds:.0f} s ({why}; {self.total_seconds:.0f} s in all)\n"
                f"imgsz {self.imgsz}: {self.imgsz_reason}\nwrote {self.model_pt}, {self.model_onnx}, {self.model_card}")

    def __repr__(self) -> str:
        return (f"TrainResult({self.model_id}, mAP50 {self.map50:.3f}, {self.epochs} epochs at {self.imgsz} px, "
                f"{self.train_seconds:.0f} s{', budget-stopped' if self.stopped_by_budget else ''})")


def evaluate(detector: Any, images: str | os.PathLike, ground_truth: str | os.PathLike,
             class_map: Any = None) -> tuple[float, float]:
    """``(mAP50-95, mAP50)`` of ``detector`` on the images of a COCO ground-truth file.

    Args:
        detector: anything :func:`autolabel.load_detector` accepts.
        images: the folder the ground truth's ``file_name`` values are relative to.
        ground_truth: a COCO JSON (classes paired with the model's by name; a class the
            model lacks scores 0).
        class_map: maps the model's classes onto the ground truth's first (as served).

    Returns:
        pycocotools' mAP50-95 and mAP50 (predictions at conf 0.001, 100 per image).
    """
    from autolabel.io.files import load_json
    from autolabel.pipeline import prelabel
    from autolabel.savings.ladder import coco_map
    from autolabel.sources.inputs import from_coco

    gt, _ = load_json(ground_truth)
    pred = prelabel(from_coco(ground_truth, images), detector, conf=0.001, max_det=100, progress=False,
                    class_map=class_map)
    return coco_map(pred, gt)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """A model card (the file, or the run folder holding it)."""
    from autolabel.io.files import load_json

    p = os.path.join(str(path), CARD_NAME) if os.path.isdir(path) else str(path)
    card, _ = load_json(p)
    if not isinstance(card, dict) or "model_id" not in card:
        raise ValueError(f"{p}: not an autolabel model card (no model_id)")
    return card


def write_card(path: str, card: Mapping[str, Any]) -> str:
    """Write the card atomically."""
    from autolabel.io.files import atomic_write

    return atomic_write(path, json.dumps(card, indent=1, allow_nan=False))


def counts_by_split(results: Results, val_keys: set[str]) -> dict[str, Any]:
    """Image and box counts per class, for the train and the validation images."""
    from autolabel.training.data import class_counts

    parts = {"train": [d for d in results.detections if d.image and d.image.key not in val_keys],
             "val": [d for d in results.detections if d.image and d.image.key in val_keys]}
    out: dict[str, Any] = {"all": class_counts(results)}
    for name, dets in parts.items():
        out[name] = {"n_images": len(dets), **class_counts(Results(dets, results.class_names))}
    out["all"]["n_images"] = len(results.detections)
    return out
