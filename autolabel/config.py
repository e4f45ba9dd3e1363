"""Every configuration file is validated here, in one place (pydantic models).

YAML files live under ``configs/``: ``models/`` (:class:`ModelConfig`), ``classmaps/``
(:class:`ClassMapConfig`), ``cost/`` (cost profiles) and ``routing/`` (routing policies).
A bare name (``"extreme-clicking"``) is looked up in the packaged ``configs/<kind>/``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "IOU_ACCEPT", "IOU_MIN", "DEFAULT_PROFILE", "DEFAULT_THRESHOLDS", "EXIT_OK", "EXIT_SKIPPED", "EXIT_FAILED", "ConfigError", "Options", "ModelConfig", "ClassMapConfig", "load_yaml", "config_path", "config_names", "CostProfile", "RoutingPolicy", "TrackerConfig", "VideoCostProfile",
    "validation_text", "KeypointCostProfile", "VideoRoutingConfig",
]

# -- library-wide defaults: every signature that needs one reads it from here ------------------
IOU_ACCEPT = 0.7  # IoU from which a right-class pre-label needs no edit
IOU_MIN = 0.5  # IoU from which a pre-label counts as finding an object (COCO's AP50 rule)
#: the pre-label score thresholds a savings sweep tries (0.05 .. 0.95)
DEFAULT_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))
DEFAULT_PROFILE = "extreme-clicking"  # cost profile (configs/cost/)
EXIT_OK, EXIT_SKIPPED, EXIT_FAILED = 0, 1, 2  # CLI exit status: completed, completed with skips, failed

# ``autolabel/configs`` links to the repository's ``configs/`` and is a copy of it in an installed wheel
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
T = TypeVar("T", bound="StrictModel")
O = TypeVar("O", bound="Options")


class ConfigError(ValueError):
    """A configuration file that is missing or invalid; the message names the file."""


def config_path(kind: str, name: str | os.PathLike) -> Path:
    """A path as given, or a bare name resolved to ``configs/<kind>/<name>.yaml``."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        return p
    cand = CONFIG_DIR / kind / f"{name}.yaml"
    if cand.is_file():
        return cand
    raise ConfigError(f"no {kind} config named {name!r}; known: {', '.join(config_names(kind)) or 'none'}")


def config_names(kind: str) -> list[str]:
    """Names of the packaged configs of one kind (``configs/<kind>/*.yaml``)."""
    folder = CONFIG_DIR / kind
    return sorted(q.stem for q in folder.glob("*.yaml")) if folder.is_dir() else []


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file. Errors name the file and the line, never the file's text (a
    config path may name any file on the machine, and messages end up in logs)."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (not UTF-8 text)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or type(e).__name__}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a config file") from None


def validation_text(e: ValidationError) -> str:
    """A pydantic error as ``field.path: message`` lines, without the offending values
    (they may be a file's contents)."""
    return "\n".join(
        f"  {'.'.join(str(x) for x in err['loc']) or '(top level)'}: {err['msg']}"
        for err in e.errors(include_input=False, include_url=False)
    )


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    config_kind: ClassVar[str] = ""  # the configs/<kind>/ folder of bare names
    default_name: ClassVar[str | None] = None

    @classmethod
    def load(cls: type[T], source: str | os.PathLike | Mapping[str, Any] | T | None = None) -> T:
        """From a model instance, a dict, a YAML path, or a bare name under ``configs/<kind>/``
        (default: the kind's default config, where it has one)."""
        if source is None:
            if cls.default_name is None:
                raise ConfigError(f"{cls.__name__}.load() needs a config")
            source = cls.default_name
        if isinstance(source, cls):
            return source
        where = "<dict>"
        if isinstance(source, (str, os.PathLike)):
            path = config_path(cls.config_kind, source) if cls.config_kind else Path(source)
            where, source = str(path), load_yaml(path)
            if not isinstance(source, dict):
                raise ConfigError(f"{where}: not a {cls.__name__} config (a mapping of settings), got {type(source).__name__}")
        elif not isinstance(source, Mapping):
            raise ConfigError(f"{cls.__name__}.load() takes a config, a dict or a YAML path, not {type(source).__name__}")
        try:
            return cls.model_validate(source)
        except ValidationError as e:
            raise ConfigError(f"{where}: invalid {cls.__name__}:\n{validation_text(e)}") from None


