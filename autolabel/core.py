"""The one type that flows through every stage: :class:`Detections` of one image.

Boxes are ``xyxy`` float32 in original-image pixels (after EXIF orientation, see
:mod:`autolabel.sources`), scores float32, class ids int64 indexing ``class_names``.
Optional per-box arrays: ``class_probs`` (N, C) when a backend exposes the class
distribution, ``iscrowd`` (N,) for ground truth read from COCO, ``track_id`` (N,) int64
when boxes belong to tracks, ``keypoints`` (N, K, 3) float32 (x, y in original pixels,
visibility score) for pose models, named by ``keypoint_spec`` (:mod:`autolabel.keypoints`).
Anything else per box (agreement, certification flags, audit scores) goes in the open ``data`` mapping of (N, ...) arrays, which is sliced and
concatenated with the named arrays, as supervision's ``Detections.data`` is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np

from autolabel.boxes import box_area
from autolabel.imageinfo import ImageInfo
from autolabel.keypoints import KeypointSpec

__all__ = ["ImageInfo", "Detections", "Failure", "Results"]


_PER_BOX = ("xyxy", "scores", "class_ids", "class_probs", "iscrowd", "track_id", "keypoints")  # named per-box arrays


def _as(a: object, dtype: type, shape_tail: tuple[int, ...]) -> np.ndarray:
    arr: np.ndarray = np.asarray(a, dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    return arr


@dataclass(eq=False)
class Detections:
    """Boxes, scores and labels for one image.

    Indexing (int, slice, boolean mask or index array) returns a new ``Detections``
    with every per-box array sliced the same way and the image identity kept.
    """

    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_names: tuple[str, ...] = ()
    image: ImageInfo | None = None
    class_probs: np.ndarray | None = None
    iscrowd: np.ndarray | None = None
    track_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)
    keypoints: np.ndarray | None = None
    keypoint_spec: KeypointSpec | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as(self.xyxy, np.float32, (4,))
        self.scores = _as(self.scores, np.float32, ())
        self.class_ids = _as(self.class_ids, np.int64, ())
        self.class_names = tuple(self.class_names)
        n = len(self.xyxy)
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {self.xyxy.shape}")
        if self.scores.shape != (n,) or self.class_ids.shape != (n,):
            raise ValueError(
                f"scores {self.scores.shape} and class_ids {self.class_ids.shape} must have shape ({n},)"
            )
        if self.class_probs is not None:
            self.class_probs = _as(self.class_probs, np.float32, (len(self.class_names),))
            if len(self.class_probs) != n:
                raise ValueError(f"class_probs has {len(self.class_probs)} rows for {n} boxes")
        if self.iscrowd is not None:
            self.iscrowd = _as(self.iscrowd, bool, ())
            if self.iscrowd.shape != (n,):
                raise ValueError(f"iscrowd must have shape ({n},)")
        if self.track_id is not None:
            self.track_id = _as(self.track_id, np.int64, ())
            if self.track_id.shape != (n,):
                raise ValueError(f"track_id must have shape ({n},), got {self.track_id.shape}")
        if self.keypoints is not None:
            n_kp = len(self.keypoint_spec) if self.keypoint_spec is not None else 0
            self.keypoints = _as(self.keypoints, np.float32, (n_kp, 3))
            if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
                raise ValueError(f"keypoints must have shape ({n}, K, 3), got {self.keypoints.shape}")
            if self.keypoint_spec is None:
                self.keypoint_spec = KeypointSpec.default(self.keypoints.shape[1])
            if self.keypoints.shape[1] != len(self.keypoint_spec):
                raise ValueError(f"keypoints has {self.keypoints.shape[1]} points, keypoint_spec {len(self.keypoint_spec)}")
        self.data = {str(k): np.asarray(v) for k, v in dict(self.data).items()}
        for k, v in self.data.items():
            if v.ndim == 0 or len(v) != n:
                raise ValueError(f"data[{k!r}] must have {n} rows (one per box), got shape {v.shape}")

    @property
    def info(self) -> ImageInfo:
        """The image these boxes belong to (the ``image`` field, which is optional).

        Raises:
            ValueError: these detections carry no image info.
        """
        if self.image is None:
            raise ValueError("these detections carry no image info (ImageInfo): the image key, size and "
                             "path are needed here")
        return self.image

    # -- construction -------------------------------------------------------------
    @classmethod
    def empty(
        cls, class_names: Sequence[str] = (), image: ImageInfo | None = None, with_probs: bool = False
    ) -> Detections:
        probs = np.zeros((0, len(class_names)), np.float32) if with_probs else None
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), tuple(class_names), image, probs)

    @classmethod
    def from_xywh(cls, xywh: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, **kw: Any) -> Detections:
        """From COCO-style ``[x, y, w, h]`` boxes."""
        b = _as(xywh, np.float32, (4,)).copy()
        b[:, 2:] += b[:, :2]
        return cls(b, scores, class_ids, **kw)

    @staticmethod
    def concat(items: Iterable[Detections]) -> Detections:
        """Concatenate detections of the *same* image (e.g. from several detectors)."""
        items = list(items)
        if not items:
            return Detections.empty()
        first = items[0]
        if any(d.class_names != first.class_names for d in items):
            raise ValueError("cannot concatenate detections with different class_names")
        if any(d.keypoint_spec != first.keypoint_spec for d in items):
            raise ValueError("cannot concatenate detections with different keypoint_spec")

        keys = set(first.data)
        if any(set(d.data) != keys for d in items):
            raise ValueError("cannot concatenate detections whose data keys differ")

        def cat(field: str) -> Any:
            parts = [getattr(d, field) for d in items]
            return None if any(p is None for p in parts) else np.concatenate(parts)

        named = {f: cat(f) for f in _PER_BOX}
        return Detections(
            **named, class_names=first.class_names, image=first.image, keypoint_spec=first.keypoint_spec,
            data={k: np.concatenate([d.data[k] for d in items]) for k in first.data},
        )

    # -- container protocol -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | np.ndarray | Sequence[int]) -> Detections:
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.asarray(index) if not isinstance(index, slice) else index
        named: dict[str, Any] = {f: None if getattr(self, f) is None else getattr(self, f)[idx] for f in _PER_BOX}
        return replace(self, **named, data={k: v[idx] for k, v in self.data.items()})

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return a is None and b is None or a is not None and b is not None and np.array_equal(a, b)

        return (
            self.class_names == other.class_names
            and self.image == other.image
            and self.keypoint_spec == other.keypoint_spec
            and all(same(getattr(self, f), getattr(other, f)) for f in _PER_BOX)
            and self.data.keys() == other.data.keys()
            and all(same(v, other.data[k]) for k, v in self.data.items())
        )

    # -- derived views ----------------------------------------------------------------
    @property
    def xywh(self) -> np.ndarray:
        """COCO-style ``[x, y, w, h]`` boxes."""
        b = self.xyxy.copy()
        b[:, 2:] -= b[:, :2]
        return b

    @property
    def area(self) -> np.ndarray:
        """(N,) float64 box areas in pixels² (see :func:`autolabel.boxes.box_area`)."""
        return box_area(self.xyxy)

    @property
    def crowd(self) -> np.ndarray:
        """Per-box crowd flags (COCO ``iscrowd``); all ``False`` when the boxes carry none."""
        return self.iscrowd if self.iscrowd is not None else np.zeros(len(self), bool)

    @property
    def labels(self) -> list[str]:
        """Class name of every box."""
        return [self.class_names[i] if 0 <= i < len(self.class_names) else str(i) for i in self.class_ids]

    def with_image(self, image: ImageInfo) -> Detections:
        return replace(self, image=image)

    def filter(self, conf: float | None = None, classes: Iterable[str | int] | None = None) -> Detections:
        """Keep boxes with ``score >= conf`` and (optionally) of the given classes (names or ids)."""
        keep = np.ones(len(self), bool)
        if conf is not None:
            keep &= self.scores >= conf
        if classes is not None:
            ids = {self.class_names.index(c) if isinstance(c, str) else int(c) for c in classes}
            keep &= np.isin(self.class_ids, list(ids))
        return self[keep]

    # -- hand-offs (autolabel.interop) -------------------------------------------------------
    def to_supervision(self):
        """A ``supervision.Detections`` with everything kept (see :func:`autolabel.interop.to_supervision`)."""
        from autolabel.interop import to_supervision

        return to_supervision(self)

    @classmethod
    def from_supervision(cls, detections, class_names=None, image=None) -> Detections:
        """From a ``supervision.Detections`` (see :func:`autolabel.interop.from_supervision`)."""
        from autolabel.interop import from_supervision

        return from_supervision(detections, class_names, image)

    # -- notebook niceties --------------------------------------------------------------
    def to_pandas(self):
        """One row per box: image key, class, score, ``x1, y1, x2, y2``, then ``track_id``
        and the 1-D ``data`` arrays when present."""
        import pandas as pd

        columns: dict[str, Any] = {
            "image": [self.image.key if self.image else None] * len(self),
            "class_id": self.class_ids,
            "label": self.labels,
            "score": self.scores,
            "x1": self.xyxy[:, 0],
            "y1": self.xyxy[:, 1],
            "x2": self.xyxy[:, 2],
            "y2": self.xyxy[:, 3],
        }
        if self.track_id is not None:
            columns["track_id"] = self.track_id
        columns.update({k: v for k, v in self.data.items() if v.ndim == 1 and k not in columns})
        return pd.DataFrame(columns)

    def __repr__(self) -> str:
        where = f"{self.image.key!r} {self.image.width}x{self.image.height}" if self.image else "no image"
        if not len(self):
            return f"Detections(0 boxes, {where})"
        counts = np.bincount(self.class_ids, minlength=0)
        top = sorted(((int(c), i) for i, c in enumerate(counts) if c), reverse=True)[:5]
        per = ", ".join(f"{self.class_names[i] if i < len(self.class_names) else i}: {c}" for c, i in top)
        return (
            f"Detections({len(self)} boxes, {where}; {per}; "
            f"scores {self.scores.min():.2f}-{self.scores.max():.2f})"
        )

    def _repr_html_(self) -> str:
        return f"<p><code>{self.__repr__()}</code></p>" + self.to_pandas().head(20).to_html(index=False)

    def plot(self, image: np.ndarray | str | None = None, ax: Any = None, conf: float = 0.0,
             **deprecated: float) -> Any:
        """Draw the boxes scoring at least ``conf`` on the image (array or path; default:
        ``image.path``); returns the axes. (``min_score=`` is the old name of ``conf``.)"""
        from autolabel.viz import plot_detections

        if "min_score" in deprecated:
            warnings.warn("Detections.plot(min_score=) is deprecated; use conf=", DeprecationWarning, stacklevel=2)
            conf = deprecated.pop("min_score")
        if deprecated:
            raise TypeError(f"plot() got unexpected keyword arguments {sorted(deprecated)}")
        return plot_detections(self, image, ax=ax, conf=conf)


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, with the reason."""

    key: str
    reason: str


