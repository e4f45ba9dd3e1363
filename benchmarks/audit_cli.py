"""The label audit's hidden check, emulated with the exact CLI commands on images no
setting was ever chosen on.

coco-person's ``hidden`` part (300 images, ``benchmarks/audit.py: parts``; neither the
benchmark's choice nor development ever read them) is written as a COCO file and an
image folder (links) under ``benchmarks/.cache/audit-cli/``. Then, as a new user would:

    autolabel prelabel IMAGES --model MODEL --class-map person --conf 0.05 --out P
    autolabel audit --labels corrupted.json --predictions P/annotations.json --out A

with ``corrupted.json`` the labels corrupted by ``autolabel.audit.corrupt_labels`` (drop
10%, shift 10% to IoU 0.4-0.65, swap 5% where several classes, add 5% spurious), one per
injection seed. Box AP of ``A/suspects.csv`` against the injected errors
(``benchmarks/audit.py: suspects_ap``; a suspect finds an error on its image at IoU >= 0.5
with the error's box), per seed, with the found errors per kind, and image AP against
ObjectLab on the same predictions.

Run: ``python benchmarks/audit_cli.py [--model yolo11n-int8.onnx] [--seeds 7 8 9]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit import CACHE, DATA, ROOT, SHARED, _subset, cleanlab_scores, ground_truth, image_ap, parts, subset, suspects_ap  # noqa: E402

from autolabel.audit import corrupt_labels  # noqa: E402
from autolabel.audit.corrupt import KINDS_INJECTED  # noqa: E402

OUT = CACHE / "audit-cli"


def _cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOLABEL_MODEL_DIR": str(SHARED / "models")}
    subprocess.run([sys.executable, "-m", "autolabel.cli", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def hidden_set() -> tuple[Any, Path]:
    """The hidden part's ground truth and an image folder of links to its images."""
    gt = ground_truth("coco-person")
    gt = subset(gt, parts("coco-person", len(gt))["hidden"])
    img = OUT / "images"
    img.mkdir(parents=True, exist_ok=True)
    for d in gt:
        link = img / d.image.file_name
        if not link.exists():
            link.symlink_to(DATA / "coco-person" / "images" / d.image.file_name)
    return gt, img


def run(model: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Prelabel once (cached), then corrupt and audit through the CLI per seed."""
    import pandas as pd

    from autolabel.formats import read_coco, write
    from autolabel.matching import align_classes

    gt, img = hidden_set()
    stem = model.rsplit(".", 1)[0]
    pred_dir = OUT / f"P-{stem}"
    if not (pred_dir / "annotations.json").is_file():
        _cli("prelabel", str(img), "--model", model, "--class-map", "person", "--conf", "0.05", "--out", str(pred_dir),
             "--quiet")
    names = [d.image.file_name for d in gt]
    rows = []
    for seed in seeds:
        bad, inj = corrupt_labels(gt, seed)
        lab = Path(write(bad, OUT / f"labels-{seed}", "coco")[0])
        out = OUT / f"A-{stem}-{seed}"
        _cli("audit", "--labels", str(lab), "--predictions", str(pred_dir / "annotations.json"), "--out", str(out))
        s = pd.read_csv(out / "suspects.csv")
        ap, tp = suspects_ap(s, inj, names, return_found=True)
        row: dict[str, Any] = {"model": stem, "seed": seed, "images": len(gt), "box_ap": ap,
                               "found": f"{int(tp.sum())}/{len(inj)}"}
        for k in KINDS_INJECTED:
            m = inj.kind == k
            if m.any():
                _, tk = suspects_ap(s, _subset(inj, m), names, return_found=True)
                row[k] = f"{int(tk.sum())}/{int(m.sum())}"
        q = pd.read_csv(out / "images.csv").set_index("file_name").loc[names, "quality"].to_numpy()
        pred, lb = align_classes(read_coco(str(pred_dir / "annotations.json")), read_coco(str(lab)))
        order = {d.image.file_name: i for i, d in enumerate(pred)}
        pred = subset(pred, np.array([order[f] for f in names]))
        has = inj.images_with_errors(len(gt))
        row.update(img_ap_ours=image_ap(has, 1 - q), img_ap_objectlab=image_ap(has, 1 - cleanlab_scores(pred, lb)))
        rows.append(row)
        print(row, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=["yolo11n-int8.onnx"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    args = ap.parse_args(argv)
    df = pd.DataFrame([r for m in args.model for r in run(m, args.seeds)])
    print(df.round(3).to_markdown(index=False))
    g = df.groupby("model")["box_ap"]
    print(pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0), "min": g.min()}).round(3).to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
