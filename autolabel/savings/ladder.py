"""Which model should we run? A model ladder: accuracy, human time saved, machine time and
money, per model and data set, with the Pareto front of saving against machine seconds
and a one-line recommendation per data set.

Per model: mAP50-95 / mAP50 (pycocotools), the best global pre-label threshold and its
saving with a 95% bootstrap interval (:func:`autolabel.report.savings_report`),
per-class thresholds and what they add out of sample (:func:`autolabel.thresholds.per_class_gain`),
measured CPU seconds per image, machine cost per 1,000 images on a CPU and on a GPU
(:class:`MachinePrices`), and the net money saved under each cost profile asked for.

**Machine cost.** CPU: measured process CPU seconds per image (all threads) x the price
of a core-hour. GPU: no GPU is measured here; the cost assumes
``gpu_images_per_second_640`` images/s for a nano detector at 640x640 (default 400: an
ONNX Runtime / TensorRT fp16 figure for YOLO nano models on a T4-class card at batch 32),
scaled by input area (a 320 model does 4x as many), x the price of a GPU-hour. Int8
dynamic-quantized files run on CPUs only (ONNX Runtime's CUDA provider has no
``ConvInteger``), so their GPU column assumes the fp32 twin of the model.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE
from autolabel.core import Results

__all__ = ["MachinePrices", "ModelRun", "coco_map", "ladder_row", "Ladder", "pareto_front", "run_ladder", "PROFILES",
           "training_cost", "model_card_of"]

PROFILES = (DEFAULT_PROFILE, "annotation-factory")


@dataclass(frozen=True)
class MachinePrices:
    """Prices of machine time (currency of the cost profiles, USD) and the GPU assumption."""

    cpu_hour: float = 0.05  #: one core for one hour (a cloud vCPU-hour)
    gpu_hour: float = 0.60  #: one T4-class GPU for one hour
    gpu_images_per_second_640: float = 400.0  #: assumed nano-detector throughput at 640x640

    def cpu_cost_per_1000(self, cpu_s_per_image: float) -> float:
        return cpu_s_per_image * 1000 / 3600 * self.cpu_hour

    def gpu_seconds_per_image(self, input_size: tuple[int, int] | None) -> float:
        h, w = input_size or (640, 640)
        return 1.0 / (self.gpu_images_per_second_640 * (640 * 640) / (h * w))

    def gpu_cost_per_1000(self, input_size: tuple[int, int] | None) -> float:
        return self.gpu_seconds_per_image(input_size) * 1000 / 3600 * self.gpu_hour


def model_card_of(path: str | os.PathLike, model_id: str) -> dict[str, Any] | None:
    """The ``model_card.json`` beside a model file when it describes this model (``autolabel train``
    writes it; its ``model_id`` or ``onnx_model_id`` equals ``model_id``), else ``None``."""
    from autolabel.io.files import load_json

    card_path = os.path.join(os.path.dirname(os.path.abspath(str(path))), "model_card.json")
    if not os.path.isfile(card_path):
        return None
    card, _ = load_json(card_path)
    return card if isinstance(card, dict) and model_id in (card.get("model_id"), card.get("onnx_model_id")) else None


def _rung_name(spec: Any, det: Any) -> tuple[str, dict[str, Any] | None]:
    """A rung's name and, for a fine-tuned model, its card (then named ``<run folder>-<model>``)."""
    card = model_card_of(spec, det.model_id) if isinstance(spec, (str, os.PathLike)) and os.path.isfile(spec) else None
    return (f"{os.path.basename(os.path.dirname(os.path.abspath(str(spec))))}-{det.name}" if card else det.name), card


def training_cost(card: Mapping[str, Any], prices: MachinePrices) -> tuple[float, float]:
    """``(training wall seconds, their price)`` of a fine-tuned model from its card: CPU runs at the
    core-hour price times the cores the machine had, GPU runs at the GPU-hour price."""
    t = card.get("training", {})
    seconds = float(t.get("total_seconds") or t.get("seconds") or 0.0)
    if str(t.get("device", "cpu")).startswith("cpu"):
        return seconds, seconds / 3600 * prices.cpu_hour * int(t.get("cpu_cores") or 1)
    return seconds, seconds / 3600 * prices.gpu_hour


