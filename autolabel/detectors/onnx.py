"""ONNX Runtime backend for YOLO exports.

Output layouts, detected from the output shape and the class count:

* YOLOv5 style ``[B, N, 5 + C]``: ``cx, cy, w, h, objectness, C class probabilities``;
  score = objectness x class probability.
* YOLOv8 / YOLO11 style ``[B, 4 + C, N]``: ``cx, cy, w, h, C class probabilities``.

Boxes are in letterboxed input pixels; we undo the letterbox, keep the best class per
box, apply ``conf``, class-wise NMS at ``iou`` and ``max_det``. The per-box class
probability vectors are kept (``Detections.class_probs``) for uncertainty scoring.

Providers: CUDA when onnxruntime-gpu reports it and ``device`` is not ``"cpu"``,
otherwise CPU.
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any, Sequence

import numpy as np

from autolabel.core import Detections
from autolabel.detectors.base import Detector, file_sha256
from autolabel.ops import LETTERBOX_PAD, batched_nms, letterbox_resize, unletterbox

__all__ = ["OnnxDetector"]

MAX_NMS_CANDIDATES = 30000
_SCALE = np.float32(1 / 255)


def _names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    raw = meta.get("names")
    if not raw:
        return None
    names = ast.literal_eval(raw)
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names]


class OnnxDetector(Detector):
    """A YOLO detector exported to ONNX, run with onnxruntime."""

    backend = "onnx"
    thread_safe = True  # InferenceSession.run is

    def __init__(
        self,
        path: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        **defaults: Any,
    ):
        import onnxruntime as ort

        path = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model not found: {path}")
        opts = ort.SessionOptions()
        # batch throughput: idle intra-op threads sleep instead of spinning, so they do not
        # take the CPU from the decode threads (or other processes) between operators
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        names = list(class_names) if class_names is not None else _names_from_metadata(meta)
        shape = inp.shape
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            size = (shape[2], shape[3])
        else:
            imgsz = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
            size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        if isinstance(shape[0], int):
            batch_size = shape[0]
        out_shape = self.session.get_outputs()[0].shape
        if not all(isinstance(d, int) for d in out_shape[1:]):  # symbolic dims: probe once
            probe = np.zeros((1, 3, *size), np.float32)
            out_shape = self.session.run([self.output_name], {self.input_name: probe})[0].shape
        self.layout = self._layout(out_shape, names, path)
        if names is None:
            raise ValueError(f"{path}: no class names in the ONNX metadata 'names'; pass class_names")
        self.providers = self.session.get_providers()
        self._buffers = threading.local()  # reused input tensors: no page faults per batch
        name = os.path.splitext(os.path.basename(path))[0]
        super().__init__(name, names, file_sha256(path), size, batch_size, **defaults)

    @staticmethod
    def _layout(shape: Sequence[Any], names: Sequence[str] | None, path: str) -> str:
        if len(shape) != 3:
            raise ValueError(f"{path}: expected a 3-D YOLO output, got shape {shape}")
        _, d1, d2 = shape
        if names is not None and isinstance(d1, int) and isinstance(d2, int):
            c = len(names)
            if d2 == 5 + c:
                return "v5"
            if d1 == 4 + c:
                return "v8"
            raise ValueError(f"{path}: output shape {shape} does not fit {c} classes in a YOLOv5 or YOLOv8 layout")
        if isinstance(d1, int) and isinstance(d2, int):
            return "v8" if d1 < d2 else "v5"
        raise ValueError(f"{path}: cannot tell the output layout of shape {shape}; pass class_names")

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float], int, int]:
        """The letterbox's image part (resized, not padded: :meth:`to_input` pads), its
        ratio and (left, top) offset, and the original width and height."""
        region, ratio, (left, top) = letterbox_resize(image, self.input_size)  # type: ignore[arg-type]
        return region, ratio, (float(left), float(top)), image.shape[1], image.shape[0]

    def to_input(self, batch: Sequence[Any], out: np.ndarray | None = None) -> np.ndarray:
        """The NCHW float32 input (0..1, padding 114/255) of a batch of :meth:`prepare`
        outputs, written into ``out`` (a ``(>= len(batch), 3, H, W)`` buffer) when given."""
        import cv2

        th, tw = self.input_size
        x = np.empty((len(batch), 3, th, tw), np.float32) if out is None else out[: len(batch)]
        pad = np.float32(LETTERBOX_PAD) * _SCALE  # the value the uint8 padding scales to
        for xi, (region, _, (left, top), *_) in zip(x, batch):
            h, w = region.shape[:2]
            x0, y0 = int(left), int(top)
            for band in (xi[:, :y0], xi[:, y0 + h:], xi[:, y0: y0 + h, :x0], xi[:, y0: y0 + h, x0 + w:]):
                band[...] = pad
            for plane, channel in zip(cv2.split(region), xi):  # HWC uint8 -> CHW float32 / 255, in place
                np.multiply(plane, _SCALE, out=channel[y0: y0 + h, x0: x0 + w])
        return x

    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        if not batch:
            return []
        buf = getattr(self._buffers, "x", None)  # one input buffer per calling thread (streams)
        if buf is None or len(buf) < len(batch):
            buf = self._buffers.x = np.empty((max(len(batch), self.batch_size), 3, *self.input_size), np.float32)
        raw = self.session.run([self.output_name], {self.input_name: self.to_input(batch, buf)})[0]
        return [self.decode(raw[i], *b[1:], conf=conf, iou=iou, max_det=max_det) for i, b in enumerate(batch)]

    def decode(
        self, pred: np.ndarray, ratio: float, pad: tuple[float, float], width: int, height: int,
        conf: float, iou: float, max_det: int,
    ) -> Detections:
        """One image's raw output -> detections in original-image pixels."""
        if self.layout == "v8":
            pred = pred.T
            scores = pred[:, 4:].max(1)
            keep = scores > conf
            pred, scores = pred[keep], scores[keep]
            probs = pred[:, 4:]
        else:  # objectness bounds the score: filter on it first, then on the product
            pred = pred[pred[:, 4] > conf]
            scores = (pred[:, 5:] * pred[:, 4:5]).max(1)
            keep = scores > conf
            pred, scores = pred[keep], scores[keep]
            probs = pred[:, 5:]
        cls = probs.argmax(1)
        if len(scores) > MAX_NMS_CANDIDATES:
            top = np.argsort(-scores)[:MAX_NMS_CANDIDATES]
            pred, probs, scores, cls = pred[top], probs[top], scores[top], cls[top]
        cxcy, wh = pred[:, :2], pred[:, 2:4]
        xyxy = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
        k = batched_nms(xyxy, scores, cls, iou, max_det)
        return Detections(
            unletterbox(xyxy[k], ratio, pad, width, height), scores[k], cls[k], self.class_names,
            class_probs=probs[k],
        )

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """``session.run`` on an already preprocessed NCHW float32 batch (benchmark ceiling)."""
        return self.session.run([self.output_name], {self.input_name: x})[0]
