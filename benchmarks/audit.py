"""Label audit against cleanlab's ObjectLab, on labels with injected errors.

For coco-val-150 and coco-person (yolov5n.onnx predictions) and BCCD val
(yolov8n-bccd.pt), the ground truth is corrupted with fixed seeds (drop 10% of the boxes,
shift 10% to IoU 0.4-0.65, swap the class of 5%, add 5% spurious boxes; see
``autolabel.audit.corrupt_labels``). Ours (``autolabel.audit``, its ranker fitted on
further self-corrupted copies of the corrupted labels, never on the answers) and
ObjectLab (``cleanlab.object_detection.rank.get_label_quality_scores``) score the same
predictions. Measured:

- image level, both: AP of ranking the images that hold injected errors (overall; per
  kind: images holding that kind against images holding none);
- box level, ours: AP / precision@k / recall@k of the suspects finding the injected
  errors (same image, IoU >= 0.5 with the error's box; a loose box's original box), and
  per kind (the suspects of that kind against the errors of that kind). ``box_ap`` is
  over every candidate, recall counted against all injected errors (VOC style; errors
  never flagged count as missed); ``box_ap_either`` also accepts the shifted box of a
  loose error; ``box_ap_csv`` the same over the rows ``suspects.csv`` holds (score >= 0.05);
  ``row_ap_csv`` scikit-learn's AP over those rows (a row is positive when it finds an
  error; errors never flagged do not count).

Then the top suspects on the *original* BCCD and COCO labels are drawn into
``benchmarks/reports/audit/`` for a person to check. Predictions are cached in
``/work/cache`` (``AUTOLABEL_CACHE``). Run: ``python benchmarks/audit.py [--seeds 0 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autolabel.audit import audit, average_precision, corrupt_labels, hits  # noqa: E402
from autolabel.audit.corrupt import KINDS_INJECTED, Injected  # noqa: E402
from autolabel.core import Results  # noqa: E402
from autolabel.matching import align_classes  # noqa: E402

SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
CACHE = Path(os.environ.get("AUTOLABEL_CACHE", "/work/cache"))
REPORT = ROOT / "benchmarks" / "reports"
DATASETS = {  # name: (model, ground truth reader args, image folder, class map)
    "coco-val-150": ("yolov5n.onnx", "coco-val-150/instances.json", "coco-val-150/images", None),
    "coco-person": ("yolov5n.onnx", "coco-person/instances.json", "coco-person/images", "person.yaml"),
    "bccd-val": ("yolov8n-bccd.pt", "bccd", "bccd/JPEGImages", None),
}


def ground_truth(name: str) -> Results:
    from autolabel.formats import read_coco, read_voc

    src = DATA / DATASETS[name][1]
    return read_voc(str(src), split="val") if name == "bccd-val" else read_coco(str(src))


def predictions(name: str, conf: float = 0.001) -> Results:
    """The cached predictions (made and cached when missing)."""
    import autolabel as al
    from autolabel.formats import read_coco, write

    model, src, _, cmap = DATASETS[name]
    path = CACHE / f"{model.rsplit('.', 1)[0]}-{name}-conf{conf:g}.json"
    if not path.is_file():
        os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
        kw = {"split": "val"} if name == "bccd-val" else {}
        r = al.prelabel(str(DATA / src), model, conf=conf, progress=False,
                        class_map=None if cmap is None else str(ROOT / "configs" / "classmaps" / cmap), **kw)
        tmp = CACHE / f".tmp-{os.getpid()}"
        out = write(r, tmp, "coco")[0]
        os.replace(out, path)
        os.rmdir(tmp)
    return read_coco(str(path))


def cleanlab_scores(pred: Results, labels: Results) -> np.ndarray:
    """ObjectLab's per-image label quality (low = likely wrong) on the same predictions."""
    from cleanlab.object_detection.rank import get_label_quality_scores

    pred, labels = align_classes(pred, labels)
    k = len(labels.class_names)
    lab, prd = [], []
    for p, g in zip(pred, labels):
        keep = ~g.crowd
        lab.append({"bboxes": g.xyxy[keep].astype(np.float64), "labels": g.class_ids[keep]})
        per = np.empty(k, dtype=object)
        for c in range(k):
            m = p.class_ids == c
            per[c] = np.concatenate([p.xyxy[m], p.scores[m, None]], 1).astype(np.float32)
        prd.append(per)
    return np.asarray(get_label_quality_scores(lab, prd, verbose=False))