def coco_map(pred: Results, gt_coco: Mapping[str, Any], iou_type: str = "bbox") -> tuple[float, float]:
    """mAP50-95 and mAP50 of ``pred`` against a COCO ground-truth dict (images paired by
    ``file_name``, classes by name; pycocotools, 100 detections per image); ``iou_type``
    ``"keypoints"``: keypoint OKS AP of a pose model's keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    img_id = {im["file_name"]: im["id"] for im in gt_coco["images"]}
    cat_id = {c["name"]: c["id"] for c in gt_coco["categories"]}
    dets = []
    for d in pred:
        if d.image is None or d.image.file_name not in img_id:
            continue
        kps = d.keypoints.reshape(len(d), -1).tolist() if iou_type == "keypoints" and d.keypoints is not None else None
        for k, (b, s, c) in enumerate(zip(d.xyxy.tolist(), d.scores.tolist(), d.labels)):
            if c in cat_id:
                dets.append({"image_id": img_id[d.image.file_name], "category_id": cat_id[c], "score": s,
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], **({"keypoints": kps[k]} if kps else {})})
    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dict(gt_coco)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


@dataclass(frozen=True)
class ModelRun:
    """A model as the ladder measured it: ``name`` shown, ``cpu_s_per_image`` (process CPU
    seconds) and ``wall_s_per_image`` measured, ``input_size`` (height, width; for the GPU
    assumption) and ``precision`` (e.g. ``"int8 QDQ"``)."""

    name: str
    cpu_s_per_image: float
    wall_s_per_image: float
    input_size: tuple[int, int] | None = None
    precision: str = ""


def ladder_row(
    run: ModelRun,
    pred: Results,
    gt: Results,
    gt_coco: Mapping[str, Any],
    prices: MachinePrices = MachinePrices(),
    profiles: Sequence[str] = PROFILES,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """One model's rung of the ladder on one data set (see the module docs).

    Args:
        run: the model and its measured time (:class:`ModelRun`).
        pred: its predictions at a low threshold (at most the lowest of the sweep).
        gt: the ground truth.
        gt_coco: the same ground truth as a COCO dict (for pycocotools).
        prices: machine prices.
        profiles: cost profiles priced; the first is the headline.
        n_boot: bootstrap resamples.

    Returns:
        A flat dict (one table row); ``class_thresholds`` holds the fitted
        :class:`~autolabel.thresholds.ClassThresholds`.
    """
    from autolabel.savings.report import savings_report
    from autolabel.savings.thresholds import per_class_gain

    m, m50 = coco_map(pred, gt_coco)
    cpu_cost = prices.cpu_cost_per_1000(run.cpu_s_per_image)
    row: dict[str, Any] = {"model": run.name, "precision": run.precision,
                           "input": "x".join(map(str, run.input_size)) if run.input_size else "", "mAP50_95": m,
                           "mAP50": m50}
    for i, prof in enumerate(profiles):
        rep = savings_report(pred, gt, prof, "best", run.cpu_s_per_image * len(gt), run.name,
                             n_boot=n_boot if i == 0 else 0)
        s, k = rep.savings, rep.savings.per_1000_images
        if i == 0:
            row.update(threshold=s.conf, saved_fraction=s.saved_fraction,
                       ci95_low=s.saved_fraction_ci95[0], ci95_high=s.saved_fraction_ci95[1],
                       saved_hours_per_1000=k.saved_hours, saved_hours_ci95_low=k.saved_hours_ci95[0],
                       saved_hours_ci95_high=k.saved_hours_ci95[1])
        row[f"net_{prof}_per_1000"] = k.human_cost_saved - cpu_cost
    gain = per_class_gain(pred, gt, profiles[0])
    if pred.keypoint_spec is not None and gt.keypoint_spec is not None:  # a pose model on keypoint ground truth
        row.update(_keypoint_columns(pred, gt, gt_coco, n_boot))
    row.update(per_class_gain_fraction=gain["gain_fraction"], cpu_s_per_image=run.cpu_s_per_image,
               wall_s_per_image=run.wall_s_per_image, cpu_cost_per_1000=cpu_cost,
               gpu_cost_per_1000=prices.gpu_cost_per_1000(run.input_size),
               class_thresholds=gain["thresholds"])
    return row


def _keypoint_columns(pred: Results, gt: Results, gt_coco: Mapping[str, Any], n_boot: int) -> dict[str, Any]:
    """Keypoint OKS AP and the keypoint savings (:mod:`autolabel.savings.keypoints`) of a pose model."""
    from autolabel.savings.keypoints import keypoint_savings

    ap, ap50 = coco_map(pred, gt_coco, "keypoints")
    s = keypoint_savings(pred, gt, n_boot=n_boot).summary
    return {"keypoint_AP": ap, "keypoint_AP50": ap50, "keypoint_saved_fraction": s["saved_fraction"],
            "keypoint_ci95_low": s["saved_fraction_ci95"][0], "keypoint_ci95_high": s["saved_fraction_ci95"][1],
            "keypoint_visibility_threshold": s["visibility_threshold"]}


def pareto_front(saving: Sequence[float], cost: Sequence[float]) -> np.ndarray:
    """(N,) bool: points no other point beats on both (more saving for no more cost, or
    the same saving for less)."""
    s, c = np.asarray(saving, float), np.asarray(cost, float)
    better = (s[None, :] >= s[:, None]) & (c[None, :] <= c[:, None]) & ((s[None, :] > s[:, None]) | (c[None, :] < c[:, None]))
    return np.asarray(~better.any(1), dtype=bool)


@dataclass(eq=False)
class Ladder:
    """Rungs (:func:`ladder_row` dicts) of several models on several data sets."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    prices: MachinePrices = MachinePrices()
    profiles: Sequence[str] = PROFILES
    notes: list[str] = field(default_factory=list)

    def add(self, dataset: str, row: Mapping[str, Any]) -> None:
        self.rows.append({"dataset": dataset, **row})

    @property
    def table(self) -> Any:
        """DataFrame, one row per data set and model, Pareto membership in ``pareto``."""
        import pandas as pd

        df = pd.DataFrame([{k: v for k, v in r.items() if k != "class_thresholds"} for r in self.rows])
        if len(df):
            df["pareto"] = False
            for _, idx in df.groupby("dataset").groups.items():
                sub = df.loc[idx]
                df.loc[idx, "pareto"] = pareto_front(sub["saved_hours_per_1000"], sub["cpu_s_per_image"])
        return df

    def best(self, dataset: str) -> dict[str, Any]:
        """The row that saves the most human time on ``dataset``."""
        rows = [r for r in self.rows if r["dataset"] == dataset]
        return max(rows, key=lambda r: r["saved_hours_per_1000"])

    def recommendation(self, dataset: str) -> str:
        """One line: the model with the best net saving under the first profile."""
        rows = [r for r in self.rows if r["dataset"] == dataset]
        key = f"net_{self.profiles[0]}_per_1000"
        r = max(rows, key=lambda r: r[key])
        return (f"{dataset}: run {r['model']} at threshold {r['threshold']:.2f}: saves {r['saved_hours_per_1000']:.1f} h "
                f"per 1,000 images (95% CI {r['saved_hours_ci95_low']:.1f} to {r['saved_hours_ci95_high']:.1f}) for "
                f"USD {r['cpu_cost_per_1000']:.3f} of CPU ({r['cpu_s_per_image']:.2f} CPU s/image) or USD "
                f"{r['gpu_cost_per_1000']:.4f} on a GPU; net USD {r[key]:,.0f} per 1,000 images ({self.profiles[0]})")

    def figure(self) -> Any:
        """matplotlib Figure: saving against CPU seconds per image, one panel per data
        set, the Pareto front joined."""
        from matplotlib.figure import Figure

        df = self.table
        sets = list(dict.fromkeys(df["dataset"]))
        fig = Figure(figsize=(5.0 * len(sets), 4.2), layout="constrained")
        for i, name in enumerate(sets):
            ax = fig.add_subplot(1, len(sets), i + 1)
            sub = df[df["dataset"] == name]
            ax.errorbar(sub["cpu_s_per_image"], sub["saved_hours_per_1000"],
                        yerr=[sub["saved_hours_per_1000"] - sub["saved_hours_ci95_low"],
                              sub["saved_hours_ci95_high"] - sub["saved_hours_per_1000"]], fmt="o", capsize=3)
            front = sub[sub["pareto"]].sort_values("cpu_s_per_image")
            ax.plot(front["cpu_s_per_image"], front["saved_hours_per_1000"], "r--", label="Pareto front")
            for _, r in sub.iterrows():
                ax.annotate(r["model"], (r["cpu_s_per_image"], r["saved_hours_per_1000"]), fontsize=7,
                            textcoords="offset points", xytext=(4, 4))
            ax.set(xscale="log", xlabel="CPU seconds per image (measured)", ylabel="human hours saved / 1,000 images",
                   title=name)
            ax.legend(fontsize="small")
        return fig

    _COLS = ("model", "precision", "input", "mAP50_95", "mAP50", "threshold", "saved_fraction", "ci95_low",
             "ci95_high", "saved_hours_per_1000", "per_class_gain_fraction", "cpu_s_per_image", "cpu_cost_per_1000",
             "gpu_cost_per_1000", "pareto")
    _KP_COLS = ("keypoint_AP", "keypoint_AP50", "keypoint_saved_fraction", "keypoint_ci95_low", "keypoint_ci95_high",
                "keypoint_visibility_threshold")

    def _blocks(self) -> list[tuple[str, Any]]:
        df = self.table
        nets = [f"net_{p}_per_1000" for p in self.profiles]
        b: list[tuple[str, Any]] = [("h1", "Model ladder: which model should we run?")]
        b += [("p", n) for n in self.notes]
        b.append(("h2", "Recommendations"))
        b += [("p", self.recommendation(d)) for d in dict.fromkeys(df["dataset"])]
        b.append(("figure", "pareto"))
        for d in dict.fromkeys(df["dataset"]):
            sub = df[df["dataset"] == d].sort_values("saved_hours_per_1000", ascending=False)
            kp = [c for c in self._KP_COLS if c in sub and sub[c].notna().any()]  # pose models on keypoint data
            trained = [c for c in ("training_s", "training_cost") if c in sub]  # fine-tuned rungs
            b += [("h2", d), ("table", sub[[*self._COLS, *nets, *kp, *trained]])]
        b += [("h2", "Method"), ("p", _METHOD.format(p=self.prices, prof=self.profiles[0]))]
        return b

    def to_markdown(self, figure_file: str | None = None) -> str:
        from autolabel.savings.render import markdown

        return markdown(self._blocks(), {"pareto": figure_file} if figure_file else None, {"pareto": "Pareto front"})

    def to_html(self) -> str:
        from autolabel.savings.render import html_page

        return html_page(self._blocks(), "Model ladder", {"pareto": self.figure()})

    def save(self, out_dir: str | os.PathLike, name: str = "model-ladder") -> list[str]:
        """Write ``<name>.md`` (+ ``<name>-pareto.png``), ``<name>.html`` and
        ``<name>-thresholds-<dataset>-<model>.yaml`` into ``out_dir``; returns the paths."""
        from autolabel.io.files import atomic_write, safe_join
        from autolabel.savings.render import png

        os.makedirs(out_dir, exist_ok=True)
        fig_file = f"{name}-pareto.png"
        with open(safe_join(out_dir, fig_file), "wb") as f:
            f.write(png(self.figure()))
        written = [safe_join(out_dir, fig_file)]
        written.append(atomic_write(safe_join(out_dir, f"{name}.md"), self.to_markdown(fig_file)))
        written.append(atomic_write(safe_join(out_dir, f"{name}.html"), self.to_html()))
        for r in self.rows:
            written.append(r["class_thresholds"].save(safe_join(out_dir, f"{name}-thresholds-{r['dataset']}-{r['model']}.yaml")))
        return written


