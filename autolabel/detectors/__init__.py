"""Detector backends behind one interface, and the resolver :func:`load_detector`.

A spec is resolved in this order:

1. a :class:`Detector` instance: returned as is;
2. ``"torchvision:<architecture>"`` (e.g. ``torchvision:fasterrcnn_resnet50_fpn``),
   with ``weights=<state dict file>`` or torchvision's own weights if present locally;
3. an existing file path, by suffix: ``.onnx`` -> ONNX Runtime, ``.pt`` / ``.pth`` ->
   Ultralytics; a ``.yaml`` model config from ``configs/models/`` -> as it says;
4. a bare name (``yolov5n.onnx``, ``yolov5n``) looked up, in order, in
   ``$AUTOLABEL_MODEL_DIR``, the user cache (``$AUTOLABEL_CACHE`` or
   ``~/.cache/autolabel/models``) and the models bundled with the package;
5. an Ultralytics asset name (``yolov8n.pt``, ``yolo11n.pt``, ``rtdetr-l.pt``) that
   Ultralytics itself may download where the network allows.

Security: ``.pt`` checkpoints are Python pickles and can run arbitrary code when
loaded. Load only checkpoints you trust; prefer ONNX, or torchvision state dicts
(loaded with ``weights_only=True``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autolabel.detectors.base import Detector

__all__ = ["Detector", "load_detector", "model_search_dirs", "list_models", "DEFAULT_MODEL", "ModelNotFoundError",
           "shared_model_dirs", "shared_models_hint"]

DEFAULT_MODEL = "yolov5n.onnx"
MODEL_SUFFIXES = (".onnx", ".pt", ".pth", ".yaml", ".yml")


class ModelNotFoundError(FileNotFoundError):
    """No model matched a spec; the message lists every place searched."""


def model_search_dirs() -> list[tuple[str, Path]]:
    """Where bare model names are looked up, in order, as ``(origin, directory)``."""
    dirs = []
    if os.environ.get("AUTOLABEL_MODEL_DIR"):
        dirs.append(("$AUTOLABEL_MODEL_DIR", Path(os.environ["AUTOLABEL_MODEL_DIR"])))
    cache = os.environ.get("AUTOLABEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autolabel"
    )
    dirs.append(("user cache", Path(cache) / "models"))
    dirs.append(("bundled", Path(__file__).resolve().parent.parent / "models"))
    return dirs


def shared_model_dirs() -> list[Path]:
    """Folders of shared model files that exist but are not searched: ``$AUTOLABEL_SHARED/models``
    and ``../shared/models`` beside the working directory or beside this checkout (where
    the README's examples find ``yolov5n-320.onnx``, ``yolo11n-int8.onnx``, ...)."""
    candidates = [Path(os.environ["AUTOLABEL_SHARED"]) / "models"] if os.environ.get("AUTOLABEL_SHARED") else []
    candidates += [Path.cwd().parent / "shared" / "models",
                   Path(__file__).resolve().parent.parent.parent.parent / "shared" / "models"]
    searched = {d.resolve() for _, d in model_search_dirs() if d.is_dir()}
    out: list[Path] = []
    for c in candidates:
        if c.is_dir() and c.resolve() not in searched and c.resolve() not in out:
            out.append(c.resolve())
    return out


def shared_models_hint() -> str:
    """How to point the resolver at the shared models found, or ``""``."""
    return "".join(f"\nshared models in {d} are not searched: export AUTOLABEL_MODEL_DIR={d}"
                   for d in shared_model_dirs())


def list_models() -> list[dict[str, str]]:
    """Every model file the resolver can find by name, with where it comes from."""
    rows, seen = [], set()
    for origin, d in model_search_dirs():
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix in (".onnx", ".pt", ".pth"):
                shadowed = p.name in seen
                seen.add(p.name)
                rows.append({"name": p.name, "origin": origin, "path": str(p), "shadowed": str(shadowed)})
    return rows


def _find(name: str) -> tuple[Path | None, list[str]]:
    looked = []
    candidates = [name] if name.endswith(MODEL_SUFFIXES) else [name + s for s in (".onnx", ".pt")]
    for origin, d in model_search_dirs():
        for c in candidates:
            p = d / c
            looked.append(f"{p} ({origin})")
            if p.is_file():
                return p, looked
    return None, looked


def load_detector(spec: Detector | str | os.PathLike | None = None, **options: Any) -> Detector:
    """Resolve ``spec`` (see module docs) to a ready :class:`Detector`.

    Args:
        spec: a :class:`Detector`, a path, a model name or ``"torchvision:<arch>"``
            (default: :data:`DEFAULT_MODEL`).
        options: go to the backend: ``class_names``, ``device``, ``batch_size``,
            ``conf``, ``iou``, ``max_det``; for torchvision also ``weights`` and
            ``model_kwargs``.

    Returns:
        The loaded detector.

    Raises:
        ModelNotFoundError: nothing matched; the message lists every place searched
            (a failed Ultralytics download is its ``__cause__``).
        ValueError: a file that is not a loadable model.
    """
    if isinstance(spec, Detector):
        return spec
    s = str(spec or DEFAULT_MODEL)
    if s.startswith("torchvision:"):
        from autolabel.detectors.torchvision import TorchvisionDetector

        return TorchvisionDetector(s.split(":", 1)[1], **options)
    path = Path(s).expanduser()
    looked = [f"{path} (path)"]
    if not path.is_file() and os.sep not in s and "/" not in s:
        found, more = _find(s)
        looked += more
        path = found or path
    if path.is_file():
        return _by_suffix(path, options)
    cause: FileNotFoundError | None = None
    if _is_ultralytics_asset(s):
        from autolabel.detectors.ultralytics import UltralyticsDetector

        try:
            return UltralyticsDetector(s, **options)
        except FileNotFoundError as e:  # Ultralytics could not download it; any other error is raised as is
            cause = e
            looked.append(f"Ultralytics download of {s} ({e.__cause__ or e})")
    raise ModelNotFoundError(f"model {s!r} not found; looked in:\n  " + "\n  ".join(looked)
                             + shared_models_hint()) from cause


def _is_ultralytics_asset(name: str) -> bool:
    """An official Ultralytics release file name (which Ultralytics can download)."""
    try:
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
    except ImportError:
        return False
    return name in GITHUB_ASSETS_NAMES


def _by_suffix(path: Path, options: dict[str, Any]) -> Detector:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from autolabel.detectors.onnx import OnnxDetector

        return OnnxDetector(path, **options)
    if suffix in (".pt", ".pth"):
        from autolabel.detectors.ultralytics import UltralyticsDetector

        return UltralyticsDetector(path, **options)
    if suffix in (".yaml", ".yml"):
        from autolabel.config import ModelConfig

        cfg = ModelConfig.load(path)
        return load_detector(cfg.resolved_model(path.parent), **{**cfg.detector_options(path.parent), **options})
    raise ValueError(f"{path}: unknown model format {suffix!r}; expected one of {', '.join(MODEL_SUFFIXES)}")
