"""Image scorers: the learned one (scikit-learn gradient boosting on :func:`image_features`)
and the selectable baseline (the product model of :mod:`autolabel.routing.policy`).

:class:`TreeEnsemble` holds a fitted ``sklearn.ensemble.GradientBoostingClassifier`` or
``GradientBoostingRegressor`` as plain arrays, so that a policy stays one JSON file (no
pickle: loading a policy never runs code). Its prediction walks the same trees with the
same ``x <= threshold`` rule on float32 inputs as scikit-learn and equals its
``decision_function`` / ``predict`` (tested); scikit-learn does the fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Mapping, Sequence

import numpy as np

__all__ = ["TreeEnsemble", "fit_tree_ensemble", "constant_ensemble", "cross_fitted", "GBM_PARAMS"]

#: Gradient-boosting settings: small trees and shrinkage, for a few hundred images.
GBM_PARAMS: dict[str, Any] = {
    "n_estimators": 150, "max_depth": 2, "learning_rate": 0.05, "subsample": 0.8, "min_samples_leaf": 8,
}


@dataclass(frozen=True)
class TreeEnsemble:
    """A boosted tree ensemble as arrays: ``init + learning_rate * sum(tree values)``.

    ``kind``: ``classifier`` (the sum is a log-odds; :meth:`__call__` returns the
    probability of the positive class) or ``regressor`` (the sum is the prediction).
    ``trees``: per tree ``(feature, threshold, left, right, value)`` node arrays
    (``left == -1``: a leaf)."""

    kind: Literal["classifier", "regressor"]
    features: tuple[str, ...]
    init: float
    learning_rate: float
    trees: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The ensemble's raw sum for (n, len(features)) inputs; (n,) float64."""
        x = np.asarray(x, np.float32).astype(np.float64)  # scikit-learn's trees compare float32 inputs
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected (n, {len(self.features)}) features, got shape {x.shape}")
        out = np.full(len(x), self.init)
        rows = np.arange(len(x))
        for feat, thr, left, right, value in self.trees:
            node = np.zeros(len(x), np.int64)
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = x[rows, np.maximum(feat[node], 0)] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            out += self.learning_rate * value[node]
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probability of the positive class (classifier) or the prediction (regressor); (n,)."""
        r = self.raw(x)
        from scipy.special import expit  # loaded on first use, not on import autolabel

        return expit(r) if self.kind == "classifier" else r

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "features": list(self.features), "init": self.init, "learning_rate": self.learning_rate,
            "trees": [[a.tolist() for a in t] for t in self.trees],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TreeEnsemble:
        trees = tuple((np.asarray(f, np.int64), np.asarray(thr, np.float64), np.asarray(left, np.int64),
                       np.asarray(right, np.int64), np.asarray(value, np.float64)) for f, thr, left, right, value in d["trees"])
        if d["kind"] not in ("classifier", "regressor"):
            raise ValueError(f"tree ensemble kind must be classifier or regressor, got {d['kind']!r}")
        kind: Literal["classifier", "regressor"] = "classifier" if d["kind"] == "classifier" else "regressor"
        return cls(kind, tuple(d["features"]), float(d["init"]), float(d["learning_rate"]), trees)


def fit_tree_ensemble(
    x: np.ndarray, y: np.ndarray, kind: Literal["classifier", "regressor"], features: Sequence[str],
    seed: int = 0, **params: Any,
) -> TreeEnsemble:
    """Fit scikit-learn gradient boosting and keep it as a :class:`TreeEnsemble`.

    Args:
        x: (n, len(features)) inputs. y: (n,) 0/1 targets (classifier) or values (regressor).
        kind: ``classifier`` or ``regressor``. features: the column names.
        seed: ``random_state`` of the subsampling. params: override :data:`GBM_PARAMS`.

    Returns:
        The ensemble.

    Raises:
        ValueError: fewer than 2 images, or a classifier target with one class only.
    """
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor  # a core dependency

    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) < 2:
        raise ValueError(f"the image scorer needs at least 2 fit images, got {len(x)}")
    if kind == "classifier" and len(np.unique(y)) < 2:
        raise ValueError("every fit image has the same outcome (all need an edit, or none): nothing to learn")
    p = {**GBM_PARAMS, **params, "min_samples_leaf": min(GBM_PARAMS["min_samples_leaf"], max(1, len(x) // 10))}
    est = (GradientBoostingClassifier if kind == "classifier" else GradientBoostingRegressor)(random_state=seed, **p)
    est.fit(x, y)
    trees = tuple(
        (t.tree_.feature.astype(np.int64), t.tree_.threshold.astype(np.float64), t.tree_.children_left.astype(np.int64),
         t.tree_.children_right.astype(np.int64), t.tree_.value[:, 0, 0].astype(np.float64))
        for t in est.estimators_[:, 0]
    )
    first = x[:1]
    raw = est.decision_function(first) if kind == "classifier" else est.predict(first)
    contrib = sum(t.predict(np.asarray(first, np.float32))[0] for t in est.estimators_[:, 0])
    init = float(np.ravel(raw)[0] - est.learning_rate * contrib)
    return TreeEnsemble(kind, tuple(features), init, float(est.learning_rate), trees)


def constant_ensemble(kind: Literal["classifier", "regressor"], features: Sequence[str], value: float) -> TreeEnsemble:
    """An ensemble without trees that predicts ``value`` for every image (a classifier's
    probability is clipped to [1e-6, 1 - 1e-6]); for fit images that all share one outcome."""
    if kind == "classifier":
        from scipy.special import logit

        value = float(logit(min(max(float(value), 1e-6), 1 - 1e-6)))
    return TreeEnsemble(kind, tuple(features), float(value), 1.0, ())


def cross_fitted(
    x: np.ndarray, y: np.ndarray, kind: Literal["classifier", "regressor"], features: Sequence[str],
    folds: int = 5, seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions of :func:`fit_tree_ensemble` (each image scored by a model
    not fitted on it), ``folds`` random folds; (n,). scikit-learn's ``cross_val_predict``
    over those folds; a classifier fold whose training images share one outcome predicts it."""
    from sklearn.model_selection import PredefinedSplit, cross_val_predict

    n = len(x)
    fold = np.random.default_rng(seed).permutation(n) % max(2, min(folds, n))
    est = _estimator()(kind, tuple(features), seed)
    return np.asarray(cross_val_predict(est, np.asarray(x, np.float64), np.asarray(y), cv=PredefinedSplit(fold)),
                      np.float64)


@lru_cache(maxsize=1)
def _estimator() -> type:
    """:func:`fit_tree_ensemble` as a scikit-learn estimator, for ``cross_val_predict``
    (made on first use: ``import autolabel`` does not load scikit-learn)."""
    from sklearn.base import BaseEstimator

    class TreeEnsembleEstimator(BaseEstimator):
        def __init__(self, kind: Literal["classifier", "regressor"] = "classifier", features: tuple[str, ...] = (),
                     seed: int = 0):
            self.kind, self.features, self.seed = kind, features, seed

        def fit(self, x: np.ndarray, y: np.ndarray) -> Any:
            y = np.asarray(y)
            self.constant_ = float(y[0]) if self.kind == "classifier" and len(np.unique(y)) < 2 else None
            self.model_ = None if self.constant_ is not None else fit_tree_ensemble(x, y, self.kind, self.features,
                                                                                    self.seed)
            return self

        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.full(len(x), self.constant_) if self.model_ is None else self.model_(x)

    return TreeEnsembleEstimator