class Options(StrictModel):
    """Base of option objects (``JobOptions``, ``PushOptions``): every parameter is
    validated when the object is made, as scikit-learn validates an estimator's, so a
    bad value fails, naming the option, before any work."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @classmethod
    def build(cls: type[O], options: O | None = None, where: str = "", **kwargs: Any) -> O:
        """``options`` (default: every default) with ``kwargs`` set on top.

        Raises:
            TypeError: a keyword that is no option (named, with the closest option).
            pydantic.ValidationError: a bad value (a ``ValueError`` naming the option).
        """
        names = list(cls.model_fields)
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            hints = [f"{c[0]!r} for {u!r}" for u in unknown if (c := difflib.get_close_matches(u, names, n=1))]
            raise TypeError(f"{where or cls.__name__} got unknown options: {', '.join(map(repr, unknown))}"
                            + (f" (did you mean {'; '.join(hints)}?)" if hints else "")
                            + f"; {cls.__name__} has: {', '.join(names)}")
        if not kwargs and options is not None:
            return options
        return cls(**{**(dict(options) if options is not None else {}), **kwargs})



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

    config_kind: ClassVar[str] = "models"

    def resolved_model(self, base: Path) -> str:
        p = base / self.model
        return str(p) if p.exists() else self.model

    def detector_options(self, base: Path) -> dict[str, Any]:
        """Backend options; a relative ``weights`` path is taken relative to the YAML file."""
        opts = self.model_dump(include={"class_names", "conf", "iou", "max_det", "batch_size", "device", "weights"})
        if opts["weights"] is not None and (base / opts["weights"]).exists():
            opts["weights"] = str(base / opts["weights"])
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

    config_kind: ClassVar[str] = "classmaps"

    @model_validator(mode="after")
    def _labels_cover_targets(self) -> ClassMapConfig:
        if self.labels is not None:
            missing = {t for t in self.mapping.values() if t is not None} - set(self.labels)
            if missing:
                raise ValueError(f"mapping targets not in labels: {sorted(missing)}")
        return self


class CostProfile(StrictModel):
    """Human seconds per labeling action and what time costs (``configs/cost/*.yaml``).

    Money is either ``hourly_wage`` (money = human hours x wage) or piece rates
    (``price_per_box`` / ``price_per_image`` for labeling from scratch; assisted work
    is paid at the same implied rate per human second). ``verify_s`` must be the
    cheapest box action: a correct pre-label can never cost more than a wrong one.
    """

    draw_s: float = Field(gt=0, description="draw one box from nothing")
    verify_s: float = Field(ge=0, description="look at a correct pre-label and accept it")
    adjust_s: float = Field(ge=0, description="move/resize a pre-label of the right class")
    relabel_s: float = Field(ge=0, description="change the class of a well-placed pre-label")
    delete_s: float = Field(ge=0, description="delete a wrong or duplicate pre-label")
    image_overhead_s: float = Field(0.0, ge=0, description="open and scan one image")
    review_passes: int = Field(0, ge=0, description="quality-review passes over every final box")
    review_s_per_box: float = Field(0.0, ge=0, description="seconds per box per review pass")
    currency: str = "USD"
    hourly_wage: float | None = Field(None, gt=0)
    price_per_box: float | None = Field(None, ge=0)
    price_per_image: float | None = Field(None, ge=0)
    machine_price_per_hour: float = Field(0.0, ge=0, description="hardware price per inference hour")
    description: str = ""

    config_kind: ClassVar[str] = "cost"
    default_name: ClassVar[str | None] = DEFAULT_PROFILE

    @model_validator(mode="after")
    def _consistent(self) -> CostProfile:
        if self.verify_s > min(self.draw_s, self.adjust_s, self.relabel_s):
            raise ValueError("verify_s must not exceed draw_s, adjust_s or relabel_s")
        piece = self.price_per_box is not None or self.price_per_image is not None
        if (self.hourly_wage is None) == (not piece):
            raise ValueError("give exactly one of: hourly_wage, or piece rates (price_per_box / price_per_image)")
        return self


class RoutingPolicy(StrictModel):
    """Parameters of a routing policy before it is fitted (``configs/routing/*.yaml``).

    See :mod:`autolabel.routing`: ``alpha`` is the largest tolerated ``risk`` of the
    auto-accepted images, certified at confidence ``1 - delta``: the share needing any
    edit (``image_any_edit``) or their mean share of wrong or missed boxes (``box_error_rate``).
    """

    risk: Literal["image_any_edit", "box_error_rate"] = Field(
        "image_any_edit", description="what alpha bounds: images needing any edit, or the per-image box error rate"
    )
    alpha: float = Field(0.1, gt=0, lt=1, description="max risk of the auto-accepted images")
    delta: float = Field(0.1, gt=0, lt=1, description="the bound holds with probability 1 - delta")
    method: Literal["isotonic", "platt"] = Field("isotonic", description="box calibration model")
    min_class_boxes: int = Field(30, ge=1, description="fewer calibration boxes: the class uses the global model")
    prelabel_conf: float = Field(0.25, ge=0, le=1, description="boxes below are evidence of misses, not labels")
    evidence_conf: float = Field(0.05, ge=0, le=1, description="boxes below are ignored; predict at this conf")
    band: tuple[float, float] = Field((0.1, 0.5), description="uncertain band [lo, hi) of detector scores")
    iou_accept: float = Field(IOU_ACCEPT, gt=0, le=1, description="IoU from which a right-class box needs no edit")
    iou_min: float = Field(IOU_MIN, gt=0, le=1, description="IoU from which a box counts as found")
    cost_profile: str = Field(DEFAULT_PROFILE, description="configs/cost name or YAML path")
    scratch_margin: float = Field(1.0, gt=0, description="scratch when expected fix s > margin x scratch s")
    holdout: float = Field(0.0, ge=0, lt=1, description="share of calibration images kept for the bound only")
    scorer: Literal["product", "learned"] = Field(
        "product", description="image score: product of calibrated box probabilities, or gradient boosting on image features"
    )
    test: Literal["ltt_sequence", "bonferroni", "fixed_sequence"] = Field(
        "ltt_sequence", description="threshold test: every distinct score in sequence (holdout 0 allowed), or a grid of "
        "coverage levels chosen on the fit images and tested on the holdout by Bonferroni or as a fixed sequence",
    )
    bound: Literal["auto", "clopper_pearson", "hoeffding_bentkus", "wsr"] = Field(
        "auto", description="auto: Clopper-Pearson for image_any_edit; Hoeffding-Bentkus (ltt_sequence) or "
        "Waudby-Smith-Ramdas betting (grid tests) for box_error_rate",
    )
    coverage_grid: tuple[float, ...] = Field(
        (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5), description="coverage levels of the grid tests"
    )
    min_gt_area: float = Field(0.0, ge=0, description="ground-truth boxes below this area (px²) are don't-care regions")
    box_alpha: float | None = Field(
        None, gt=0, lt=1, description="certify pre-labels whose box precision is >= 1 - box_alpha (None: alpha)"
    )
    seed: int = Field(0, description="seed of the holdout split")
    ece_bins: int = Field(10, ge=2)
    description: str = ""

    config_kind: ClassVar[str] = "routing"
    default_name: ClassVar[str | None] = "default"

    @model_validator(mode="after")
    def _ordered(self) -> RoutingPolicy:
        if not 0 <= self.band[0] < self.band[1] <= 1:
            raise ValueError(f"band must be 0 <= lo < hi <= 1, got {list(self.band)}")
        if self.iou_min > self.iou_accept:
            raise ValueError("iou_min must not exceed iou_accept")
        if self.evidence_conf > self.prelabel_conf:
            raise ValueError("evidence_conf must not exceed prelabel_conf")
        if (self.scorer == "learned" or self.test != "ltt_sequence") and self.holdout <= 0:
            raise ValueError(
                f"scorer={self.scorer!r} with test={self.test!r} needs holdout > 0: the bound must use images the "
                "scorer was not fitted on (e.g. holdout: 0.5)"
            )
        if self.bound == "clopper_pearson" and self.risk != "image_any_edit":
            raise ValueError("the Clopper-Pearson bound needs the 0/1 loss of risk image_any_edit")
        if not self.coverage_grid or not all(0 < c <= 1 for c in self.coverage_grid):
            raise ValueError(f"coverage_grid must hold levels in (0, 1], got {list(self.coverage_grid)}")
        return self


class VideoRoutingConfig(StrictModel):
    """Segment routing of tracked video before it is fitted (``configs/routing/video-*.yaml``);
    see :mod:`autolabel.video.calibrate`."""

    iou: float = Field(0.5, gt=0, le=1, description="a segment holds when every box pairs with one object at this IoU")
    max_error: float = Field(0.1, gt=0, lt=1, description="largest share of accepted segments that may hold an error")
    fit_error: float = Field(0.02, gt=0, lt=1, description="error share the threshold is chosen at (margin below max_error)")
    delta: float = Field(0.1, gt=0, lt=1, description="the unit bound holds with probability 1 - delta")
    max_frames: int = Field(25, ge=1, description="longest segment, in frames")
    regularization: float = Field(0.1, gt=0, description="inverse L2 strength of the logistic model (scikit-learn C)")
    review_breaks: bool = Field(True, description="segments where a track starts or ends inside the sequence go to review")
    min_score: float = Field(0.3, ge=0, le=1, description="segments with a lower box score go to review")
    min_agreement: float = Field(1.0, ge=0, le=1, description="segments with a smaller share of detected frames go to review")
    min_track_frames: int = Field(25, ge=1, description="segments of shorter tracks go to review")
    description: str = ""

    config_kind: ClassVar[str] = "routing"
    default_name: ClassVar[str | None] = "video-factory-pass-90"


class TrackerConfig(StrictModel):
    """A multi-object tracker and its settings (``configs/trackers/*.yaml``); see :mod:`autolabel.video.tracking`.

    ``settings`` go to the constructor of the Roboflow ``trackers`` class named by
    ``tracker`` (checked against its signature when the tracker is built).
    """

    tracker: Literal["bytetrack", "botsort", "ocsort", "sort"] = "bytetrack"
    settings: dict[str, float | int | bool | str] = Field(default_factory=dict)
    detection_conf: float = Field(0.1, ge=0, le=1, description="detector threshold when tracking")
    min_track_length: int = Field(1, ge=1, description="shorter tracks are dropped (frames with a box)")
    min_track_score: float = Field(0.0, ge=0, le=1, description="tracks with a lower mean box score are dropped")
    fill_gaps: int = Field(0, ge=0, description="gaps of up to this many frames are filled by linear interpolation")
    backfill: int = Field(0, ge=0, description="extend new tracks back over up to this many frames")
    description: str = ""

    config_kind: ClassVar[str] = "trackers"
    default_name: ClassVar[str | None] = "bytetrack"


class VideoCostProfile(StrictModel):
    """Human seconds per video labeling action (``configs/cost/video-*.yaml``); see
    :mod:`autolabel.video.savings`. Per-frame labeling is priced by the image profile
    ``image_profile`` (a :class:`CostProfile`)."""

    image_profile: str = Field(DEFAULT_PROFILE, description="configs/cost profile for frame-by-frame labeling")
    keyframe_box_s: float = Field(gt=0, description="draw the box of one keyframe")
    correct_keyframe_s: float = Field(ge=0, description="move/resize a pre-labeled box on one keyframe")
    track_s: float = Field(ge=0, description="start a track (pick its label) and end it")
    verify_track_s: float = Field(ge=0, description="accept a pre-labeled track after watching it")
    merge_s: float = Field(ge=0, description="merge two fragments of one object's track")
    trim_s: float = Field(ge=0, description="cut a pre-labeled track where the object is not there")
    delete_track_s: float = Field(ge=0, description="delete a false track")
    frame_view_s: float = Field(0.0, ge=0, description="scrub past one frame of the video")
    tau: float = Field(0.7, gt=0, le=1, description="IoU every interpolated frame must keep")
    import_keyframes: bool = Field(True, description="pre-label tracks reach the tool as their own keyframes")
    replace_if_cheaper: bool = Field(True, description="a person deletes and redraws a track when that is faster")
    currency: str = "USD"
    hourly_wage: float = Field(gt=0)
    description: str = ""

    config_kind: ClassVar[str] = "cost"
    default_name: ClassVar[str | None] = "video-keyframes"


class KeypointCostProfile(StrictModel):
    """Human seconds per keypoint action (``configs/cost/keypoints*.yaml``); see
    :mod:`autolabel.savings.keypoints`. The person's box is priced by the image profile
    ``box_profile`` (a :class:`CostProfile`). A predicted keypoint is accepted as it is when
    it lies within ``accept_tolerance`` x ``k_i`` x ``s`` of the true point (``k_i = 2 sigma_i``,
    COCO's per-keypoint constant; ``s`` the square root of the person's area)."""

    box_profile: str = Field("annotation-factory", description="configs/cost profile for the person boxes")
    keypoint_s: float = Field(gt=0, description="place one keypoint from nothing, its review included")
    verify_s: float = Field(ge=0, description="look at a correct predicted keypoint and keep it")
    move_s: float = Field(ge=0, description="drag a predicted keypoint to the right spot")
    add_s: float = Field(ge=0, description="place a keypoint the model missed (or did not show)")
    delete_s: float = Field(ge=0, description="remove a keypoint on a point that is not visible or absent")
    accept_tolerance: float = Field(1.0, gt=0, description="accept distance in units of k_i x s")
    description: str = ""

    config_kind: ClassVar[str] = "cost"
    default_name: ClassVar[str | None] = "keypoints"

    @model_validator(mode="after")
    def _consistent(self) -> KeypointCostProfile:
        if self.verify_s > min(self.move_s, self.add_s):
            raise ValueError("verify_s must not exceed move_s or add_s")
        return self
