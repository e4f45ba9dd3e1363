"""The model ladder: every COCO model of ../shared/models on coco-person (person class map)
and coco-val-150, and the BCCD detector (PyTorch checkpoint and its ONNX export) on the
BCCD val split: mAP, best global and per-class thresholds, human time saved with a 95%
CI, hours saved per 1,000 images, CPU seconds per image, machine cost per 1,000 images
on a CPU and a GPU, net money under extreme-clicking and annotation-factory, a Pareto
plot and a one-line recommendation per data set (see :mod:`autolabel.savings.ladder`).

    python benchmarks/model_ladder.py [--cache DIR] [--limit N] [--timing-images 24]
        [--cpu-hour 0.05] [--gpu-hour 0.60] [--gpu-images-per-second 400]

Predictions (conf 0.001) are cached as ``<model>-<dataset>-conf0.001.json`` in
``--cache`` (default ``$AUTOLABEL_PRED_CACHE``, else ``benchmarks/.cache``, git-ignored;
the first run fills it) and reused when their ``model_id`` and images match. Timing is sampled
on ``--timing-images`` images per model with the engine's default settings; on a shared
machine it is noisy. Writes ``benchmarks/reports/model-ladder.{md,html}`` and ends with
``best_person_saved=X best_coco_saved=Y`` (human hours saved per 1,000 images by the
best model on each).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
DATA = SHARED / "data"
MODELS = Path(os.environ["AUTOLABEL_MODEL_DIR"])
PERSON_MAP = ROOT / "configs" / "classmaps" / "person.yaml"


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _datasets(limit: int | None) -> dict[str, dict[str, Any]]:
    """name -> images dir, COCO ground truth (dict), class map, file names."""
    out = {}
    for name, folder in (("coco-person", DATA / "coco-person"), ("coco-val-150", DATA / "coco-val-150")):
        gt = json.loads((folder / "instances.json").read_text())
        out[name] = {"images": folder / "images", "gt": gt, "class_map": PERSON_MAP if name == "coco-person" else None}
    bccd = DATA / "bccd"
    gt = json.loads((bccd / "instances.json").read_text())
    # bccd has two zero-size boxes, which every reader refuses: dropped here, as read_coco(invalid_boxes="drop") would
    gt["annotations"] = [a for a in gt["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
    val = {s + ".jpg" for s in (bccd / "ImageSets/Main/val.txt").read_text().split()}
    out["bccd-val"] = {"images": bccd / "JPEGImages", "gt": _restrict(gt, val), "class_map": None}
    if limit:
        for d in out.values():
            d["gt"] = _restrict(d["gt"], {im["file_name"] for im in sorted(d["gt"]["images"], key=lambda i: i["file_name"])[:limit]})
    return out


def _restrict(gt: dict, names: set[str]) -> dict:
    images = [im for im in gt["images"] if im["file_name"] in names]
    ids = {im["id"] for im in images}
    return {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}


def _paths(ds: dict) -> list[str]:
    return [str(ds["images"] / im["file_name"]) for im in sorted(ds["gt"]["images"], key=lambda i: i["file_name"])]


def _predictions(det: Any, spec: str, name: str, dsname: str, ds: dict, cache: Path) -> Any:
    """Cached or fresh predictions at conf 0.001 (``Results``)."""
    from autolabel.engine import run_job
    from autolabel.formats import read_coco

    want = {im["file_name"] for im in ds["gt"]["images"]}
    path = cache / f"{name}-{dsname}-conf0.001.json"
    if path.is_file():
        res = read_coco(path)
        have = {d.image.file_name for d in res}
        if res.model_id == det.model_id and want <= have:
            return res.__class__([d for d in res if d.image.file_name in want], res.class_names, res.model_id)
    with tempfile.TemporaryDirectory() as tmp:
        files = _paths(ds)
        src = Path(tmp) / "images"
        src.mkdir()
        for f in files:
            (src / os.path.basename(f)).symlink_to(f)
        run_job(str(src), Path(tmp) / "out", spec, "coco", conf=0.001, class_map=ds["class_map"], progress=True)
        if len(want) == len(ds["gt"]["images"]) and not os.environ.get("LADDER_NO_CACHE_WRITE"):
            part = path.with_suffix(f".json.tmp-{os.getpid()}")
            shutil.copy(Path(tmp) / "out" / "annotations.json", part)
            os.replace(part, path)
        return read_coco(Path(tmp) / "out" / "annotations.json")


def _timing(spec: str, images: list[str]) -> tuple[float, float]:
    """(CPU s/image, wall s/image) of the batch job on ``images`` with default settings."""
    from autolabel.detectors import load_detector
    from autolabel.engine import run_job

    det = load_detector(spec)
    with tempfile.TemporaryDirectory() as tmp:
        run_job(images[: det.batch_size], Path(tmp) / "warm", det, export=False, progress=False)  # warm-up
        c0, t0 = _cpu_seconds(), time.perf_counter()
        run_job(images, Path(tmp) / "out", det, export=False, progress=False, conf=0.001)
        return (_cpu_seconds() - c0) / len(images), (time.perf_counter() - t0) / len(images)


def _bccd_onnx(cache: Path) -> Path:
    """yolov8n-bccd.pt exported to ONNX by Ultralytics at 416 (cached)."""
    out = cache / "yolov8n-bccd-416.onnx"
    if out.is_file():
        return out
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        pt = shutil.copy(MODELS / "yolov8n-bccd.pt", Path(tmp) / "yolov8n-bccd.pt")
        f = YOLO(pt).export(format="onnx", imgsz=416, dynamic=True, simplify=False, verbose=False)
        shutil.copy(f, out.with_suffix(".tmp"))
        os.replace(out.with_suffix(".tmp"), out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_cache = os.environ.get("AUTOLABEL_PRED_CACHE") or (ROOT / "benchmarks" / ".cache")
    ap.add_argument("--cache", default=str(default_cache), help="prediction cache directory")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images of each data set (quick run)")
    ap.add_argument("--timing-images", type=int, default=24, help="images timed per model")
    ap.add_argument("--cpu-hour", type=float, default=0.05, help="price of one core-hour (USD)")
    ap.add_argument("--gpu-hour", type=float, default=0.60, help="price of one GPU-hour (USD)")
    ap.add_argument("--gpu-images-per-second", type=float, default=400.0,
                    help="assumed GPU throughput of a nano detector at 640x640 (not measured here)")
    ap.add_argument("--models", nargs="*", default=None, help="COCO model files (default: every one in the models dir)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports"))
    args = ap.parse_args()

    import autolabel as al
    from autolabel.detectors.health import BrokenModelError
    from autolabel.formats import read_coco
    from autolabel.savings.ladder import Ladder, MachinePrices, ModelRun, ladder_row

    t_start = time.perf_counter()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    prices = MachinePrices(args.cpu_hour, args.gpu_hour, args.gpu_images_per_second)
    ladder = Ladder(prices=prices)
    ladder.notes.append(f"Machine: {os.cpu_count()} cores, shared with other work while measured (timings are "
                        f"noisy); timing sampled on {args.timing_images} images per model."
                        + (f" Quick run: first {args.limit} images of each data set." if args.limit else ""))
    datasets = _datasets(args.limit)
    coco_models = args.models or sorted(p.name for p in MODELS.glob("*.onnx") if "bccd" not in p.name)
    jobs = [(m, ["coco-person", "coco-val-150"]) for m in coco_models]
    jobs += [("yolov8n-bccd.pt", ["bccd-val"]), (str(_bccd_onnx(cache)), ["bccd-val"])]
    skipped = [p.name for p in MODELS.glob("*.pt") if "bccd" not in p.name]
    if skipped:
        ladder.notes.append(f"Not run: {', '.join(skipped)} (original YOLOv5 pickles: the ultralytics package refuses "
                            "them; their ONNX export is on the ladder).")
    for spec, sets in jobs:
        try:
            det = al.load_detector(spec)
        except BrokenModelError as e:
            ladder.notes.append(f"Refused at load: {os.path.basename(spec)}: {str(e).split(': ', 1)[-1]}")
            print(f"refused: {e}", file=sys.stderr)
            continue
        name = det.name
        timing_set = datasets[sets[-1]]
        cpu_s, wall_s = _timing(spec, _paths(timing_set)[: args.timing_images])
        for dsname in sets:
            ds = datasets[dsname]
            pred = _predictions(det, spec, name, dsname, ds, cache)
            gt = read_coco(ds["gt"])
            run = ModelRun(name, cpu_s, wall_s, det.input_size, getattr(det, "precision", "fp32 (PyTorch)"))
            row = ladder_row(run, pred, gt, ds["gt"], prices)
            ladder.add(dsname, row)
            print(f"{dsname:13s} {name:28s} mAP {row['mAP50_95']:.3f}  saved {row['saved_fraction']:6.1%} "
                  f"[{row['ci95_low']:.1%}, {row['ci95_high']:.1%}] at {row['threshold']:.2f}  "
                  f"{row['saved_hours_per_1000']:5.1f} h/1000  {cpu_s:.3f} CPU s/img", flush=True)

    df = ladder.table
    cols = ["dataset", "model", "precision", "mAP50_95", "threshold", "saved_fraction", "ci95_low", "ci95_high",
            "saved_hours_per_1000", "per_class_gain_fraction", "cpu_s_per_image", "cpu_cost_per_1000",
            "gpu_cost_per_1000", "net_extreme-clicking_per_1000", "net_annotation-factory_per_1000", "pareto"]
    import pandas as pd

    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(df[cols].to_string(index=False))
    person = [r for r in ladder.rows if r["dataset"] == "coco-person"]
    if person:
        best = ladder.best("coco-person")
        v5 = next((r for r in person if r["model"] == "yolov5n"), None)
        if v5 is not None and best is not v5:
            overlap = best["ci95_low"] <= v5["ci95_high"]
            ladder.notes.append(
                f"coco-person: {best['model']} saves {best['saved_fraction']:.1%} (95% CI {best['ci95_low']:.1%} to "
                f"{best['ci95_high']:.1%}) against yolov5n {v5['saved_fraction']:.1%} ({v5['ci95_low']:.1%} to "
                f"{v5['ci95_high']:.1%}): the intervals {'overlap' if overlap else 'do not overlap'}"
                + (" (each is a bootstrap over the same images, so the models' errors are correlated and the "
                   "difference is better resolved than the overlap suggests)" if overlap else "") + ".")
    for d in dict.fromkeys(df["dataset"]):
        print(ladder.recommendation(d))
    for p in ladder.save(args.out):
        if p.endswith((".md", ".html")):
            print(f"wrote {p}")
    print(f"elapsed {time.perf_counter() - t_start:.0f} s")
    bp = ladder.best("coco-person")["saved_hours_per_1000"] if person else float("nan")
    bc = ladder.best("coco-val-150")["saved_hours_per_1000"]
    print(f"best_person_saved={bp:.2f} best_coco_saved={bc:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
