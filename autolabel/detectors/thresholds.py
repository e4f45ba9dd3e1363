"""Per-class pre-label thresholds, as a detector applies them.

The detector runs at the lowest threshold of the set and every box is then kept when
``score >= threshold[its class]`` (classes not listed: ``default``). Saved as YAML::

    default: 0.35
    classes: {person: 0.5, car: 0.3}

Fitting them from a savings sweep is :mod:`autolabel.savings.thresholds`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import ConfigError, load_yaml
from autolabel.core import Detections

__all__ = ["ClassThresholds"]


@dataclass
class ClassThresholds:
    """A pre-label threshold per class name; ``default`` for classes not listed.

    ``fit`` holds how they were fitted (per class: boxes, raw optimum, weight), when
    fitted by :func:`fit_class_thresholds`."""

    default: float
    classes: dict[str, float] = field(default_factory=dict)
    fit: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, t in {"default": self.default, **self.classes}.items():
            if not 0 <= float(t) <= 1:
                raise ValueError(f"pre-label threshold of {name!r} must be in [0, 1], got {t}")
        self.default = float(self.default)
        self.classes = {str(k): float(v) for k, v in self.classes.items()}

    @classmethod
    def load(cls, source: float | str | os.PathLike | Mapping[str, Any] | ClassThresholds,
             default: float | None = None) -> ClassThresholds:
        """From one threshold for every class, a YAML file, a mapping ``{"default": t,
        "classes": {...}}`` or a plain ``{class name: threshold}`` mapping (then
        ``default`` applies to the others).

        Raises:
            ValueError: naming the file, for a malformed file or a threshold outside [0, 1].
        """
        if isinstance(source, ClassThresholds):
            return source
        if isinstance(source, (int, float)):  # the one place a global threshold is told from per-class ones
            return cls(float(source))
        where = str(source) if isinstance(source, (str, os.PathLike)) else "conf mapping"
        raw = load_yaml(source) if isinstance(source, (str, os.PathLike)) else dict(source)
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: per-class thresholds must be a mapping, got {type(raw).__name__}")
        if "classes" in raw:
            extra = set(raw) - {"default", "classes", "rule", "fit"}
            if extra or not isinstance(raw["classes"], dict):
                raise ValueError(f"{where}: expected keys default and classes (a mapping), got {sorted(raw)}")
            d = raw.get("default", default)
            classes = raw["classes"]
        else:
            d, classes = raw.pop("default", default), raw
        if d is None:
            raise ValueError(f"{where}: no default threshold for the classes not listed")
        try:
            return cls(float(d), {str(k): float(v) for k, v in classes.items()})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from e

    def check(self, class_names: Sequence[str], model: str = "the model") -> ClassThresholds:
        """Refuse thresholds for classes ``class_names`` lacks (a misspelled name would
        silently fall back to ``default``); returns ``self``.

        Raises:
            ConfigError: naming the unknown classes, the closest known names and ``model``'s classes.
        """
        known = set(class_names)
        unknown = sorted(set(self.classes) - known)
        if not unknown:
            return self
        hints = [f"{close[0]!r} for {u!r}" for u in unknown
                 if (close := difflib.get_close_matches(u, list(class_names), n=1))]
        raise ConfigError(
            f"per-class thresholds name classes {model} does not have: {', '.join(map(repr, unknown))}"
            + (f" (did you mean {'; '.join(hints)}?)" if hints else "")
            + f"; its {len(class_names)} classes: {', '.join(class_names)}")

    @property
    def per_class(self) -> bool:
        """Whether any class has its own threshold (else ``default`` applies to all)."""
        return bool(self.classes)

    def as_conf(self) -> float | dict[str, Any]:
        """As a ``conf`` argument is written to a manifest: the one threshold, or
        ``{"default": t, "classes": {...}}``."""
        return {"default": self.default, "classes": dict(self.classes)} if self.classes else self.default

    @property
    def floor(self) -> float:
        """The lowest threshold: the one the detector runs at."""
        return min([self.default, *self.classes.values()])

    def array(self, class_names: Sequence[str]) -> np.ndarray:
        """(C,) thresholds in ``class_names`` order."""
        return np.array([self.classes.get(n, self.default) for n in class_names], np.float64)

    def apply(self, d: Detections) -> Detections:
        """The boxes of ``d`` whose score reaches their class's threshold."""
        if not len(d):
            return d
        return d[np.flatnonzero(d.scores >= self.array(d.class_names)[d.class_ids])]

    def to_yaml(self) -> str:
        import yaml

        doc: dict[str, Any] = {"default": round(self.default, 4),
                               "classes": {k: round(v, 4) for k, v in sorted(self.classes.items())}}
        return ("# per-class pre-label thresholds (autolabel.savings.thresholds): a box is kept when its score\n"
                "# reaches its class's threshold; classes not listed use default\n" + yaml.safe_dump(doc, sort_keys=False))

    def save(self, path: str | os.PathLike) -> str:
        """Write :meth:`to_yaml` to ``path``; returns it."""
        from autolabel.io.files import atomic_write

        return atomic_write(path, self.to_yaml())

