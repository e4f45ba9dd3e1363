"""The one small interface every detector backend implements."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np

from autolabel.core import Detections
from autolabel.keypoints import KeypointSpec

if TYPE_CHECKING:
    from autolabel.detectors.thresholds import ClassThresholds

__all__ = ["Detector", "auto_device", "file_sha256"]


@lru_cache(maxsize=64)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def auto_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"`` (torch-based backends)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file (cached per path, size and modification time)."""
    st = os.stat(path)
    return _sha256(os.path.abspath(path), st.st_mtime_ns, st.st_size)


class Detector(ABC):
    """Batch of RGB ``uint8`` images in, one :class:`Detections` per image out.

    Subclasses implement :meth:`predict_prepared`; backends that can do their
    preprocessing off the inference thread also override :meth:`prepare`, which
    the batch engine runs in its decode workers.

    Attributes: ``class_names``, ``input_size`` (height, width) or ``None`` when the
    backend resizes internally, ``model_id`` (``<name>@<sha256 prefix of the weights>``),
    ``batch_size``, the default ``conf``, ``iou`` and ``max_det``, and ``keypoint_spec``
    (pose models; ``None`` otherwise).
    """

    backend: ClassVar[str] = ""
    #: ``predict_prepared`` may run in several threads at once (the batch engine's ``streams``)
    thread_safe: ClassVar[bool] = False

    def __init__(
        self,
        name: str,
        class_names: Sequence[str],
        weights_sha256: str,
        input_size: tuple[int, int] | None = None,
        batch_size: int = 8,
        conf: float = 0.25,
        iou: float = 0.6,
        max_det: int = 300,
    ):
        self.name = name
        self.class_names = tuple(class_names)
        self.weights_sha256 = weights_sha256
        self.input_size = input_size
        self.batch_size = batch_size
        self.conf, self.iou, self.max_det = conf, iou, max_det
        #: names and skeleton of the keypoints a pose model predicts (``None``: boxes only)
        self.keypoint_spec: KeypointSpec | None = None

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.weights_sha256[:12]}"

    def settings(
        self,
        conf: float | Mapping[str, Any] | ClassThresholds | None = None,
        iou: float | None = None,
        max_det: int | None = None,
    ) -> tuple[ClassThresholds, float, int]:
        """``conf``, ``iou`` and ``max_det``, the detector's defaults where not given.

        ``conf`` is one score threshold or per class (a ``{class name: threshold}``
        mapping, optionally with ``"default"``, a YAML path or a
        :class:`~autolabel.detectors.thresholds.ClassThresholds`); it always comes back as
        a ``ClassThresholds`` (one threshold: no per-class entries) whose ``default`` is
        the detector's ``conf`` unless given.

        Raises:
            ConfigError: per-class thresholds naming a class this model lacks (with its classes).
        """
        from autolabel.detectors.thresholds import ClassThresholds

        return (
            ClassThresholds.load(self.conf if conf is None else conf, default=self.conf).check(self.class_names, self.name),
            self.iou if iou is None else iou,
            self.max_det if max_det is None else max_det,
        )

    def prepare(self, image: np.ndarray) -> Any:
        """Per-image preprocessing, safe to run in worker threads. Default: none."""
        return image

    def prepare_item(self, item: Any) -> tuple[Any, Any]:
        """Load an :class:`~autolabel.sources.Item` and :meth:`prepare` it (worker
        threads); returns the prepared input and the item's ``ImageInfo``. Backends that
        can take a smaller decode of a large image override this."""
        arr, info = item.load()
        return self.prepare(arr), info

    @abstractmethod
    def predict_prepared(self, batch: Sequence[Any], conf: float, iou: float, max_det: int) -> list[Detections]:
        """Run on a batch of :meth:`prepare` outputs; boxes in original-image pixels."""

    def predict(
        self,
        images: Sequence[np.ndarray],
        conf: float | Mapping[str, Any] | ClassThresholds | None = None,
        iou: float | None = None,
        max_det: int | None = None,
    ) -> list[Detections]:
        """Detect objects in RGB ``uint8`` (H, W, 3) images, ``batch_size`` at a time
        (``conf`` a threshold or per class, see :meth:`settings`)."""
        thresholds, iou, max_det = self.settings(conf, iou, max_det)

        def run(i: int) -> list[Detections]:
            found = self.predict_prepared([self.prepare(im) for im in images[i: i + self.batch_size]],
                                          thresholds.floor, iou, max_det)
            return [thresholds.apply(d) for d in found] if thresholds.per_class else found

        starts = range(0, len(images), self.batch_size)
        streams = getattr(self, "auto_streams", 1) if self.thread_safe else 1
        if streams > 1 and len(starts) > 1:  # sessions sized for concurrent batches (engine/tuning.py)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(streams) as pool:
                return [d for part in pool.map(run, starts) for d in part]
        return [d for i in starts for d in run(i)]

    def __call__(self, image: np.ndarray | str | os.PathLike, **kw: Any) -> Detections:
        """Detect in one image (array or path); the result carries the image identity."""
        from autolabel.sources import Item

        if isinstance(image, np.ndarray):
            return self.predict([image], **kw)[0]
        arr, info = Item(os.path.basename(str(image)), str(image)).load()
        return self.predict([arr], **kw)[0].with_image(info)

    def __repr__(self) -> str:
        size = "x".join(map(str, self.input_size)) if self.input_size else "native"
        return (
            f"{type(self).__name__}({self.model_id}, {len(self.class_names)} classes, input {size}, "
            f"batch {self.batch_size}, conf {self.conf}, iou {self.iou})"
        )