_METHOD = (
    "mAP: pycocotools on predictions made at conf 0.001. Saving: human seconds of labeling from scratch against "
    "correcting the pre-labels at the model's best threshold of the sweep, cost profile '{prof}' (the 95% interval "
    "is a bootstrap over images; choosing the threshold on the same images makes it slightly optimistic). "
    "per_class_gain_fraction: points of human time that per-class thresholds add over one global threshold, fitted on one "
    "half of the images and measured on the other (autolabel.savings.thresholds). CPU seconds: process CPU time per image "
    "of the batch engine with its default (auto-tuned) settings, sampled on a few dozen images. CPU cost at USD "
    "{p.cpu_hour}/core-hour; GPU cost at USD {p.gpu_hour}/GPU-hour assuming {p.gpu_images_per_second_640:.0f} "
    "images/s at 640x640 (scaled by input area; not measured here). Net: human pay saved minus CPU cost. "
    "Fine-tuned models (a model_card.json beside the file, from autolabel train) add training_s, the wall seconds of "
    "their training run, and training_cost, a one-off: those seconds at the core-hour price times the cores used, or "
    "at the GPU-hour price."
)


def run_ladder(
    models: Sequence[Any],
    images: str | os.PathLike,
    ground_truth: str | os.PathLike,
    dataset: str | None = None,
    split: str | os.PathLike | Sequence[str] | None = None,
    evidence_conf: float = 0.05,
    prices: MachinePrices = MachinePrices(),
    progress: bool = False,
) -> tuple[Ladder, dict[str, Results], dict[str, float]]:
    """Pre-label the ground truth's images with every model (timed: wall and process CPU
    seconds) and put each on the ladder (what ``autolabel compare`` runs).

    Args:
        models: model specs (:func:`autolabel.load_detector`).
        images: the image folder (ground-truth ``file_name`` relative to it).
        ground_truth: a COCO JSON file.
        dataset: name shown (default: the folder's name).
        split: only these images (see :func:`autolabel.report.compare`).
        evidence_conf: the score the models predict down to (at most the lowest threshold of the sweep).
        prices: machine prices.
        progress: progress bars.

    Returns:
        The :class:`Ladder`, the predictions and the wall seconds per model.

    Raises:
        ModelNotFoundError, ValueError: a model that cannot be loaded, before any image is labeled.
    """
    import resource
    import time

    from autolabel.detectors import load_detector
    from autolabel.formats import read_coco
    from autolabel.io.files import load_json
    from autolabel.pipeline import prelabel
    from autolabel.savings.report import _select
    from autolabel.sources import Item, Source

    gt = _select(read_coco(ground_truth), split)
    raw, _ = load_json(ground_truth)
    names = {d.image.file_name for d in gt}
    ids = {im["id"] for im in raw["images"] if im["file_name"] in names}
    gt_coco = {**raw, "images": [im for im in raw["images"] if im["id"] in ids],
               "annotations": [a for a in raw.get("annotations", []) if a["image_id"] in ids]}
    items = [Item(d.image.file_name, os.path.join(str(images), d.image.file_name)) for d in gt]
    dataset = dataset or os.path.basename(os.path.abspath(str(images)))
    ladder = Ladder(prices=prices)
    preds: dict[str, Results] = {}
    seconds: dict[str, float] = {}
    dets = [load_detector(spec) for spec in models]  # every model loads (and passes its check) before any work
    for spec, det in zip(models, dets):
        name, card = _rung_name(spec, det)
        name = name if name not in preds else f"{name}#{len(preds)}"
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        res = prelabel(Source(items, f"{len(items)} images under {images}", len(items)), det, conf=evidence_conf,
                       progress=progress)
        seconds[name] = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        if res.failures:
            f = res.failures[0]
            raise ValueError(f"{name}: {len(res.failures)} images could not be read, e.g. {f.key}: {f.reason}")
        cpu = (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / len(items)
        preds[name] = res
        run = ModelRun(name, cpu, seconds[name] / len(items), det.input_size, getattr(det, "precision", ""))
        row = ladder_row(run, res, gt, gt_coco, prices)
        if card is not None:  # a fine-tuned rung: its one-off training cost beside the per-image costs
            row["training_s"], row["training_cost"] = training_cost(card, prices)
        ladder.add(dataset, row)
    ladder.notes.append(f"Predictions at conf {evidence_conf}; CPU seconds measured over the whole run on this machine.")
    return ladder, preds, seconds
