"""Ultralytics backend: any checkpoint ``ultralytics.YOLO`` loads.

YOLOv5u, YOLOv8, YOLO11 and later detection checkpoints, and RT-DETR (``ultralytics.YOLO``
switches to ``ultralytics.RTDETR`` itself when the checkpoint's head is RT-DETR). Images
are predicted a batch at a time at the model's training image size, on CUDA when
available, letterboxed to the full square input (``rect=False``: an image's boxes do not
depend on which images share its batch, and match the model's ONNX export). Ultralytics
does its own NMS; its per-box class distributions are not exposed, so
``Detections.class_probs`` is ``None``. Pose checkpoints (task ``pose``) pass
``result.keypoints`` through as ``Detections.keypoints`` (x, y in original pixels, the
keypoint confidence as visibility score; 1 where the model has no visibility channel).

Security: a ``.pt`` checkpoint is a Python pickle and can run arbitrary code when it is
loaded, and when it names a module that is not installed Ultralytics tries to
``pip install`` it: this backend turns that off around its own Ultralytics calls only
(:func:`no_autoinstall`; nothing is set on import or left set after). Load only checkpoints
you trust; prefer the ONNX export of a model, or a torchvision state dict (loaded with
``weights_only=True``).

The original YOLOv5 checkpoints (``github.com/ultralytics/yolov5``, e.g. ``yolov5n.pt``)
cannot be loaded by the ``ultralytics`` package: they are recognised without unpickling
and refused with a ``ValueError``; use their ONNX export or a YOLOv5u checkpoint.
"""

from __future__ import annotations

import os
import pickletools
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from autolabel.boxes import box_area
from autolabel.core import Detections
from autolabel.detectors.base import Detector, auto_device, file_sha256

__all__ = ["UltralyticsDetector", "no_autoinstall"]

_YOLOV5_MODULES = {"models.yolo", "models.common", "models.experimental"}


def _pickled_modules(path: str) -> set[str]:
    """Modules a ``torch.save`` zip checkpoint imports, read from its pickle opcodes without running them."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            data = z.read(pkl) if pkl else b""
    except (zipfile.BadZipFile, OSError):
        return set()  # not a zip checkpoint: Ultralytics reports what is wrong with it
    modules: set[str] = set()
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                modules.add(str(arg).split(" ", 1)[0])
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                modules.add(strings[-2])
    except ValueError:  # pickletools' error for a damaged pickle: Ultralytics reports it when loading
        pass
    return modules


@contextmanager
def no_autoinstall() -> Iterator[None]:
    """Within the block, Ultralytics never ``pip install``-s a missing requirement.

    Ultralytics reads ``YOLO_AUTOINSTALL`` once, when it is first imported, into
    ``ultralytics.utils.checks.AUTOINSTALL``; this sets that flag to ``False`` for the
    block and restores it after, so the process environment and other Ultralytics users
    are left as they were.
    """
    from ultralytics.utils import checks

    before = checks.AUTOINSTALL
    checks.AUTOINSTALL = False
    try:
        yield
    finally:
        checks.AUTOINSTALL = before


class UltralyticsDetector(Detector):
    """A detection checkpoint loaded with ``ultralytics.YOLO``.

    ``path_or_name`` is a ``.pt`` file, or an Ultralytics asset name (``yolov8n.pt``) that
    Ultralytics downloads into the working directory where the network allows.
    ``class_names`` renames the model's classes (same count); ``device`` defaults to
    ``"cuda"`` when available, else ``"cpu"``; ``defaults`` are ``conf``, ``iou``, ``max_det``.
    """

    backend = "ultralytics"
    input_size: tuple[int, int]  # always known: the checkpoint's imgsz
    # Ultralytics annotates its model (``str | None`` fields) and ``predict`` (``Results | Tensor``)
    # more loosely than it behaves for a loaded detection checkpoint
    model: Any

    def __init__(
        self,
        path_or_name: str | os.PathLike,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int = 8,
        **defaults: Any,
    ):
        from ultralytics import YOLO

        spec = str(path_or_name)
        local = os.path.isfile(spec)
        if not spec.lower().endswith(".pt"):
            raise ValueError(
                f"{spec}: Ultralytics loads .pt checkpoints; for a torchvision state dict use "
                "'torchvision:<architecture>' with weights=<file>"
            )
        if local and _YOLOV5_MODULES & _pickled_modules(spec):
            raise ValueError(
                f"{spec}: an original YOLOv5 checkpoint (github.com/ultralytics/yolov5), which the ultralytics "
                "package cannot load; use its ONNX export (e.g. yolov5n.onnx) or a YOLOv5u checkpoint (yolov5nu.pt)"
            )
        try:
            with no_autoinstall():
                self.model = YOLO(os.path.abspath(spec) if local else spec)
        except Exception as e:  # Ultralytics raises many types; re-raised as ours, chained
            if local:
                raise ValueError(f"{spec}: not a loadable Ultralytics checkpoint ({type(e).__name__}: {e})") from e
            raise FileNotFoundError(
                f"{spec}: no such file, and Ultralytics could not provide it ({type(e).__name__}: {e})"
            ) from e
        if self.model.task not in ("detect", "pose"):
            raise ValueError(f"{spec}: a {self.model.task!r} model; only detection and pose models are supported")
        names = [str(self.model.names[i]) for i in sorted(self.model.names)]
        if class_names is not None:
            if len(class_names) != len(names):
                raise ValueError(f"{spec}: the model has {len(names)} classes {names}, got {len(class_names)} names")
            names = list(class_names)
        imgsz = self.model.model.args.get("imgsz", 640)
        size = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
        self.device = device or auto_device()
        path = str(self.model.ckpt_path or spec)
        super().__init__(Path(path).stem, names, file_sha256(path), size, batch_size, **defaults)
        if self.model.task == "pose":
            from autolabel.keypoints import KeypointSpec

            self.keypoint_spec = KeypointSpec.default(int(getattr(self.model.model, "kpt_shape")[0]))

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """RGB -> the BGR array Ultralytics expects for numpy input."""
        return np.ascontiguousarray(image[..., ::-1])

    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        if not batch:
            return []
        with no_autoinstall():
            results = self.model.predict(
                list(batch), imgsz=list(self.input_size), conf=conf, iou=iou, max_det=max_det,
                device=self.device, batch=len(batch), rect=False, verbose=False,
            )
        out = []
        for r in results:
            h, w = r.orig_shape
            xyxy = r.boxes.xyxy.cpu().numpy().clip(0, [w, h, w, h])  # RT-DETR boxes are not clipped upstream
            scores, cls = r.boxes.conf.cpu().numpy(), r.boxes.cls.cpu().numpy().astype(np.int64)
            d = Detections(xyxy, scores, cls, self.class_names, keypoints=_keypoints(r), keypoint_spec=self.keypoint_spec)
            out.append(d[np.flatnonzero(box_area(d.xyxy) > 0)])  # a box clipped to the image border can collapse to a line
        return out


def _keypoints(result: Any) -> np.ndarray | None:
    """(N, K, 3) x, y, confidence of an Ultralytics result's ``keypoints`` (``None`` for detection models)."""
    kp = getattr(result, "keypoints", None)
    if kp is None:
        return None
    xy = kp.xy.cpu().numpy().astype(np.float32)
    conf = kp.conf.cpu().numpy().astype(np.float32) if kp.conf is not None else np.ones(xy.shape[:2], np.float32)
    return np.concatenate([xy, conf[..., None]], axis=2)
