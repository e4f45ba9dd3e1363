"""Every configuration file is validated here, in one place (pydantic models).

YAML files live under ``configs/``: ``models/`` (:class:`ModelConfig`), ``classmaps/``
(:class:`ClassMapConfig`), ``cost/`` (cost profiles) and ``routing/`` (routing policies).
A bare name (``"extreme-clicking"``) is looked up in the packaged ``configs/<kind>/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ConfigError", "ModelConfig", "ClassMapConfig", "load_yaml", "config_path"]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
T = TypeVar("T", bound="StrictModel")


class ConfigError(ValueError):
    """A configuration file that is missing or invalid; the message names the file."""


def config_path(kind: str, name: str | os.PathLike) -> Path:
    """A path as given, or a bare name resolved to ``configs/<kind>/<name>.yaml``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        return p
    for base in (CONFIG_DIR, Path(__file__).resolve().parent / "configs"):
        cand = base / kind / f"{name}.yaml"
        if cand.is_file():
            return cand
    known = sorted(q.stem for q in (CONFIG_DIR / kind).glob("*.yaml")) if (CONFIG_DIR / kind).is_dir() else []
    raise ConfigError(f"no {kind} config named {name!r}; known: {', '.join(known) or 'none'}")


def load_yaml(path: str | os.PathLike) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def load(cls: type[T], source: str | os.PathLike | dict[str, Any] | T, kind: str = "") -> T:
        """From a model instance, a dict, a YAML path, or a bare name under ``configs/<kind>/``."""
        if isinstance(source, cls):
            return source
        where = "<dict>"
        if not isinstance(source, dict):
            path = config_path(kind, source) if kind else Path(source)
            where, source = str(path), load_yaml(path)
        try:
            return cls.model_validate(source)
        except ValidationError as e:
            raise ConfigError(f"{where}: invalid {cls.__name__}:\n{e}") from None


class ModelConfig(StrictModel):
    """A detector and its defaults (``configs/models/*.yaml``)."""

    model: str = Field(description="path (relative to the YAML file) or resolvable name")
    class_names: list[str] | None = None
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.6, ge=0, le=1)
    max_det: int = Field(300, gt=0)
    batch_size: int = Field(8, gt=0)
    device: str | None = None
    weights: str | None = Field(None, description="state dict for torchvision architectures")
    description: str = ""
    license: str = ""
    source: str = ""

    @classmethod
    def load(cls, source: Any, kind: str = "models") -> ModelConfig:  # type: ignore[override]
        return super().load(source, kind)

    def resolved_model(self, base: Path) -> str:
        p = base / self.model
        return str(p) if p.exists() else self.model

    def detector_options(self) -> dict[str, Any]:
        opts = self.model_dump(include={"class_names", "conf", "iou", "max_det", "batch_size", "device", "weights"})
        return {k: v for k, v in opts.items() if v is not None}


class ClassMapConfig(StrictModel):
    """Model classes -> project label set (``configs/classmaps/*.yaml``).

    ``mapping`` sends a model class to a project class (rename, or merge when several
    go to one) or to ``null`` (drop). Classes not listed are kept under their own name
    when ``keep_unmapped`` is true, dropped otherwise. ``labels`` fixes the order of the
    project label set (default: order of first appearance).
    """

    mapping: dict[str, str | None] = Field(default_factory=dict)
    keep_unmapped: bool = False
    labels: list[str] | None = None

    @classmethod
    def load(cls, source: Any, kind: str = "classmaps") -> ClassMapConfig:  # type: ignore[override]
        return super().load(source, kind)

    @model_validator(mode="after")
    def _labels_cover_targets(self) -> ClassMapConfig:
        if self.labels is not None:
            missing = {t for t in self.mapping.values() if t is not None} - set(self.labels)
            if missing:
                raise ValueError(f"mapping targets not in labels: {sorted(missing)}")
        return self
