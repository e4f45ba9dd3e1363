"""Why the audit's box ranking did not carry over to new images: the old ranker (300-round
boosted trees) and the new one (:class:`autolabel.audit.ranker.KindLogit`) side by side,
per model and per coco-person part (``benchmarks/audit.py: parts``; the hidden part is
never read).

For each model, part and injection seed: the part's labels are corrupted (the benchmark's
protocol), the candidates of the corrupted labels are the test set (hits: found injected
errors), three further self-corrupted copies (seeds 101-103) the training set, as
:func:`autolabel.audit.ranker.fit_ranker` makes it (one fit, no cleaning pass, to isolate
the ranker). Printed: the prediction score distribution per model; per ranker the box AP
on the test set (rows from score 0.05, one row per object, as ``suspects.csv``), the AP
on its own training copies (the overfitting gap) and per kind; and, for the new ranker,
the change of held-back box AP when one evidence column is left out.

Run: ``OMP_NUM_THREADS=1 python benchmarks/audit_diagnosis.py`` (predictions cut at
``--floor``, default 0.05 as ``autolabel prelabel --conf 0.05`` writes them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit import Run, _data, suspects_ap  # noqa: E402

from autolabel.audit import corrupt_labels, hits  # noqa: E402
from autolabel.audit.core import _shadowed  # noqa: E402
from autolabel.audit.features import FEATURES, candidates  # noqa: E402
from autolabel.audit.ranker import KindLogit, rule_score  # noqa: E402

Fit = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray, np.ndarray], np.ndarray]]


def boosted(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The previous ranker: scikit-learn's HistGradientBoostingClassifier, its settings."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                                       l2_regularization=1.0, random_state=0).fit(x, y)
    return lambda x, k: m.predict_proba(x)[:, 1]


def kind_logit(x: np.ndarray, y: np.ndarray, k: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return KindLogit().fit(x, y, k).predict


def tables(r: Run) -> dict[str, Any]:
    """Test candidates (with the injected errors) and the three training copies."""
    gt, pred = _data(r)
    bad, inj = corrupt_labels(gt, r.seed)
    test = candidates(pred, bad)
    train = []
    for s in (101, 102, 103):
        b2, i2 = corrupt_labels(bad, s)
        c = candidates(pred, b2)
        train.append((c, hits(c, i2, np.argsort(-rule_score(c), kind="stable"))))
    scores = np.concatenate([d.scores for d in pred])
    return {"test": test[test.kind != "ok"], "inj": inj, "names": [d.image.file_name for d in gt], "train": train,
            "scores": scores}


def box_ap(cand: Any, score: np.ndarray, inj: Any, names: list[str]) -> float:
    c = cand.assign(score=score, x=cand.x1, y=cand.y1, w=cand.x2 - cand.x1, h=cand.y2 - cand.y1)
    c = c.sort_values(["score", "image"], ascending=[False, True], kind="stable").reset_index(drop=True)
    keep = (c.score >= 0.05).to_numpy() & ~_shadowed(c, 0.5)
    return suspects_ap(c[keep], inj, names)


def evaluate(t: dict[str, Any], fit: Fit, feats: list[str]) -> dict[str, float]:
    x = np.concatenate([c[feats].to_numpy(np.float64) for c, _ in t["train"]])
    y = np.concatenate([h for _, h in t["train"]])
    k = np.concatenate([c.kind.to_numpy() for c, _ in t["train"]])
    m = fit(x, y, k)
    from sklearn.metrics import average_precision_score

    test = t["test"]
    s = m(test[feats].to_numpy(np.float64), test.kind.to_numpy())
    out = {"box_ap": box_ap(test, s, t["inj"], t["names"]), "train_ap": float(average_precision_score(y, m(x, k)))}
    for kind in ("missing", "loose", "spurious"):
        sel = (test.kind == kind).to_numpy()
        out[f"score_{kind}"] = float(np.median(s[sel])) if sel.any() else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["yolov5n.onnx", "yolo11n-int8.onnx", "yolov8n-int8-qdq.onnx"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--floor", type=float, default=0.05)
    ap.add_argument("--ablate", action="store_true", help="leave-one-feature-out for the new ranker")
    args = ap.parse_args(argv)
    rows, dist, abl = [], [], []
    for model in args.models:
        for part in ("choice", "held"):
            for seed in args.seeds:
                t = tables(Run("coco-person", model, part, seed, floor=args.floor))
                q = np.quantile(t["scores"], [0.5, 0.75, 0.9, 0.99])
                dist.append({"model": model, "part": part, "seed": seed, "predictions": len(t["scores"]),
                             "p50": q[0], "p75": q[1], "p90": q[2], "p99": q[3], **t["test"].kind.value_counts().to_dict()})
                for name, fit in (("boosted (old)", boosted), ("per-kind logit (new)", kind_logit)):
                    rows.append({"model": model, "part": part, "seed": seed, "ranker": name,
                                 **evaluate(t, fit, list(FEATURES))})
                    print(rows[-1], flush=True)
                if args.ablate:
                    base = rows[-1]["box_ap"]
                    for f in FEATURES:
                        feats = [g for g in FEATURES if g != f]
                        abl.append({"model": model, "part": part, "feature": f,
                                    "delta": evaluate(t, kind_logit, feats)["box_ap"] - base})
    pd.set_option("display.width", 250)
    print(pd.DataFrame(dist).groupby(["model", "part"], sort=False).mean(numeric_only=True).round(3).to_markdown())
    df = pd.DataFrame(rows)
    print(df.groupby(["model", "ranker", "part"], sort=False).mean(numeric_only=True).drop(columns="seed").round(3).to_markdown())
    if abl:
        a = pd.DataFrame(abl).pivot_table(index="feature", columns=["model", "part"], values="delta").round(3)
        print("box AP change when the feature is left out (positive: the feature hurts)")
        print(a.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