@dataclass(eq=False)
class Results:
    """Detections for many images from one model, plus the inputs that failed.

    What :func:`autolabel.prelabel` returns and what every reader gives back.
    """

    detections: list[Detections]
    class_names: tuple[str, ...]
    model_id: str = ""
    failures: list[Failure] = field(default_factory=list)
    #: the keypoints' names and skeleton (pose models); default: the first image's
    keypoint_spec: KeypointSpec | None = None

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        if self.keypoint_spec is None:
            self.keypoint_spec = next((d.keypoint_spec for d in self.detections if d.keypoint_spec), None)
        self._by_key: dict[str, int] | None = None
        for d in self.detections:
            if d.class_names != self.class_names and (len(d) or d.class_names):
                where = repr(d.image.key) if d.image else "(no image info)"
                raise ValueError(
                    f"image {where}: its detections name classes {list(d.class_names)[:5]}..., "
                    f"the results {list(self.class_names)[:5]}... (class ids would be written under wrong names)"
                )

    def __len__(self) -> int:
        return len(self.detections)

    def __iter__(self):
        return iter(self.detections)

    def __getitem__(self, key: int | str) -> Detections:
        """By position or by image key."""
        if isinstance(key, str):
            if self._by_key is None:
                self._by_key = {d.image.key: i for i, d in enumerate(self.detections) if d.image}
            return self.detections[self._by_key[key]]
        return self.detections[key]

    @property
    def num_boxes(self) -> int:
        return sum(len(d) for d in self.detections)

    def filter(self, conf: float | None = None, classes: Iterable[str | int] | None = None) -> Results:
        """Same filter as :meth:`Detections.filter`, applied to every image."""
        return replace(self, detections=[d.filter(conf, classes) for d in self.detections])

    def to_pandas(self):
        """One row per box over all images (columns as :meth:`Detections.to_pandas`)."""
        import pandas as pd

        frames = [d.to_pandas() for d in self.detections if len(d)]
        if not frames:
            return Detections.empty(self.class_names).to_pandas()
        return pd.concat(frames, ignore_index=True)

    def save(self, out_dir: str, format: str = "coco", **options: object) -> list[str]:
        """Write in an annotation tool's format; returns the written paths. See :mod:`autolabel.formats`."""
        from autolabel.formats import write

        return write(self, out_dir, format, **options)

    def __repr__(self) -> str:
        fail = f", {len(self.failures)} failed" if self.failures else ""
        return (
            f"Results({len(self)} images, {self.num_boxes} boxes, {len(self.class_names)} classes, "
            f"model={self.model_id or '?'}{fail})"
        )

    def _repr_html_(self) -> str:
        df = self.to_pandas()
        per_class = df.groupby("label").agg(boxes=("score", "size"), mean_score=("score", "mean"))
        return f"<p><code>{self!r}</code></p>" + per_class.to_html()