def image_ap(truth: np.ndarray, score: np.ndarray, keep: np.ndarray | None = None) -> float:
    from sklearn.metrics import average_precision_score

    keep = np.ones(len(truth), bool) if keep is None else keep
    return float(average_precision_score(truth[keep], score[keep])) if truth[keep].any() else float("nan")


def _subset(inj: Injected, m: np.ndarray) -> Injected:
    return Injected(inj.image[m], inj.kind[m], inj.xyxy[m], inj.alt[m])


def run_one(name: str, seed: int) -> dict[str, float]:
    from sklearn.metrics import average_precision_score

    gt, pred = ground_truth(name), predictions(name)
    pred, gt = align_classes(pred, gt)
    bad, inj = corrupt_labels(gt, seed)
    t = time.perf_counter()
    a = audit(bad, pred, min_score=0.0)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    cl = cleanlab_scores(pred, bad)
    t_cl = time.perf_counter() - t
    n = len(gt)
    names = [d.image.file_name for d in gt]
    q = a.images.set_index("file_name").loc[names, "quality"].to_numpy()
    has = inj.images_with_errors(n)
    row: dict[str, float] = {"dataset": name, "seed": seed, "errors": len(inj), "images_with_errors": int(has.sum()),
                             "img_ap_ours": image_ap(has, 1 - q), "img_ap_cleanlab": image_ap(has, 1 - cl),
                             "seconds_ours": t_ours, "seconds_cleanlab": t_cl}
    for k in KINDS_INJECTED:
        hk = _subset(inj, inj.kind == k).images_with_errors(n)
        keep = hk | ~has
        row[f"img_ap_ours_{k}"], row[f"img_ap_cleanlab_{k}"] = image_ap(hk, 1 - q, keep), image_ap(hk, 1 - cl, keep)
    s = a.suspects.rename(columns={"x": "x1", "y": "y1"})
    s["x2"], s["y2"] = s["x1"] + s["w"], s["y1"] + s["h"]
    h = hits(s, inj)
    row["box_ap"] = average_precision(h, len(inj))
    row["box_ap_either"] = average_precision(hits(s, inj, either=True), len(inj))
    csv_rows = (s["score"] >= 0.05).to_numpy()  # what suspects.csv holds at the default min_score
    row["box_ap_csv"] = average_precision(h[csv_rows], len(inj))
    row["row_ap_csv"] = float(average_precision_score(h[csv_rows], s["score"][csv_rows])) if h[csv_rows].any() else 0.0
    for k in (50, 100, 200):
        row[f"p@{k}"], row[f"r@{k}"] = float(h[:k].mean()), float(h[:k].sum() / len(inj))
    for k in KINDS_INJECTED:
        sk = s[s["kind"] == k].reset_index(drop=True)
        ik = _subset(inj, inj.kind == k)
        row[f"box_ap_{k}"] = average_precision(hits(sk, ik), len(ik))
    return row


def draw_clean(name: str, k: int) -> list[str]:
    """Audit the original labels; draw the top ``k`` suspects into the report folder
    (with ``top.csv``, their rows); the full audit outputs go to a temporary folder."""
    import shutil
    import tempfile

    gt, pred = ground_truth(name), predictions(name)
    a = audit(gt, pred)
    out = REPORT / "audit" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        pics = [Path(p) for p in a.save(tmp, image_root=DATA / DATASETS[name][2], examples=k) if p.endswith(".png")]
        kept = [str(shutil.copy(p, out / p.name)) for p in pics]
    a.suspects.head(k)[["file_name", "kind", "category", "suggested", "score", "evidence"]].to_csv(out / "top.csv", index=False)
    return kept


