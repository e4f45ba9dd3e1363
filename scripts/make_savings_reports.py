"""Regenerate the savings reports in benchmarks/reports/ from the shared models and data.

    python scripts/make_savings_reports.py [--out benchmarks/reports] [--profile extreme-clicking]

* ``coco150-yolov5n``: yolov5n.onnx against yolov5n-320.onnx on coco-val-150;
* ``bccd-val``: yolov8n-bccd.pt on the BCCD val split (the model was trained on train).

Each report is ``<name>.md`` (plots beside it as PNG), ``<name>.html`` (self-contained)
and ``<name>.json``. Machine seconds are measured on the machine that runs this script.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "reports"))
    ap.add_argument("--profile", default="extreme-clicking")
    args = ap.parse_args()

    from autolabel.savings.report import compare

    import json
    import tempfile

    coco, bccd = SHARED / "data" / "coco-val-150", SHARED / "data" / "bccd"
    # bccd has two zero-size boxes, which every reader refuses: a copy without them
    bccd_gt = json.loads((bccd / "instances.json").read_text())
    bccd_gt["annotations"] = [a for a in bccd_gt["annotations"] if a["bbox"][2] > 0 and a["bbox"][3] > 0]
    clean = Path(tempfile.mkdtemp()) / "bccd-instances.json"
    clean.write_text(json.dumps(bccd_gt))
    jobs = {
        "coco150-yolov5n": {"models": ["yolov5n.onnx", "yolov5n-320.onnx"], "images": coco / "images",
                            "ground_truth": coco / "instances.json", "dataset": "coco-val-150"},
        "bccd-val": {"models": ["yolov8n-bccd.pt"], "images": bccd / "JPEGImages",
                     "ground_truth": clean, "split": bccd / "ImageSets" / "Main" / "val.txt",
                     "dataset": "BCCD val"},
    }
    for name, job in jobs.items():
        cmp = compare(profile=args.profile, **job)
        print(f"== {name}")
        print(cmp.summary.to_string(index=False))
        for path in cmp.save(args.out, name):
            print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
