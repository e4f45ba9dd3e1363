"""Label audit against cleanlab's ObjectLab, on labels with injected errors, reported only
on images no setting was chosen on.

Every data set is split once (a seeded permutation of its images, :func:`parts`): a
*choice* part and a *held-back* part (coco-person also keeps 300 images, ``hidden``, for
``benchmarks/audit_cli.py``, the emulated hidden check; nothing here reads them). The
one setting the benchmark chooses, ``clean_score`` of :func:`autolabel.audit.audit`
(second ranker fit or not, and from which score), is chosen by mean box AP on the choice
part; every reported number is the held-back part's, with that setting, over 3
injection seeds (mean and spread). The ranker's design (per-kind logistic regression,
its regularisation, the evidence columns) was chosen during development on the
coco-person choice part only.

Models: coco-person with the two strongest shared models of
``benchmarks/reports/model-ladder.md`` (yolo11n-int8.onnx, yolov8n-int8-qdq.onnx),
coco-val-150 with yolo11n-int8.onnx, BCCD val with yolov8n-bccd.pt; predictions at conf
0.001 (``--floor 0.05``: cut at 0.05, as ``autolabel prelabel --conf 0.05`` writes them).

The ground truth is corrupted with ``autolabel.audit.corrupt_labels`` (drop 10% of the
boxes, shift 10% to IoU 0.4-0.65, swap the class of 5%, add 5% spurious). Ours
(``autolabel.audit``: its ranker fitted on further self-corrupted copies of the
corrupted labels, never on the answers) and ObjectLab
(``cleanlab.object_detection.rank.get_label_quality_scores``) score the same
predictions. Measured: image AP (ranking the images that hold injected errors, overall
and per kind) for both; box AP (:func:`suspects_ap`, the issue's check read literally
over the rows of ``suspects.csv``: a row finds a not yet found error on its image at
IoU >= 0.5 with its box; AP = mean precision at each find over *all* injected errors)
for ours and a plain rule (:func:`plain_rule`).

Then the top suspects on the *original* BCCD and COCO labels are drawn into
``benchmarks/reports/audit/``. Predictions are cached in ``benchmarks/.cache``
(git-ignored; ``AUTOLABEL_CACHE``). Run: ``python benchmarks/audit.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autolabel.audit import SUSPECT_COLUMNS, audit, corrupt_labels  # noqa: E402
from autolabel.audit.corrupt import KINDS_INJECTED, Injected  # noqa: E402
from autolabel.boxes import box_iou  # noqa: E402
from autolabel.core import Results  # noqa: E402
from autolabel.matching import align_classes  # noqa: E402

SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
CACHE = Path(os.environ.get("AUTOLABEL_CACHE", ROOT / "benchmarks" / ".cache"))
REPORT = ROOT / "benchmarks" / "reports"
DATASETS = {  # name: (models, ground truth reader args, image folder, class map)
    "coco-person": (("yolo11n-int8.onnx", "yolov8n-int8-qdq.onnx"), "coco-person/instances.json", "coco-person/images",
                    "person.yaml"),
    "coco-val-150": (("yolo11n-int8.onnx",), "coco-val-150/instances.json", "coco-val-150/images", None),
    "bccd-val": (("yolov8n-bccd.pt",), "bccd", "bccd/JPEGImages", None),
}
SPLIT_SEED = 2026
HIDDEN = {"coco-person": 300}  # images kept for benchmarks/audit_cli.py
CLEAN_GRID = (None, 0.2, 0.35)  # the setting chosen on the choice part


def parts(name: str, n: int) -> dict[str, np.ndarray]:
    """The image positions of each part: ``hidden`` (the emulated hidden check's),
    ``choice`` and ``held`` (half each of the rest), sorted."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    h = HIDDEN.get(name, 0)
    half = h + (n - h) // 2
    return {"hidden": np.sort(perm[:h]), "choice": np.sort(perm[h:half]), "held": np.sort(perm[half:])}


def subset(r: Results, idx: np.ndarray) -> Results:
    """``r`` with only the images at positions ``idx``."""
    return replace(r, detections=[r[int(i)] for i in idx])


def ground_truth(name: str) -> Results:
    from autolabel.formats import read_coco, read_voc

    src = DATA / DATASETS[name][1]
    return read_voc(str(src), split="val", invalid_boxes="drop") if name == "bccd-val" else read_coco(str(src))


def predictions(name: str, model: str | None = None, conf: float = 0.001) -> Results:
    """The cached predictions of ``model`` (default: the data set's first), made and cached
    when missing."""
    import autolabel as al
    from autolabel.formats import read_coco, write

    models, src, _, cmap = DATASETS[name]
    model = model or models[0]
    path = CACHE / f"{model.rsplit('.', 1)[0]}-{name}-conf{conf:g}.json"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
        kw: dict[str, Any] = {"split": "val"} if name == "bccd-val" else {}
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


def suspects_ap(suspects: Any, injected: Injected, file_names: list[str], recall: str = "errors",
                shift: str = "either", hit_iou: float = 0.5, return_found: bool = False) -> Any:
    """The issue's box-level check, read literally: how well the rows of ``suspects.csv``
    rank the injected errors.

    Rows (``file_name, x, y, w, h, score``) by score, highest first (ties in file order);
    a row is a true positive when it has IoU >= ``hit_iou`` with the box of a not yet found
    injected error of its image (each error found once). An error's box: the original box
    of a drop, the added box, the swapped label's box; a shift's ``shift`` =
    ``"original"``, ``"shifted"`` (the label as drawn) or ``"either"``.

    ``recall="errors"``: AP = mean over *all* injected errors of the precision at the
    rank each is found (0 if never). ``recall="rows"``: scikit-learn's AP over the rows
    (recall over the errors the rows find). ``return_found``: also the (rows,) bool hits.
    """
    from sklearn.metrics import average_precision_score

    s = suspects.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    pos = {f: i for i, f in enumerate(file_names)}
    img = s["file_name"].map(pos).to_numpy()
    box = s[["x", "y", "w", "h"]].to_numpy(np.float64).copy()
    box[:, 2:] += box[:, :2]
    target = {"original": [injected.xyxy], "shifted": [injected.alt], "either": [injected.xyxy, injected.alt]}[shift]
    by_img: dict[int, list[int]] = {}
    for n_err, i in enumerate(injected.image):
        by_img.setdefault(int(i), []).append(n_err)
    found, tp = np.zeros(len(injected), bool), np.zeros(len(s), bool)
    for r in range(len(s)):
        errs = np.asarray(by_img.get(int(img[r]), []), np.int64)
        e = errs[~found[errs]]
        if not len(e):
            continue
        u = np.max([box_iou(box[r:r + 1], t[e])[0] for t in target], axis=0)
        k = int(np.argmax(u))
        if u[k] >= hit_iou:
            found[e[k]] = tp[r] = True
    if recall == "rows":
        ap = float(average_precision_score(tp, s["score"].to_numpy())) if tp.any() else 0.0
    elif recall == "errors":
        prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        ap = float(prec[tp].sum() / len(injected)) if len(injected) else float("nan")
    else:
        raise ValueError(f"recall must be 'errors' or 'rows', got {recall!r}")
    return (ap, tp) if return_found else ap


def plain_rule(pred: Results, labels: Results, conf: float = 0.25, evidence_conf: float = 0.001) -> Any:
    """A plain rule-based audit, for scale (rows like ``suspects.csv``): predictions at
    ``conf`` or more that the matcher (``match_sweep``, IoU from 0.3, wrong-class pairs
    allowed) pairs with no label are *missing*, scored by their confidence; a label with
    no prediction (any class, from ``evidence_conf``) at IoU >= 0.5 is *spurious*, scored
    1 - its best IoU with any prediction; a label with a confident other-class
    prediction at IoU >= 0.5 and no confident same-class one there is *wrong class*,
    scored by that confidence; a label whose best confident same-class prediction fits
    it at IoU in [0.3, 0.7) is *loose*, scored 1 - that IoU. Label suspects sit at the
    label's box."""
    import pandas as pd

    from autolabel.matching import DELETE, match_sweep

    pred, labels = align_classes(pred, labels)
    (m,) = match_sweep(pred, labels, [conf], iou_min=0.3)
    names = labels.class_names
    rows = []
    for i, (p, g) in enumerate(zip(pred, labels)):
        fn = g.image.file_name
        for b in m.pred_box[(m.pred_image == i) & (m.pred_edit == DELETE)]:
            rows.append((fn, "missing", *p.xyxy[b], names[p.class_ids[b]], float(p.scores[b])))
        ps = p[p.scores >= evidence_conf]
        u = box_iou(g.xyxy, ps.xyxy)
        same = g.class_ids[:, None] == ps.class_ids[None]
        sure = ps.scores >= conf
        for j in np.flatnonzero(~g.crowd):
            lb, c = g.xyxy[j].astype(np.float64), names[g.class_ids[j]]
            if not (u[j] >= 0.5).any():
                rows.append((fn, "spurious", *lb, c, 1 - float(u[j].max(initial=0.0))))
                continue
            other, mine = ~same[j] & sure & (u[j] >= 0.5), same[j] & sure
            if other.any() and not (mine & (u[j] >= 0.5)).any():
                rows.append((fn, "wrong_class", *lb, c, float(ps.scores[other].max())))
            elif mine.any() and 0.3 <= u[j][mine].max() < 0.7:
                rows.append((fn, "loose", *lb, c, 1 - float(u[j][mine].max())))
    df = pd.DataFrame(rows, columns=["file_name", "kind", "x1", "y1", "x2", "y2", "category", "score"])
    df = df.assign(x=df.x1, y=df.y1, w=df.x2 - df.x1, h=df.y2 - df.y1)
    return df[list(SUSPECT_COLUMNS)].sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _box_metrics(prefix: str, s: Any, inj: Injected, names: list[str]) -> dict[str, float]:
    out = {f"{prefix}box_ap": suspects_ap(s, inj, names), f"{prefix}box_ap_original": suspects_ap(s, inj, names, shift="original"),
           f"{prefix}row_ap": suspects_ap(s, inj, names, recall="rows", shift="original")}
    for k in KINDS_INJECTED:
        out[f"{prefix}box_ap_{k}"] = suspects_ap(s[s["kind"] == k], _subset(inj, inj.kind == k), names)
    return out


class Run(NamedTuple):
    """One benchmark run: data set, model, part, injection seed, the audit's ``clean_score``
    and the prediction floor (predictions below it dropped)."""

    name: str
    model: str
    part: str
    seed: int
    clean_score: float | None = 0.2
    floor: float = 0.001


def _data(r: Run) -> tuple[Results, Results]:
    gt, pred = ground_truth(r.name), predictions(r.name, r.model)
    pred, gt = align_classes(pred, gt)
    idx = parts(r.name, len(gt))[r.part]
    pred = subset(pred, idx)
    return subset(gt, idx), replace(pred, detections=[d[d.scores >= r.floor] for d in pred])


def run_one(r: Run, objectlab: bool = True) -> dict[str, Any]:
    """Corrupt the part's labels with ``r.seed``, audit them, score ``suspects.csv`` (and
    ObjectLab and the plain rule on the same predictions); returns one table row."""
    import tempfile

    import pandas as pd

    gt, pred = _data(r)
    bad, inj = corrupt_labels(gt, r.seed)
    t = time.perf_counter()
    a = audit(bad, pred, clean_score=r.clean_score)  # otherwise the defaults of `autolabel audit`
    t_ours = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        a.save(tmp, examples=0)
        s = pd.read_csv(Path(tmp) / "suspects.csv")  # the file the check reads
    n, names = len(gt), [d.image.file_name for d in gt]
    has = inj.images_with_errors(n)
    q = a.images.set_index("file_name").loc[names, "quality"].to_numpy()
    row: dict[str, Any] = {"dataset": r.name, "model": r.model.rsplit(".", 1)[0], "part": r.part, "seed": r.seed,
                           "clean_score": r.clean_score, "floor": r.floor, "images": n, "errors": len(inj),
                           "images_with_errors": int(has.sum()), "img_ap_ours": image_ap(has, 1 - q), "rows": len(s),
                           "seconds_ours": t_ours}
    row.update(_box_metrics("", s, inj, names))
    _, h = suspects_ap(s, inj, names, return_found=True)
    row["found"] = int(h.sum())
    for k in (50, 100):
        row[f"p@{k}"], row[f"r@{k}"] = float(h[:k].mean()), float(h[:k].sum() / len(inj))
    if objectlab:
        cl = cleanlab_scores(pred, bad)
        plain = plain_rule(pred, bad)
        plain_img = plain.groupby("file_name")["score"].max().reindex(names).fillna(0).to_numpy()
        row.update(img_ap_cleanlab=image_ap(has, 1 - cl), img_ap_plain=image_ap(has, plain_img), plain_rows=len(plain))
        for kind in KINDS_INJECTED:
            hk = _subset(inj, inj.kind == kind).images_with_errors(n)
            keep = hk | ~has
            row[f"img_ap_ours_{kind}"], row[f"img_ap_cleanlab_{kind}"] = image_ap(hk, 1 - q, keep), image_ap(hk, 1 - cl, keep)
        row.update(_box_metrics("plain_", plain, inj, names))
    return row


def choose(name: str, model: str, seeds: list[int], floor: float) -> float | None:
    """The ``clean_score`` of :data:`CLEAN_GRID` with the best mean box AP on the choice part."""
    best = max(CLEAN_GRID, key=lambda c: float(np.mean([
        run_one(Run(name, model, "choice", s, c, floor), objectlab=False)["box_ap"] for s in seeds])))
    print(f"{name} {model}: clean_score {best} chosen on the choice part", flush=True)
    return best


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
    from autolabel.audit.inspection import guided_plan, plain_plan, run_plan

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


def _spread(df: Any, cols: list[str]) -> Any:
    """Mean +- standard deviation over seeds, one row per data set, model and part."""
    g = df.groupby(["dataset", "model", "part", "floor"], sort=False)[cols]
    m, sd = g.mean(), g.std(ddof=0)
    return m.round(3).astype(str) + " +- " + sd.round(3).astype(str)


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="injection seeds of the held-back runs")
    ap.add_argument("--choice-seeds", type=int, nargs="+", default=[10, 11], help="injection seeds of the choice")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--floor", type=float, nargs="+", default=[0.001], help="prediction floors")
    ap.add_argument("--draw", type=int, default=12, help="top suspects drawn on the original labels")
    ap.add_argument("--no-inspection", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for name in args.datasets:
        for model in DATASETS[name][0]:
            for floor in args.floor:
                clean = choose(name, model, args.choice_seeds, floor)
                for seed in args.seeds:
                    rows.append(run_one(Run(name, model, "held", seed, clean, floor)))
                    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    df = pd.DataFrame(rows)
    REPORT.mkdir(parents=True, exist_ok=True)
    df.to_csv(REPORT / "audit_runs.csv", index=False)
    pd.set_option("display.width", 250)
    for cols in (["clean_score", "box_ap", "img_ap_ours", "img_ap_cleanlab", "img_ap_plain", "plain_box_ap"],
                 ["rows", "found", "p@50", "p@100"] + [f"box_ap_{k}" for k in KINDS_INJECTED],
                 [f"img_ap_{w}_{k}" for k in KINDS_INJECTED for w in ("ours", "cleanlab")]):
        print(_spread(df, cols).to_markdown() if cols[0] != "clean_score" else
              pd.concat([df.groupby(["dataset", "model", "part", "floor"], sort=False)["clean_score"].first(),
                         _spread(df, cols[1:])], axis=1).to_markdown())
    by_seed = df.pivot_table(index=["dataset", "model", "floor"], columns="seed", values="box_ap", sort=False).round(3)
    print(by_seed.to_markdown())
    if "coco-val-150" in args.datasets and not args.no_inspection:
        print("inspection, 50 batches of coco-val-150 with 12% failing images:", inspection())
    drawn = {n: draw_clean(n, args.draw) for n in ("coco-val-150", "bccd-val") if n in args.datasets and args.draw}
    print(f"drew {sum(len(v) for v in drawn.values())} suspects under {REPORT / 'audit'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