def inspection(name: str = "coco-val-150", batches: int = 50, rate: float = 0.12, delta: float = 0.1) -> dict[str, float]:
    """Batches of all ``name`` images with ``rate`` of them failing (one injected error
    each, fresh images every batch): images inspected and batches rejected by the plain
    and the audit-guided plan at pass bar 90%. The ranker is the one an audit of the
    first batch fits (self-corruption), reused for the others."""
    from autolabel.audit import corrupt_images
    from autolabel.audit.ranker import fit_ranker
    from autolabel.inspection import guided_plan, plain_plan, run_plan

    gt, pred = ground_truth(name), predictions(name)
    pred, gt = align_classes(pred, gt)
    rng = np.random.default_rng(2026)
    labeled = np.flatnonzero([(~d.crowd).any() for d in gt])
    n, k = len(gt), int(round(rate * len(gt)))
    plain = plain_plan(n, 0.9, delta)
    names = [d.image.file_name for d in gt]
    rk = None
    out: dict[str, list[float]] = {"plain": [], "guided": [], "plain_rejected": [], "guided_rejected": []}
    for b in range(batches):
        failed = np.zeros(n, bool)
        failed[rng.choice(labeled, k, replace=False)] = True
        bad = corrupt_images(gt, np.flatnonzero(failed), b)
        rk = rk or fit_ranker(pred, bad)
        risk = audit(bad, pred, ranker=rk).images.set_index("file_name").loc[names, "top_score"].to_numpy()
        for kind, plan in (("plain", plain), ("guided", guided_plan(risk, 0.9, delta))):
            o = run_plan(plan, failed, rng)
            out[kind].append(o.inspected)
            out[f"{kind}_rejected"].append(not o.accept)
    return {"batch": n, "failing": k, "plain_n": plain.n, "plain_c": plain.c,
            **{f"mean_{key}": float(np.mean(v)) for key, v in out.items()}}


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--draw", type=int, default=12, help="top suspects drawn on the original labels")
    args = ap.parse_args(argv)
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            rows.append(run_one(name, seed))
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    df = pd.DataFrame(rows)
    mean = df.drop(columns=["seed"]).groupby("dataset", sort=False).mean().reset_index()
    cols_img = ["dataset", "img_ap_ours", "img_ap_cleanlab"] + [f"img_ap_{w}_{k}" for k in KINDS_INJECTED for w in ("ours", "cleanlab")]
    cols_box = ["dataset", "box_ap", "box_ap_either", "box_ap_csv", "row_ap_csv", "p@50", "r@50", "p@100", "r@100", "p@200", "r@200"] + [f"box_ap_{k}" for k in KINDS_INJECTED]
    pd.set_option("display.width", 250)
    print(mean[cols_img].round(3).to_string(index=False))
    print(mean[cols_box].round(3).to_string(index=False))
    insp = inspection() if "coco-val-150" in args.datasets else {}
    print("inspection, 50 batches of coco-val-150 with 12% failing images:", insp)
    drawn = {n: draw_clean(n, args.draw) for n in ("coco-val-150", "bccd-val") if n in args.datasets}
    REPORT.mkdir(parents=True, exist_ok=True)
    df.to_csv(REPORT / "audit_runs.csv", index=False)
    coco = mean[mean.dataset == "coco-val-150"]
    ours, theirs = (float(coco[c].iloc[0]) if len(coco) else float("nan") for c in ("img_ap_ours", "img_ap_cleanlab"))
    print(f"drew {sum(len(v) for v in drawn.values())} suspects under {REPORT / 'audit'}")
    print(f"ours_ap={ours:.3f} cleanlab_ap={theirs:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
