"""ONNX Runtime backend for YOLO-family and RT-DETR exports.

Output layouts (YOLOv5, YOLOv8/YOLO11, YOLOv8-seg, NMS-free end-to-end YOLOv10/YOLO26,
RT-DETR) are told apart from the output shapes and metadata
(:mod:`autolabel.detectors.layouts`). Boxes come back in letterboxed input pixels; we
undo the letterbox, keep the best class per box, apply ``conf``, class-wise NMS at ``iou``
(layouts that need it) and ``max_det``. The per-box class probability vectors are kept
(``Detections.class_probs``) where the layout has them. Segmentation exports also give
mask polygons in ``Detections.data["polygons"]`` (:mod:`autolabel.detectors.masks`); pose
exports (metadata ``kpt_shape``) give ``Detections.keypoints`` in original-image pixels, the
letterbox (and a draft decode's scale) undone as for the boxes.

At load the model runs once on a synthetic image and a broken export (scores all zero,
outside [0, 1], not finite) is refused (:mod:`autolabel.detectors.health`). Any
precision loads (fp32, fp16, int8 QDQ, int8 dynamic); :attr:`OnnxDetector.precision`
says which.

Providers: CUDA when onnxruntime-gpu reports it and ``device`` is not ``"cpu"``,
otherwise CPU.
"""

from __future__ import annotations

import ast
import os
import threading
from typing import Any, Sequence

import numpy as np

from autolabel.boxes import box_area
from autolabel.core import Detections
from autolabel.keypoints import KeypointSpec
from autolabel.detectors.base import Detector, file_sha256
from autolabel.detectors.health import check_image, check_scores, onnx_precision
from autolabel.detectors.layouts import Layout, decode_outputs, detect_layout, raw_scores
from autolabel.detectors.masks import POLYGONS, mask_polygons
from autolabel.detectors.ops import LETTERBOX_PAD, letterbox_resize, unletterbox, unletterbox_points

__all__ = ["OnnxDetector"]

_SCALE = np.float32(1 / 255)


def _names_from_metadata(meta: dict[str, str]) -> list[str] | None:
    raw = meta.get("names")
    if not raw:
        return None
    names = ast.literal_eval(raw)
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    return [str(n) for n in names]


