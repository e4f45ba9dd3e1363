"""torchvision backend: detection architectures by name, with a state dict or torchvision's weights.

``TorchvisionDetector("fasterrcnn_resnet50_fpn", weights="model.pth", class_names=[...])``
builds the architecture untrained (``weights=None, weights_backbone=None``) with
``num_classes=len(class_names)`` and loads the state dict with ``weights_only=True``
(no pickled code runs). A checkpoint from torchvision's reference training script
(``{"model": state_dict, ...}``) is accepted too.

Without ``weights``, torchvision's own COCO weights are used if their file is already in
torch.hub's checkpoint directory; nothing is downloaded unless ``allow_download=True``.

``class_names[i]`` is the name of label id ``i`` as the model returns it: Faster R-CNN
and SSD reserve id 0 for the background (so ``class_names[0]`` is a placeholder such as
``"__background__"``), RetinaNet and FCOS do not. The model does its own resizing and
NMS (tune it with ``model_kwargs``, e.g. ``box_score_thresh``, ``box_nms_thresh``,
``detections_per_img``); of our defaults only ``conf`` and ``max_det`` apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autolabel.core import Detections
from autolabel.detectors.base import Detector, auto_device, file_sha256

__all__ = ["TorchvisionDetector", "ARCHITECTURES"]

ARCHITECTURES = (
    "fasterrcnn_resnet50_fpn",
    "fasterrcnn_resnet50_fpn_v2",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "retinanet_resnet50_fpn",
    "retinanet_resnet50_fpn_v2",
    "fcos_resnet50_fpn",
    "ssd300_vgg16",
    "ssdlite320_mobilenet_v3_large",
)


def _load_state_dict(path: str) -> dict[str, Any]:
    import torch

    try:
        sd = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError as e:
        raise FileNotFoundError(f"torchvision weights not found: {path}") from e
    except Exception as e:
        raise ValueError(
            f"{path}: not a state dict loadable with weights_only=True ({type(e).__name__}: {e})"
        ) from e
    if isinstance(sd, dict) and isinstance(sd.get("model"), dict):
        sd = sd["model"]  # torchvision reference-script checkpoint
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), got {type(sd).__name__}")
    return sd


class TorchvisionDetector(Detector):
    """A ``torchvision.models.detection`` architecture (see :data:`ARCHITECTURES`)."""

    backend = "torchvision"

    def __init__(
        self,
        arch: str,
        weights: str | os.PathLike | None = None,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int = 4,
        model_kwargs: dict[str, Any] | None = None,
        allow_download: bool = False,
        **defaults: Any,
    ):
        import torch
        from torchvision.models import get_model_builder, get_model_weights

        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown torchvision architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
        builder = get_model_builder(arch)
        kwargs = dict(model_kwargs or {})
        if weights is not None:
            path = str(weights)
            if class_names is None:
                raise ValueError(f"{path}: pass class_names (index = label id) for a torchvision state dict")
            state = _load_state_dict(path)
            model = builder(weights=None, weights_backbone=None, num_classes=len(class_names), **kwargs)
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{path}: does not fit {arch} with {len(class_names)} classes: {e}") from e
        else:
            coco = get_model_weights(arch).DEFAULT
            path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(coco.url))
            if not os.path.isfile(path) and not allow_download:
                raise FileNotFoundError(
                    f"torchvision weights {coco} for {arch} not found at {path}; put the file from {coco.url} "
                    "there, pass weights=<state dict file>, or allow_download=True (no download is attempted otherwise)"
                )
            categories = list(coco.meta["categories"])
            if class_names is not None and len(class_names) != len(categories):
                raise ValueError(f"{arch} {coco} has {len(categories)} classes, got {len(class_names)} class_names")
            class_names = categories if class_names is None else class_names
            model = builder(weights=coco, weights_backbone=None, **kwargs)
        self.device = torch.device(device or auto_device())
        self.model = model.eval().to(self.device)
        super().__init__(arch, class_names, file_sha256(path), None, batch_size, **defaults)
        self.weights_path = Path(path)

    def prepare(self, image: np.ndarray) -> Any:
        """RGB ``uint8`` HWC -> float CHW tensor in 0..1, as torchvision detectors take."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)).div_(255)

    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        import torch

        if not batch:
            return []
        with torch.inference_mode():
            outputs = self.model([t.to(self.device) for t in batch])
        return [
            Detections(
                o["boxes"].cpu().numpy(), o["scores"].cpu().numpy(), o["labels"].cpu().numpy(), self.class_names
            ).filter(conf)[:max_det]
            for o in outputs
        ]
