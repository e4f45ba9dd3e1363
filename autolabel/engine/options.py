"""How a batch job runs: :class:`JobOptions`, validated when made, before any work."""

from __future__ import annotations

import os
from numbers import Real
from typing import Any, Callable, Literal, Mapping, get_args

from pydantic import Field, StrictBool, field_validator, model_validator

from autolabel.config import Options
from autolabel.detectors.thresholds import ClassThresholds
from autolabel.engine.ray_engine import RayOptions
from autolabel.sources import SOURCE_OPTIONS

__all__ = ["ENGINES", "JobOptions"]

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)


class JobOptions(Options):
    """The settings of :func:`~autolabel.engine.run_job` beside its source, output, model
    and format. Made with keywords (``JobOptions(conf=0.3, workers=4)``) or built by
    ``run_job(..., conf=0.3)`` from its keywords; unknown names and bad values are
    refused when it is made.

    Attributes:
        conf: score threshold in [0, 1], or per class (a ``{class: threshold}`` mapping,
            a YAML path or a ``ClassThresholds``; checked against the model's classes at load).
        iou, max_det: NMS IoU in (0, 1] and boxes per image (default: the detector's).
        class_map: a class map (name, YAML path, dict or ``ClassMap``), applied at export.
        engine: ``"local"`` (threads) or ``"ray"`` (a pool of Ray actors, ``ray_options``).
        resume, retry_failed: skip what the log holds; process failed inputs once more.
        workers, streams: decode threads and batches in inference at once (default:
            :mod:`autolabel.detectors.tuning`).
        progress: show a progress bar.
        detector_options, format_options: passed to ``load_detector`` and the writer.
        source_options: passed to :func:`~autolabel.sources.open_source` (``every``, ``split``, ...).
        export: write the export when every input is done (else only the log).
        postprocess: whole-input post-processing at export (:data:`~autolabel.engine.job.Postprocess`,
            e.g. tracking a sequence's boxes), re-run from the log on every export.
        slice: sliced inference of large frames (:func:`autolabel.detectors.slicing.with_slicing`;
            ``None``: automatic, large frames only; default ``False``; local engine only).
    """

    conf: Any = None
    iou: float | None = Field(None, gt=0, le=1)
    max_det: int | None = Field(None, gt=0)
    class_map: Any = None
    engine: Engine = "local"
    resume: StrictBool = True
    retry_failed: StrictBool = False
    workers: int | None = Field(None, gt=0)
    streams: int | None = Field(None, gt=0)
    progress: StrictBool = True
    detector_options: dict[str, Any] = Field(default_factory=dict)
    ray_options: RayOptions | None = None
    format_options: dict[str, Any] = Field(default_factory=dict)
    source_options: dict[str, Any] = Field(default_factory=dict)
    export: StrictBool = True
    postprocess: Callable[[Any], Any] | None = None
    slice: StrictBool | None = False

    @field_validator("conf")
    @classmethod
    def _conf(cls, v: Any) -> Any:
        if isinstance(v, bool) or not (v is None or isinstance(v, (Real, str, os.PathLike, Mapping, ClassThresholds))):
            raise ValueError(f"conf must be a threshold or per-class thresholds, got {type(v).__name__}")
        if isinstance(v, Real) and not 0 <= float(v) <= 1:
            raise ValueError(f"conf must be in [0, 1], got {v}")
        return float(v) if isinstance(v, Real) else v

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_name(cls, v: Any) -> Any:
        if v not in ENGINES:
            raise ValueError(f"unknown engine {v!r}; choose from {', '.join(ENGINES)}")
        return v

    @field_validator("source_options")
    @classmethod
    def _source_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - SOURCE_OPTIONS)
        if unknown:
            raise ValueError(f"unknown source options {unknown}; sources take {sorted(SOURCE_OPTIONS)}")
        return v

    @model_validator(mode="after")
    def _engine(self) -> JobOptions:
        if self.ray_options is not None and self.engine != "ray":
            raise ValueError("ray_options need engine='ray'")
        return self

    @classmethod
    def from_call(cls, options: JobOptions | None, kwargs: Mapping[str, Any], where: str = "run_job()") -> JobOptions:
        """``options`` with a call's keywords on top: option names set options, source
        option names (``every``, ``split``, ...) go to ``source_options``; any other
        keyword is refused by name (:meth:`Options.build`)."""
        fields = {k: v for k, v in kwargs.items() if k not in SOURCE_OPTIONS}
        source = {k: v for k, v in kwargs.items() if k in SOURCE_OPTIONS}
        if source:
            fields["source_options"] = {**(options.source_options if options else {}), **source}
        return cls.build(options, where, **fields)