def _session(path: str, device: str | None, threads: int | None) -> tuple[Any, int]:
    """An onnxruntime session (CUDA when available and not ``device="cpu"``) and the
    concurrent batches it is sized for."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # batch throughput: idle intra-op threads sleep instead of spinning, so they do not
    # take the CPU from the decode threads (or other processes) between operators
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    streams = 1
    if not threads and len(providers) == 1:
        from autolabel.detectors.tuning import cpu_streams, cpu_threads

        threads, streams = cpu_threads(), cpu_streams()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, opts, providers=providers), streams
    except Exception as e:  # onnxruntime raises its own exception types
        raise ValueError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from e


class OnnxDetector(Detector):
    """A detector exported to ONNX, run with onnxruntime.

    Args:
        path: the ``.onnx`` file.
        class_names: class names (default: the metadata's ``names``).
        device: ``"cpu"`` or a CUDA device (default: CUDA when available).
        batch_size: images per ``session.run`` (a fixed batch dimension overrides it).
        threads: ONNX Runtime intra-op threads (default on a CPU: cores / the engine's
            default streams, see :mod:`autolabel.detectors.tuning`; on a GPU: ONNX Runtime's).
        check: run the load-time health check (see module docs).
        draft: decode JPEGs of at least twice the input size at 1/2, 1/4 or 1/8 scale
            (Pillow's DCT-domain ``draft``); boxes are in full-size pixels either way.
        **defaults: ``conf``, ``iou``, ``max_det``.

    Attributes: ``layout`` (:class:`~autolabel.detectors.layouts.Layout`),
    ``precision`` (see :func:`~autolabel.detectors.health.onnx_precision`), ``providers``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a loadable ONNX model, no class names, or no layout fits (the
            file and shape named); :class:`~autolabel.detectors.health.BrokenModelError`
            when the health check fails.
    """

    backend = "onnx"
    thread_safe = True  # InferenceSession.run is
    input_size: tuple[int, int]  # always known: the model's fixed input

    def __init__(
        self,
        path: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        check: bool = True,
        draft: bool = True,
        **defaults: Any,
    ):
        path = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"ONNX model not found: {path}")
        #: auto_streams: concurrent batches the engine runs by default, sized with the threads (engine/tuning.py)
        self.session, self.auto_streams = _session(path, device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self._input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32  # fp16 exports
        self.output_names = [o.name for o in self.session.get_outputs()]
        names = list(class_names) if class_names is not None else _names_from_metadata(meta)
        shape = inp.shape
        if isinstance(shape[2], int) and isinstance(shape[3], int):
            size = (shape[2], shape[3])
        else:
            imgsz = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
            size = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        if isinstance(shape[0], int):
            batch_size = shape[0]
        outs = self.session.get_outputs()
        shapes = [o.shape for o in outs]
        if len(shapes[0]) == 3 and len(shapes) > 1 and len(shapes[1]) != 4:
            self.output_names, shapes = self.output_names[:1], shapes[:1]  # YOLOv5: raw head outputs beside
        self.input_size = size
        probe = None
        if check or not all(isinstance(d, int) for s_ in shapes for d in s_[1:]):  # symbolic dims: probe once
            probe = self._run(self.to_input([self.prepare(check_image())]))
            shapes = [o.shape for o in probe]
        self.layout: Layout = detect_layout(shapes, names, meta, path)
        if names is None:
            if self.layout.name != "end2end":
                raise ValueError(f"{path}: no class names in the ONNX metadata 'names'; pass class_names")
            raise ValueError(f"{path}: an end-to-end ({self.layout.name}) output has no class count; pass class_names")
        if self.layout.n_classes == 0:
            self.layout = Layout(self.layout.name, len(names), self.layout.n_masks, self.layout.kpt_shape)
        if check and probe is not None:
            self.check_score = check_scores(raw_scores(self.layout, probe[0][0]), path)
        self.path = path
        #: decode large JPEGs in the DCT domain at the scale the letterbox needs (prepare_item)
        self.draft = draft
        self.precision = onnx_precision(path)
        self.providers = self.session.get_providers()
        self._buffers = threading.local()  # reused input tensors: no page faults per batch
        name = os.path.splitext(os.path.basename(path))[0]
        super().__init__(name, names, file_sha256(path), size, batch_size, **defaults)
        if self.layout.kpt_shape:
            self.keypoint_spec = KeypointSpec.default(self.layout.kpt_shape[0])

    def prepare(
        self, image: np.ndarray, original_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, float, tuple[float, float], int, int]:
        """The letterbox's image part (resized, not padded: :meth:`to_input` pads), its
        ratio (input pixels per original pixel) and (left, top) offset, and the original
        width and height. ``original_size`` (width, height): the full size of an image
        that was decoded smaller (boxes are then mapped to the full size)."""
        region, ratio, (left, top) = letterbox_resize(image, self.input_size)
        w, h = original_size or (image.shape[1], image.shape[0])
        return region, ratio * image.shape[1] / w, (float(left), float(top)), w, h

    def prepare_item(self, item: Any) -> tuple[Any, Any]:
        """Load and prepare an item; with :attr:`draft` a large JPEG is decoded at 1/2,
        1/4 or 1/8 scale in the DCT domain (:func:`~autolabel.sources.load_image_draft`)
        and its boxes come back in full-size pixels."""
        arr, info = item.load(draft=self.input_size if self.draft else None)
        return self.prepare(arr, (info.width, info.height)), info

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

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        if self._input_dtype is not np.float32:  # fp16 I/O: feed half, decode in float32
            outs = self.session.run(self.output_names, {self.input_name: x.astype(self._input_dtype)})
            return [o.astype(np.float32) for o in outs]
        return self.session.run(self.output_names, {self.input_name: x})

    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        if not batch:
            return []
        buf = getattr(self._buffers, "x", None)  # one input buffer per calling thread (streams)
        if buf is None or len(buf) < len(batch):
            buf = self._buffers.x = np.empty((max(len(batch), self.batch_size), 3, *self.input_size), np.float32)
        raw = self._run(self.to_input(batch, buf))
        return [self.decode([r[i] for r in raw], ratio, pad, w, h, conf=conf, iou=iou, max_det=max_det)
                for i, (_, ratio, pad, w, h) in enumerate(batch)]

    def decode(
        self, outs: Sequence[np.ndarray], ratio: float, pad: tuple[float, float], width: int, height: int,
        conf: float, iou: float, max_det: int,
    ) -> Detections:
        """One image's raw outputs (batch dimension removed) -> detections in
        original-image pixels (with ``data["polygons"]`` for segmentation models and
        ``keypoints`` for pose models)."""
        d = decode_outputs(self.layout, outs, self.input_size, conf, iou, max_det)
        xyxy = d["xyxy"]
        data = {}
        if d["mask_coefs"] is not None:
            data[POLYGONS] = mask_polygons(d["mask_coefs"], outs[1], xyxy, self.input_size,
                                           ratio, pad, width, height)
        cls = d["class_ids"]
        ok = (cls >= 0) & (cls < len(self.class_names))
        if not ok.all():  # an end-to-end head's class column outside the names: refuse, naming it
            raise ValueError(f"{self.path}: class id {int(cls[~ok][0])} outside the model's "
                             f"{len(self.class_names)} class names")
        kp = d["keypoints"]
        out = Detections(
            unletterbox(xyxy, ratio, pad, width, height), d["scores"], cls, self.class_names,
            class_probs=d["class_probs"], data=data, keypoint_spec=self.keypoint_spec,
            keypoints=None if kp is None else unletterbox_points(kp, ratio, pad, width, height),
        )
        return out[np.flatnonzero(box_area(out.xyxy) > 0)]  # a box clipped to the image border can collapse to a line

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """``session.run`` on an already preprocessed NCHW float32 batch (benchmark ceiling);
        the first output."""
        return self._run(x)[0]
