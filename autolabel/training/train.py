"""Fine-tune a detector on a team's own labels: :func:`train`.

Labels in any format the library reads and their image folder become an Ultralytics YOLO
data set in ``out/data`` with a seeded, per-image held-back validation split
(``out/data/split.json``); Ultralytics' own trainer fine-tunes the base checkpoint
(``out/train``, its ``last.pt`` resumes an interrupted run), within a wall-clock budget
(:mod:`autolabel.training.budget`); the best weights become ``out/model.pt``, their ONNX
export ``out/model.onnx`` (class names in its metadata), and ``out/model_card.json``
records what was trained on what, how, and how well.

Security: the base ``.pt`` is a Python pickle that runs code when loaded. Fine-tune only
bases you trust (the shared and Ultralytics checkpoints, or your own).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from autolabel.training.card import CARD_NAME, TrainResult, counts_by_split, evaluate, write_card
from autolabel.training.data import MIN_IMAGES_PER_CLASS, LabeledData, data_hash

__all__ = ["TrainOptions", "train", "DEFAULT_BASE", "DEFAULT_EPOCHS"]

DEFAULT_BASE = "yolo11n-coco.pt"
DEFAULT_EPOCHS = 30  #: epochs without a budget (the issue's recipe: 30 epochs at 320 px)
#: Ultralytics settings of every run (any may be overridden through ``TrainOptions.hyper``): no plots
#: (they need fonts from the network), images cached in RAM, early stop after 20 flat epochs; the rest
#: is Ultralytics' defaults (tried on face-masks with a 10-minute budget, none of freeze=10, batch 8 or
#: nbs=batch, or one warm-up epoch did better: benchmarks/reports/train-heldout.md)
TRAINER_DEFAULTS: Mapping[str, Any] = {"plots": False, "cache": "ram", "patience": 20, "deterministic": True,
                                       "batch": 16, "close_mosaic": 5, "exist_ok": True}


@dataclass(frozen=True)
class TrainOptions:
    """How to train (every field is also a keyword of :func:`train`).

    Attributes:
        base: the checkpoint to fine-tune: a path or a name the model resolver finds
            (a trusted ``.pt``: it is a pickle).
        budget_minutes: wall-clock minutes for the whole call (training, export,
            evaluation); ``None``: train ``epochs`` epochs.
        imgsz: training and inference input size (pixels, multiple of 32); ``None``:
            chosen from the objects' sizes and the budget (:func:`choose_imgsz`).
        epochs: epochs at most (default :data:`DEFAULT_EPOCHS` without a budget; with a
            budget, as many as fit).
        seed: seeds the validation split and Ultralytics' trainer.
        val_fraction: share of the images held back for validation.
        val_keys: a fixed validation split (image keys of the labels) instead of a draw.
        class_names: the classes to train, in this order (labels naming others are an
            error); default: the labels' classes.
        min_images_per_class: fewest labeled images per class before training starts.
        progress: print what was chosen, and Ultralytics' progress bars.
        resume: continue the interrupted run in ``out`` from its ``last.pt``.
        device: ``"cpu"``, ``"0"`` (a GPU), ...; default: Ultralytics' choice.
        workers: data loader processes.
        hyper: further Ultralytics training arguments (``lr0``, ``freeze``, ``mosaic``, ...).
    """

    base: str = DEFAULT_BASE
    budget_minutes: float | None = None
    imgsz: int | None = None
    epochs: int | None = None
    seed: int = 0
    val_fraction: float = 0.2
    val_keys: Sequence[str] | None = None
    class_names: Sequence[str] | None = None
    min_images_per_class: int = MIN_IMAGES_PER_CLASS
    progress: bool = True
    resume: bool = False
    device: str | None = None
    workers: int = 2
    hyper: Mapping[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if self.budget_minutes is not None and not self.budget_minutes > 0:
            raise ValueError(f"budget_minutes must be > 0, got {self.budget_minutes}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.imgsz is not None and (self.imgsz < 32 or self.imgsz % 32):
            raise ValueError(f"imgsz must be a multiple of 32 (>= 32), got {self.imgsz}")
        if self.min_images_per_class < 1:
            raise ValueError(f"min_images_per_class must be >= 1, got {self.min_images_per_class}")


def _say(opts: TrainOptions, text: str) -> None:
    if opts.progress:
        print(f"autolabel train: {text}", flush=True)


def _prepare(labels: Any, images: str | os.PathLike, out: str, opts: TrainOptions) -> tuple[LabeledData, list[str], str]:
    """Checked labels, the validation keys and the data set's ``data.yaml`` (written, or the resumed run's)."""
    from autolabel.io.files import load_json
    from autolabel.training.data import check_labels, read_labels, split_validation, write_dataset

    where = "labels" if not isinstance(labels, (str, os.PathLike)) else str(labels)
    data = check_labels(read_labels(labels, opts.class_names), images, where, opts.class_names,
                        opts.min_images_per_class)
    keys = [d.image.key for d in data.results.detections]  # type: ignore[union-attr]
    data_dir = os.path.join(out, "data")
    if opts.resume:
        split, _ = load_json(os.path.join(data_dir, "split.json"))
        return data, sorted(split["val"]), os.path.join(data_dir, "data.yaml")
    if opts.val_keys is not None:
        val = sorted(set(map(str, opts.val_keys)))
        unknown = sorted(set(val) - set(keys))
        if unknown or not val or len(val) >= len(keys):
            raise ValueError(f"val_keys: {len(unknown)} not among the labeled images ({unknown[:3]}), or no image "
                             "left to train on" if unknown or val else "val_keys is empty")
    else:
        val = split_validation(keys, opts.val_fraction, opts.seed)
    if os.path.isdir(data_dir):
        shutil.rmtree(data_dir)  # a fresh run: the data set of an earlier run in this folder is replaced
    return data, val, write_dataset(data, val, data_dir)


def train(labels: Any, images: str | os.PathLike, out: str | os.PathLike,
          options: TrainOptions | None = None, **overrides: Any) -> TrainResult:
    """Fine-tune a detector on labeled images; write ``model.pt``, ``model.onnx`` and the card to ``out``.

    Args:
        labels: the labels: ``Results``, or a file or folder in any format the library
            reads (COCO / YOLO / VOC / CVAT / Label Studio, a ``pull`` export).
        images: the image folder (a label's ``file_name`` is relative to it).
        out: the run folder (created); nothing is written outside it.
        options: :class:`TrainOptions`; ``overrides`` replace its fields
            (``train(labels, images, out, budget_minutes=10, imgsz=320)``).

    Returns:
        :class:`TrainResult`: the files, the model id, validation mAP, what training took.

    Raises:
        FileNotFoundError: labels, images or the base model missing (named).
        ValueError: bad settings, unreadable labels, unknown or empty classes, too few
            images per class: all before any training.
    """
    from autolabel.detectors import load_detector
    from autolabel.training.sizing import choose_imgsz

    t0 = time.monotonic()
    opts = replace(options or TrainOptions(), **overrides)
    opts.check()
    out = str(out)
    deadline = t0 + opts.budget_minutes * 60 if opts.budget_minutes is not None else None
    os.makedirs(out, exist_ok=True)
    data, val_keys, data_yaml = _prepare(labels, images, out, opts)
    base = load_detector(opts.base)
    if base.backend != "ultralytics":
        raise ValueError(f"{opts.base}: training needs an Ultralytics .pt checkpoint, got a {base.backend} model")
    n_train = len(data.paths) - len(val_keys)
    gpu = str(opts.device or getattr(base, "device", "cpu")) != "cpu"
    if opts.imgsz is not None:
        imgsz, why = opts.imgsz, "given"
    else:
        choice = choose_imgsz(data.results, n_train, opts.budget_minutes, gpu)
        imgsz, why = choice.imgsz, choice.reason
    _say(opts, f"{n_train} training and {len(val_keys)} held-back validation images, classes {list(data.class_names)}; "
               f"imgsz {imgsz} ({why})")
    fitted = _fit(str(base.model.ckpt_path), data_yaml, out, imgsz, opts, deadline)  # type: ignore[attr-defined]
    result = _finish(out, data, val_keys, fitted, base, (imgsz, why), opts, t0)
    _say(opts, result.summary())
    return result


@dataclass(frozen=True)
class _Fitted:
    """What the trainer left: the best weights, its validation metrics and settings (recorded in
    ``out/train/finished.json``, so that resuming a finished run only exports)."""

    best: str
    metrics: dict[str, float]
    settings: dict[str, Any]
    device: str
    epochs_run: int
    seconds: float


def _fit(base_path: str, data_yaml: str, out: str, imgsz: int, opts: TrainOptions, deadline: float | None) -> _Fitted:
    """Run Ultralytics' trainer (or find the finished run being resumed)."""
    import json

    from ultralytics import YOLO

    from autolabel.detectors.ultralytics import no_autoinstall
    from autolabel.io.files import atomic_write, load_json
    from autolabel.training.budget import Budget

    finished, last = os.path.join(out, "train", "finished.json"), os.path.join(out, "train", "weights", "last.pt")
    if opts.resume and os.path.isfile(finished):
        return _Fitted(**load_json(finished)[0])
    budget = Budget(deadline, opts.epochs)
    t0 = time.monotonic()
    with no_autoinstall():
        if opts.resume:
            if not os.path.isfile(last):
                raise FileNotFoundError(f"{last}: nothing to resume in {out} (no epoch was finished)")
            model = YOLO(last)
            budget.attach(model)
            model.train(resume=True, data=data_yaml, verbose=opts.progress,
                        **({"time": 1.0} if deadline is not None else {}))  # the Budget sets the real limit
        else:
            model = YOLO(base_path)
            budget.attach(model)
            args = {**TRAINER_DEFAULTS, "data": data_yaml, "imgsz": imgsz, "seed": opts.seed,
                    "epochs": opts.epochs or DEFAULT_EPOCHS, "project": os.path.abspath(out), "name": "train",
                    "workers": opts.workers, "verbose": opts.progress, **dict(opts.hyper)}
            if opts.device is not None:
                args["device"] = opts.device
            if deadline is not None:
                args["time"] = 1.0  # turns on Ultralytics' time mode; the Budget sets the real limit at the start
            model.train(**args)
    trainer: Any = model.trainer
    fitted = _Fitted(str(trainer.best if trainer.best.exists() else trainer.last),
                     {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))},
                     {k: _plain(v) for k, v in vars(trainer.args).items()}, str(trainer.device), budget.epochs_run,
                     time.monotonic() - t0)
    atomic_write(finished, json.dumps(asdict(fitted), indent=1))
    return fitted


