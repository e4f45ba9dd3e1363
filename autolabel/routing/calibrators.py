"""Calibrators that turn a box feature into a probability, and the calibration error.

A :class:`ClassCalibrator` maps a box feature (the detector score, or score x agreement) to a
probability, with one isotonic (pool-adjacent-violators) or Platt model per class that has at
least ``min_class_boxes`` calibration boxes and a global model for every other class
(including classes never seen in calibration). :func:`detection_ece` measures how far
confidence is from precision (equal-width confidence bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

__all__ = ["IsotonicCalibrator", "PlattCalibrator", "ClassCalibrator", "detection_ece", "reliability_table"]

Method = Literal["isotonic", "platt"]
_EPS = 1e-6

# -- one-dimensional calibrators ----------------------------------------------------------
@dataclass(frozen=True)
class IsotonicCalibrator:
    """Non-decreasing step map fitted by pool-adjacent-violators; linear between blocks,
    constant beyond the fitted range (as scikit-learn's ``IsotonicRegression``)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    @classmethod
    def fit(cls, x: np.ndarray, target: np.ndarray) -> IsotonicCalibrator:
        x = np.asarray(x, np.float64)
        t = np.asarray(target, np.float64)
        from scipy.optimize import isotonic_regression  # pool adjacent violators

        ux, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
        fit = isotonic_regression(np.bincount(inv, weights=t) / counts, weights=counts.astype(np.float64))
        first, last = fit.blocks[:-1], fit.blocks[1:] - 1
        kx = np.stack([ux[first], ux[last]], 1).reshape(-1)
        ky = np.repeat(fit.x[first], 2)
        keep = np.append(True, kx[1:] != kx[:-1])  # one-point blocks appear twice
        return cls(tuple(kx[keep].tolist()), tuple(ky[keep].tolist()))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(x, np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}


def _logit(p: np.ndarray) -> np.ndarray:
    from scipy.special import logit  # scipy loads on first use, not on import autolabel

    return logit(np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS))


def _expit(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


@dataclass(frozen=True)
class PlattCalibrator:
    """``sigmoid(a * logit(x) + b)``, fitted by logistic regression with Platt's smoothed
    targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)`` (finite even when all labels agree)."""

    a: float
    b: float

    @classmethod
    def fit(cls, x: np.ndarray, target: np.ndarray) -> PlattCalibrator:
        from scipy.optimize import minimize

        z = _logit(x)
        t = np.asarray(target, bool)
        npos, nneg = int(t.sum()), int((~t).sum())
        y = np.where(t, (npos + 1) / (npos + 2), 1 / (nneg + 2))

        def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
            s = ab[0] * z + ab[1]
            # log(1 + e^s) - y*s, stable
            f = np.logaddexp(0, s) - y * s
            g = _expit(s) - y
            return float(f.sum()), np.array([(g * z).sum(), g.sum()])

        res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        return cls(float(res.x[0]), float(res.x[1]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _expit(self.a * _logit(x) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}


Calibrator = IsotonicCalibrator | PlattCalibrator


def _calibrator_from_dict(d: Mapping[str, Any]) -> Calibrator:
    if d.get("method") == "isotonic":
        return IsotonicCalibrator(tuple(d["x"]), tuple(d["y"]))
    if d.get("method") == "platt":
        return PlattCalibrator(float(d["a"]), float(d["b"]))
    raise ValueError(f"unknown calibrator {d.get('method')!r}; expected 'isotonic' or 'platt'")


@dataclass(frozen=True)
class ClassCalibrator:
    """Per-class calibrators with a global fallback.

    ``per_class`` holds a model for each class with at least ``min_class_boxes``
    calibration boxes; every other class (few or no examples, or a class first seen at
    prediction time) uses ``global_``. ``counts`` records the calibration boxes per class.
    """

    global_: Calibrator
    per_class: Mapping[str, Calibrator]
    counts: Mapping[str, int]

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        target: np.ndarray,
        labels: Sequence[str],
        method: Method = "isotonic",
        min_class_boxes: int = 30,
        what: str = "boxes",
    ) -> ClassCalibrator:
        """Fit on feature ``x`` (N,), boolean ``target`` (N,) and class name ``labels`` (N,).

        Raises ``ValueError`` when there is nothing to fit (``what`` names the boxes in
        the message)."""
        x = np.asarray(x, np.float64)
        target = np.asarray(target, bool)
        names_of = np.asarray(labels, dtype=object)
        if not len(x):
            raise ValueError(f"no calibration {what}: cannot fit a calibrator on an empty set")
        fit = IsotonicCalibrator.fit if method == "isotonic" else PlattCalibrator.fit
        names, counts = np.unique(names_of, return_counts=True)
        per = {
            str(n): fit(x[names_of == n], target[names_of == n])
            for n, c in zip(names, counts)
            if c >= min_class_boxes
        }
        return cls(fit(x, target), per, {str(n): int(c) for n, c in zip(names, counts)})

    def __call__(self, x: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        x = np.asarray(x, np.float64)
        names_of = np.asarray(labels, dtype=object)
        out = self.global_(x)
        for name, cal in self.per_class.items():
            m = names_of == name
            if m.any():
                out[m] = cal(x[m])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "global": self.global_.to_dict(),
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ClassCalibrator:
        return cls(
            _calibrator_from_dict(d["global"]),
            {k: _calibrator_from_dict(v) for k, v in d["per_class"].items()},
            dict(d.get("counts", {})),
        )


# -- calibration error -----------------------------------------------------------------------
def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10):
    """Boxes binned by confidence (equal-width bins on [0, 1]): per bin the count, the
    mean confidence and the precision (fraction of boxes correct). A pandas DataFrame."""
    import pandas as pd

    c = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, bool)
    b = np.clip((c * n_bins).astype(int), 0, n_bins - 1)
    n = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(b, weights=c, minlength=n_bins) / n
        prec = np.bincount(b, weights=ok.astype(float), minlength=n_bins) / n
    edges = np.linspace(0, 1, n_bins + 1)
    return pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "n": n, "mean_confidence": conf, "precision": prec})


def detection_ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> float:
    """Detection expected calibration error: ``sum_b n_b / N * |mean confidence_b -
    precision_b|`` over equal-width confidence bins. NaN for no boxes."""
    t = reliability_table(confidence, correct, n_bins)
    t = t[t.n > 0]
    if not len(t):
        return float("nan")
    return float((t.n * (t.mean_confidence - t.precision).abs()).sum() / t.n.sum())
