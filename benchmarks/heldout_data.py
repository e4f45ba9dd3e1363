"""Build the held-out checks' data for ``autolabel train`` (benchmarks/reports/train-heldout.md).

A single-class set of everyday objects the shared COCO models do not know: face-masks with its
three classes merged into ``face``; and a small-object set: BCCD (blood cells, 3 classes). Each is
split, seeded, into ``train`` (the labeled images) and ``test`` (pre-labeled and scored), written as
``<out>/<name>/{train,test}.json`` (COCO) and ``<out>/<name>/{train,test}/`` (image links).

    python benchmarks/heldout_data.py --out /tmp/heldout
"""

from __future__ import annotations

import argparse
import json
import os
import random

SHARED = os.environ.get("AUTOLABEL_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def _subset(coco: dict, ids: list[int], merge: str | None) -> dict:
    keep = set(ids)
    cats = [{"id": 1, "name": merge}] if merge else coco["categories"]
    anns = [{**a, "category_id": 1} if merge else a for a in coco["annotations"] if a["image_id"] in keep]
    return {"images": [im for im in coco["images"] if im["id"] in keep], "annotations": anns, "categories": cats}


def build(name: str, coco_path: str, image_dir: str, out: str, n_train: int, n_test: int, merge: str | None,
          seed: int) -> None:
    with open(coco_path, encoding="utf-8") as f:
        coco = json.load(f)
    ids = sorted(im["id"] for im in coco["images"])
    random.Random(seed).shuffle(ids)
    parts = {"train": ids[:n_train], "test": ids[n_train:n_train + n_test]}
    for part, chosen in parts.items():
        sub = _subset(coco, chosen, merge)
        folder = os.path.join(out, name, part)
        os.makedirs(folder, exist_ok=True)
        for im in sub["images"]:
            link = os.path.join(folder, im["file_name"])
            if not os.path.exists(link):
                os.symlink(os.path.abspath(os.path.join(image_dir, im["file_name"])), link)
        with open(os.path.join(out, name, f"{part}.json"), "w", encoding="utf-8") as f:
            json.dump(sub, f)
        print(f"{name}/{part}: {len(sub['images'])} images, {len(sub['annotations'])} boxes")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    fm, bccd = os.path.join(SHARED, "data", "face-masks"), os.path.join(SHARED, "data", "bccd")
    build("faces", os.path.join(fm, "instances.json"), os.path.join(fm, "images"), a.out, 50, 200, "face", a.seed)
    build("bccd", os.path.join(bccd, "instances.json"), os.path.join(bccd, "JPEGImages"), a.out, 100, 192, None, a.seed)


if __name__ == "__main__":
    main()