def _finish(out: str, data: LabeledData, val_keys: list[str], fitted: _Fitted, base: Any, size: tuple[int, str],
            opts: TrainOptions, t0: float) -> TrainResult:
    """Copy the best weights, export ONNX, evaluate on the validation split, write the card."""
    from importlib.metadata import version

    from autolabel.detectors import load_detector
    from autolabel.core import Results
    from autolabel.formats import write_coco
    from autolabel.io.files import load_json, safe_join

    train_s, epochs_run = fitted.seconds, fitted.epochs_run
    pt = safe_join(out, "model.pt")
    shutil.copyfile(fitted.best, pt + ".tmp")
    os.replace(pt + ".tmp", pt)
    onnx = _export(pt, size[0], out)
    val_dir = os.path.join(out, "data", "images", "val")
    split_names = dict(load_json(os.path.join(out, "data", "split.json"))[0]["val"])
    val_results = [d.with_image(replace(d.image, key=split_names[d.image.key], path=None))
                   for d in data.results.detections if d.image and d.image.key in set(val_keys)]
    gt_path = write_coco(Results(val_results, data.class_names), os.path.join(out, "data", "val.json"))[0]
    det_pt, det_onnx = load_detector(pt), load_detector(onnx)
    m, m50 = evaluate(det_pt, val_dir, gt_path)
    stopped = opts.budget_minutes is not None and (opts.epochs is None or epochs_run < opts.epochs)
    result = TrainResult(out, pt, onnx, os.path.join(out, CARD_NAME), det_pt.model_id, det_onnx.model_id,
                         tuple(data.class_names), m50, m, train_s, time.monotonic() - t0, size[0], size[1],
                         epochs_run, stopped, len(val_keys), len(data.paths) - len(val_keys))
    card = {
        "autolabel_version": version("autolabel-vision"), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model_id": result.model_id, "onnx_model_id": result.onnx_model_id, "files": {"pt": "model.pt", "onnx": "model.onnx"},
        "class_names": list(data.class_names),
        "base": {"spec": opts.base, "model_id": base.model_id, "sha256": base.weights_sha256},
        "data": {"hash": data_hash(data), "counts": counts_by_split(data.results, set(val_keys))},
        "validation": {"split_file": "data/split.json", "ground_truth": "data/val.json", "keys": val_keys,
                       "fraction": opts.val_fraction if opts.val_keys is None else None, "seed": opts.seed,
                       "map50": m50, "map50_95": m, "scored_by": "pycocotools on model.pt predictions (conf 0.001)",
                       "ultralytics_metrics": fitted.metrics},
        "training": {"seconds": train_s, "total_seconds": result.total_seconds, "epochs_run": epochs_run,
                     "stopped_by_budget": stopped, "budget_minutes": opts.budget_minutes, "imgsz": size[0],
                     "imgsz_reason": size[1], "device": fitted.device, "cpu_cores": os.cpu_count(),
                     "resumed": opts.resume,
                     "settings": fitted.settings},
    }
    write_card(result.model_card, card)
    return result


def _plain(v: Any) -> Any:
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


def _export(pt: str, imgsz: int, out: str) -> str:
    """ONNX export of ``pt`` (Ultralytics' exporter: class names, stride and imgsz in its metadata)."""
    from ultralytics import YOLO

    from autolabel.detectors.ultralytics import no_autoinstall
    from autolabel.io.files import safe_join

    with no_autoinstall():
        path = YOLO(pt).export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False, verbose=False)
    onnx = safe_join(out, "model.onnx")
    if os.path.abspath(str(path)) != os.path.abspath(onnx):
        os.replace(str(path), onnx)
    return onnx
