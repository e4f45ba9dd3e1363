"""The fitted routing policy file, validated with strict pydantic models before anything
is built from it (as every configuration in :mod:`autolabel.config`): JSON types as
written (``"false"`` is not a bool, ``"high"`` not a number), lengths and index ranges
checked, unknown keys refused. :meth:`~autolabel.routing.policy.FittedPolicy.load` reads
files through :class:`PolicyFile`."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autolabel.config import RoutingPolicy

__all__ = ["POLICY_FORMAT", "PolicyFile", "GuaranteeFile", "TreeEnsembleFile"]

POLICY_FORMAT = "autolabel-routing-policy/2"


class _FileModel(BaseModel):
    """Strict: JSON types as written (``"false"`` is not a bool, ``"high"`` not a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _finite(*values: float) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError("must be finite numbers")


class IsotonicFile(_FileModel):
    method: Literal["isotonic"]
    x: list[float] = Field(min_length=1)
    y: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _step_map(self) -> IsotonicFile:
        _finite(*self.x, *self.y)
        if len(self.x) != len(self.y) or any(b < a for a, b in zip(self.x, self.x[1:])):
            raise ValueError("x and y must have one value each, x non-decreasing")
        if not all(0 <= v <= 1 for v in self.y):
            raise ValueError("y must be probabilities in [0, 1]")
        return self


class PlattFile(_FileModel):
    method: Literal["platt"]
    a: float
    b: float

    @model_validator(mode="after")
    def _finite_ab(self) -> PlattFile:
        _finite(self.a, self.b)
        return self


CalibratorFile = Annotated[IsotonicFile | PlattFile, Field(discriminator="method")]


class ClassCalibratorFile(_FileModel):
    global_: CalibratorFile = Field(alias="global")
    per_class: dict[str, CalibratorFile]
    counts: dict[str, int] = Field(default_factory=dict)


class CalibratorsFile(_FileModel):
    located: ClassCalibratorFile
    correct: ClassCalibratorFile
    exact: ClassCalibratorFile
    found: ClassCalibratorFile | None


class TreeEnsembleFile(_FileModel):
    """Node arrays per tree: ``(feature, threshold, left, right, value)``; ``left == -1``: a leaf."""

    kind: Literal["classifier", "regressor"]
    features: list[str] = Field(min_length=1)
    init: float
    learning_rate: float
    trees: list[tuple[list[int], list[float], list[int], list[int], list[float]]]

    @model_validator(mode="after")
    def _nodes(self) -> TreeEnsembleFile:
        for t, (feat, thr, left, right, value) in enumerate(self.trees):
            n = len(feat)
            if not n or any(len(a) != n for a in (thr, left, right, value)):
                raise ValueError(f"tree {t}: its five node arrays must have the same, non-zero length")
            for i in range(n):
                if not (-1 <= left[i] < n and -1 <= right[i] < n):
                    raise ValueError(f"tree {t} node {i}: child index outside 0..{n - 1}")
                if left[i] >= 0 and not 0 <= feat[i] < len(self.features):
                    raise ValueError(f"tree {t} node {i}: feature index {feat[i]} outside 0..{len(self.features) - 1}")
        return self


class GuaranteeFile(_FileModel):
    """What a policy's auto-accept guarantee rests on, stored to be checked at load."""

    risk: str
    alpha: float
    delta: float
    test: str
    bound: str
    n: int = Field(ge=0, description="images the bound was computed on")
    threshold: float | None
    n_accepted: int | None = Field(None, ge=0)
    loss_sum: float | None = None
    ucb: float | None = Field(None, description="the bound's value at the threshold")


class PolicyFile(_FileModel):
    """A fitted routing policy file, validated before anything is built from it."""

    format: Literal["autolabel-routing-policy/2"]
    model_id: str
    class_names: list[str] = Field(min_length=1)
    config: RoutingPolicy
    use_agreement: bool
    calibrators: CalibratorsFile
    miss: tuple[float, float, float]
    image: PlattFile
    threshold: float | None
    reason: str
    curve: dict[str, list[float | bool | None]]
    summary: dict[str, Any]
    learned: dict[Literal["no_edit", "box_error", "edit_s"], TreeEnsembleFile] = Field(default_factory=dict)
    box_threshold: float | None = Field(None, ge=0, le=1)
    guarantee: GuaranteeFile
    checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
