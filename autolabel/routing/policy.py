"""Fitting a routing policy on labeled calibration images, scoring new images with it, and
saving it as one JSON file (see :mod:`autolabel.routing` for the definitions)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import ValidationError

from autolabel.config import ConfigError, CostProfile, RoutingPolicy, validation_text
from autolabel.core import Results
from autolabel.routing.bounds import BOUNDS, START_RISK, min_certifiable
from autolabel.routing.calibrators import ClassCalibrator, PlattCalibrator
from autolabel.routing.features import IMAGE_FEATURES, box_table, image_features
from autolabel.routing.schema import POLICY_FORMAT, PolicyFile
from autolabel.routing.scorers import TreeEnsemble

__all__ = ["FittedPolicy", "image_loss", "sequence_start", "LEARNED_INPUTS", "SCORE_LABEL"]

_TARGETS = ("located", "correct", "exact")
_EPS = 1e-6
#: Inputs of the learned scorer: the image features and the product model's outputs.
LEARNED_INPUTS = (*IMAGE_FEATURES, "raw_score", "e_draw", "min_p_correct", "sum_p_found")
_ACCEPT_SCORE = {"image_any_edit": "p_no_edit", "box_error_rate": "box_score"}
SCORE_LABEL = {"p_no_edit": "P(no edit)", "box_score": "1 - E[box error rate]"}


def image_loss(images: pd.DataFrame, risk: str) -> np.ndarray:
    """Per-image loss in [0, 1] from the edit counts of :func:`match_targets`.

    Args:
        images: one row per image with the :data:`~autolabel.matching.EDIT_KINDS` counts
            and ``needs_edit``.
        risk: ``image_any_edit`` (1 when the image needs any edit) or ``box_error_rate``
            ((delete + relabel + adjust_relabel + draw) / max(1, pre-labels + draws); an
            adjust counts as correct, crowd-matched pre-labels count in neither).

    Returns:
        (n,) float64 losses.

    Raises:
        ValueError: an unknown risk.
    """
    if risk == "image_any_edit":
        return images["needs_edit"].to_numpy(np.float64)
    if risk == "box_error_rate":
        from autolabel.matching import EDIT_KINDS

        wrong = images[["delete", "relabel", "adjust_relabel", "draw"]].to_numpy(np.float64).sum(1)
        return wrong / np.maximum(1.0, images[list(EDIT_KINDS)].to_numpy(np.float64).sum(1))
    raise ValueError(f"unknown risk {risk!r}; choose from {', '.join(BOUNDS)}")


def sequence_start(cfg: RoutingPolicy) -> int:
    """Auto-accepted calibration images at which the ``ltt_sequence`` test starts."""
    return min_certifiable(cfg.alpha, cfg.delta, BOUNDS[cfg.risk], START_RISK[cfg.risk] * cfg.alpha)


def _bound_name(cfg: RoutingPolicy) -> str:
    if cfg.bound != "auto":
        return cfg.bound
    if cfg.risk == "image_any_edit":
        return "clopper_pearson"
    return "hoeffding_bentkus" if cfg.test == "ltt_sequence" else "wsr"


@dataclass(frozen=True)
class FittedPolicy:
    """Score models and auto-accept threshold fitted on a calibration sample.

    :meth:`save` / :meth:`load` as JSON; :meth:`score` gives per-box and per-image scores
    for new predictions of the same model (``model_id``). ``learned``: the learned
    scorer's ensembles (``no_edit``, ``box_error``, ``edit_s``), empty for the product
    model. ``box_threshold``: the certified ``p_correct`` threshold of box-level
    certification (None: no box is certified)."""

    config: RoutingPolicy
    model_id: str
    class_names: tuple[str, ...]
    use_agreement: bool
    located: ClassCalibrator
    correct: ClassCalibrator
    exact: ClassCalibrator
    found: ClassCalibrator | None
    miss: tuple[float, float, float] = (0.0, 0.0, 0.0)
    image: PlattCalibrator = PlattCalibrator(1.0, 0.0)
    threshold: float | None = None
    reason: str = ""
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: Mapping[str, Any] = field(default_factory=dict)
    learned: Mapping[str, TreeEnsemble] = field(default_factory=dict)
    box_threshold: float | None = None

    # -- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-able data (what :meth:`save` writes): the fitted content, the
        ``guarantee`` it rests on and a ``checksum`` of both (see :meth:`load`)."""
        d = {
            "format": POLICY_FORMAT, "model_id": self.model_id, "class_names": list(self.class_names),
            "config": self.config.model_dump(mode="json"), "use_agreement": self.use_agreement,
            "calibrators": {
                **{t: getattr(self, t).to_dict() for t in _TARGETS},
                "found": None if self.found is None else self.found.to_dict(),
            },
            "miss": list(self.miss), "image": self.image.to_dict(), "threshold": self.threshold,
            "reason": self.reason, "curve": self.curve.to_dict(orient="list"), "summary": dict(self.summary),
            "learned": {k: v.to_dict() for k, v in self.learned.items()}, "box_threshold": self.box_threshold,
            "guarantee": self.guarantee(),
        }
        d = json.loads(json.dumps(d, allow_nan=True))  # plain JSON types: the checksum reads what load reads
        return {**d, "checksum": _checksum(d)}

    def guarantee(self) -> dict[str, Any]:
        """What the auto-accept guarantee rests on: risk, alpha, delta, test, bound, the
        number of bound images ``n``, the threshold and, at it, the accepted images, their
        loss sum and the bound's value ``ucb`` (from the risk-coverage curve)."""
        cfg, at = self.config, _curve_row(self.curve, self.threshold)
        return {
            "risk": cfg.risk, "alpha": cfg.alpha, "delta": cfg.delta, "test": cfg.test,
            "bound": str(self.summary.get("bound", _bound_name(cfg))), "n": int(self.summary.get("bound_images", 0)),
            "threshold": self.threshold,
            "n_accepted": None if at is None else int(at["n_accepted"]),
            "loss_sum": None if at is None else float(at["loss_sum"]),
            "ucb": None if at is None else float(at["ucb"]),
        }

    def verify(self, where: str = "the policy") -> None:
        """Check that the threshold, alpha and bound agree with the stored curve: the
        threshold is the loosest one that passed its test, its bound is ``<= alpha`` and,
        for the sequence test, recomputing the bound gives the stored value.

        Raises:
            ConfigError: naming what disagrees.
        """
        cfg, thr, curve = self.config, self.threshold, self.curve
        bad = f"{where}: refused: "
        passed = curve[curve["passed"].astype(bool)] if "passed" in curve else curve.iloc[:0]
        if thr is None:
            if len(passed):
                raise ConfigError(bad + "no threshold, but its risk-coverage curve has thresholds that passed")
            return
        at = _curve_row(curve, thr)
        if not math.isfinite(thr) or at is None or not bool(at["passed"]):
            raise ConfigError(bad + f"threshold {thr!r} is not a threshold that passed the test on its curve")
        if thr != float(passed["threshold"].min()):
            raise ConfigError(bad + f"threshold {thr!r} is not the loosest passing one on its curve "
                              f"({float(passed['threshold'].min())!r})")
        if not float(at["ucb"]) <= cfg.alpha:
            raise ConfigError(bad + f"the bound at threshold {thr:.4g} is {float(at['ucb']):.4f}, above its "
                              f"alpha {cfg.alpha}: the guarantee does not hold")
        if cfg.test == "ltt_sequence":
            from autolabel.routing.bounds import clopper_pearson_upper, hoeffding_bentkus_upper

            fn = clopper_pearson_upper if _bound_name(cfg) == "clopper_pearson" else hoeffding_bentkus_upper
            again = float(fn(float(at["loss_sum"]), float(at["n_accepted"]), cfg.delta))
            if abs(again - float(at["ucb"])) > 1e-6:
                raise ConfigError(bad + f"the stored bound {float(at['ucb']):.6f} at threshold {thr:.4g} is not "
                                  f"the bound of its counts at delta={cfg.delta} ({again:.6f})")

    def save(self, path: str | os.PathLike) -> str:
        """Write the policy as JSON; returns the path."""
        from autolabel.io.files import atomic_write

        return atomic_write(path, json.dumps(self.to_dict(), indent=1, allow_nan=True))

    @classmethod
    def load(cls, source: str | os.PathLike | Mapping[str, Any]) -> FittedPolicy:
        """From a JSON file written by :meth:`save` (or its dict), validated and checked.

        Every field is validated with strict types (:class:`~autolabel.config.PolicyFile`);
        the ``checksum`` must match the content (it catches edits and damage, not a
        forger who recomputes it), the ``guarantee`` must match the configuration, the
        threshold and the curve, and :meth:`verify` must pass.

        Raises:
            FileNotFoundError: no such file. ConfigError (a ValueError): not a valid,
                unedited policy (names the file and the field; never echoes its content).
        """
        where = "<dict>"
        if not isinstance(source, Mapping):
            where = str(source)
            try:
                with open(source, encoding="utf-8") as f:
                    source = json.load(f)
            except FileNotFoundError:
                raise FileNotFoundError(f"policy file not found: {where}") from None
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ConfigError(f"{where}: not a JSON policy file ({type(e).__name__})") from None
        if not isinstance(source, Mapping) or not str(source.get("format", "")).startswith("autolabel-routing-policy/"):
            raise ConfigError(f"{where}: not a routing policy (expected format {POLICY_FORMAT!r})")
        if source.get("format") != POLICY_FORMAT:
            raise ConfigError(f"{where}: a policy of format {str(source.get('format'))[:40]!r}, written by another "
                              f"autolabel version; fit it again (autolabel calibrate) to get {POLICY_FORMAT!r}")
        try:
            pf = PolicyFile.model_validate_json(json.dumps(source, allow_nan=True))
        except ValidationError as e:
            raise ConfigError(f"{where}: invalid routing policy:\n{validation_text(e)}") from None
        content = {k: v for k, v in source.items() if k != "checksum"}
        if _checksum(content) != pf.checksum:
            raise ConfigError(
                f"{where}: refused: the policy was edited after it was fitted (its checksum does not match its "
                "content); fit it again with autolabel calibrate. The checksum catches accidental edits and "
                "damage, not a deliberate forgery"
            )
        policy = cls._from_file(pf, source, where)
        policy.verify(where)
        stored, actual = pf.guarantee.model_dump(), policy.guarantee()
        differ = [f"{k} {stored[k]!r} (the policy's: {actual[k]!r})" for k in stored if stored[k] != actual.get(k)]
        if differ:
            raise ConfigError(f"{where}: refused: its stored guarantee disagrees with its configuration, threshold "
                              f"and curve: {'; '.join(differ)}")
        return policy

    @classmethod
    def _from_file(cls, pf: PolicyFile, raw: Mapping[str, Any], where: str) -> FittedPolicy:
        if pf.config.scorer == "learned" and set(pf.learned) != {"no_edit", "box_error", "edit_s"}:
            raise ConfigError(f"{where}: invalid routing policy: learned: the learned scorer needs no_edit, "
                              "box_error and edit_s")
        if len(set(pf.class_names)) != len(pf.class_names):
            raise ConfigError(f"{where}: invalid routing policy: class_names: duplicate names")
        cal = raw["calibrators"]
        learned = {k: TreeEnsemble.from_dict(v) for k, v in raw.get("learned", {}).items()}
        if any(len(t.features) != len(LEARNED_INPUTS) for t in learned.values()):
            raise ConfigError(f"{where}: invalid routing policy: learned: expected {len(LEARNED_INPUTS)} features")
        located, correct, exact = (ClassCalibrator.from_dict(cal[t]) for t in _TARGETS)
        return cls(
            pf.config, pf.model_id, tuple(pf.class_names), pf.use_agreement, located, correct, exact,
            None if cal["found"] is None else ClassCalibrator.from_dict(cal["found"]),
            pf.miss, PlattCalibrator(pf.image.a, pf.image.b), pf.threshold, pf.reason,
            pd.DataFrame(raw["curve"]), dict(pf.summary), learned, pf.box_threshold,
        )

    def __repr__(self) -> str:
        thr = "none" if self.threshold is None else f"{self.threshold:.4g}"
        return (
            f"FittedPolicy(model={self.model_id or '?'}, scorer={self.config.scorer}, alpha={self.config.alpha}, "
            f"delta={self.config.delta}, threshold={thr}, calibration images={self.summary.get('images', '?')})"
        )

    # -- scoring -----------------------------------------------------------------------------------
    @cached_property
    def cost_profile(self) -> CostProfile:
        """The cost profile the expected seconds use (read once per policy)."""
        return CostProfile.load(self.config.cost_profile)

    @property
    def accept_score(self) -> str:
        """The per-image score the threshold applies to: ``p_no_edit`` (``image_any_edit``)
        or ``box_score`` (``box_error_rate``)."""
        return _ACCEPT_SCORE[self.config.risk]

    def check_model(self, model_id: str) -> None:
        """Raise ``ValueError`` unless predictions of ``model_id`` may use this policy."""
        if not self.model_id:
            return  # fitted on predictions without a model id: nothing to compare
        if not model_id:
            raise ValueError(
                f"the predictions carry no model id (COCO info.model_id) but the policy was fitted on "
                f"{self.model_id!r}; pass check_model=False (CLI: --any-model) if they come from that model"
            )
        if model_id != self.model_id:
            raise ValueError(
                f"the policy was calibrated on model {self.model_id!r}, the predictions come from "
                f"{model_id!r}: calibrate again on that model's predictions"
            )

    def score(self, results: Results, agreement: Sequence[np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-box and per-image scores of ``results`` (DataFrames, one row per box / image)."""
        cfg = self.config
        boxes = box_table(results, cfg.prelabel_conf, agreement)
        boxes = boxes[boxes["score"] >= cfg.evidence_conf].reset_index(drop=True)
        images = pd.DataFrame({
            "image": np.arange(len(results)),
            "file_name": [d.image.file_name if d.image else str(i) for i, d in enumerate(results)],
        })
        if self.learned:
            images = pd.concat([images, image_features(results, cfg.prelabel_conf, cfg.evidence_conf, agreement)], axis=1)
        return self.score_tables(boxes, images)

    def score_tables(self, boxes: pd.DataFrame, images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Score a :func:`box_table` (``image`` refers to ``images.image``; ``images`` holds
        :data:`IMAGE_FEATURES` when the policy has a learned scorer)."""
        from autolabel.matching import EDIT_KINDS
        from autolabel.savings.edits import edit_seconds, scratch_seconds

        boxes = boxes.copy()
        x = _feature(boxes, self.use_agreement)
        labels = boxes["label"].to_numpy(object)
        pre = boxes["prelabel"].to_numpy(bool)
        probs = {t: np.full(len(boxes), np.nan) for t in (*_TARGETS, "found")}
        cap = np.ones(int(pre.sum()))
        for t in _TARGETS:  # located >= correct >= exact
            cap = np.minimum(getattr(self, t)(x[pre], labels[pre]), cap)
            probs[t][pre] = cap
        probs["found"][~pre] = self.found(x[~pre], labels[~pre]) if self.found is not None else 0.0
        for t in (*_TARGETS, "found"):
            boxes[f"p_{t}"] = probs[t]
        boxes["certified"] = pre & (probs["correct"] >= (np.inf if self.box_threshold is None else self.box_threshold))

        size = int(max(images["image"].max() + 1 if len(images) else 0, boxes["image"].max() + 1 if len(boxes) else 0))
        img = boxes["image"].to_numpy(np.int64)

        def total(w: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
            return np.bincount(img[mask], None if w is None else w[mask], minlength=size)[images["image"]]

        out = images.copy()
        out["n_prelabels"] = total(None, pre).astype(np.int64)
        out["n_certified"] = total(None, boxes["certified"].to_numpy(bool)).astype(np.int64)
        p_loc, p_cor, p_ex = (np.nan_to_num(probs[t]) for t in _TARGETS)
        c0, c1, c2 = self.miss
        sum_found = total(np.nan_to_num(probs["found"]), ~pre)
        expected = {
            "accept": total(p_ex, pre), "adjust": total(p_cor - p_ex, pre), "relabel": total(p_loc - p_cor, pre),
            "adjust_relabel": np.zeros(len(out)), "delete": total(1 - p_loc, pre),
            "draw": c0 + c1 * out["n_prelabels"].to_numpy() + c2 * sum_found,
        }
        for k, v in expected.items():
            out[f"e_{k}"] = v
        out["sum_p_found"] = sum_found
        low = boxes.loc[pre].groupby("image")["p_correct"].min()
        out["min_p_correct"] = low.reindex(images["image"]).fillna(1.0).to_numpy()
        out["raw_score"] = np.exp(total(np.log(np.clip(p_ex, _EPS, 1)), pre) - expected["draw"])
        out["p_no_edit"] = self.image(out["raw_score"].to_numpy())
        wrong = total(1 - p_cor, pre) + expected["draw"]
        out["expected_box_error"] = wrong / np.maximum(1.0, out["n_prelabels"].to_numpy() + expected["draw"])
        out["box_score"] = 1 - out["expected_box_error"]
        profile = self.cost_profile
        out["expected_edit_s"] = edit_seconds(np.stack([expected[k] for k in EDIT_KINDS], 1), profile)
        out["expected_scratch_s"] = scratch_seconds(total(p_loc, pre) + expected["draw"], profile)
        if self.learned:
            self._learned_scores(out)
        # certified boxes are not verified one by one: the reviewer saves verify_s on each
        out["certified_credit_s"] = out["n_certified"].to_numpy() * profile.verify_s
        out["expected_edit_s"] = np.maximum(out["expected_edit_s"] - out["certified_credit_s"], 0.0)
        return boxes, out

    def _learned_scores(self, out: pd.DataFrame) -> None:
        """The learned scorer replaces the product model's scores in ``out`` (kept as ``*_product``)."""
        xin = out[list(LEARNED_INPUTS)].to_numpy(np.float64)
        out["p_no_edit_product"], out["box_score_product"] = out["p_no_edit"], out["box_score"]
        out["p_no_edit"] = self.learned["no_edit"](xin)
        out["expected_box_error"] = np.clip(self.learned["box_error"](xin), 0, 1)
        out["box_score"] = 1 - out["expected_box_error"]
        # predicted from realized seconds; the scratch decision keeps the product model's pair of
        # expected seconds (fix vs scratch from the same box probabilities), so they stay comparable
        out["predicted_edit_s"] = np.maximum(self.learned["edit_s"](xin), 0.0)


def _checksum(content: Mapping[str, Any]) -> str:
    """``sha256:`` of the canonical JSON (sorted keys, no spaces) of a policy's content."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True, ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _curve_row(curve: pd.DataFrame, threshold: float | None) -> pd.Series | None:
    """The curve's row at ``threshold`` (None: no threshold, or not on the curve)."""
    if threshold is None or "threshold" not in curve or not len(curve):
        return None
    rows = curve[curve["threshold"].to_numpy(np.float64) == threshold]
    return rows.iloc[-1] if len(rows) else None


def _feature(boxes: pd.DataFrame, use_agreement: bool) -> np.ndarray:
    """The calibrators' input: the detector score, times the agreement signal if used."""
    x = boxes["score"].to_numpy(np.float64)
    if not use_agreement:
        return x
    if "agreement" not in boxes:
        raise ValueError("this policy was fitted with agreement signals: pass agreement= for the predictions")
    return x * boxes["agreement"].to_numpy(np.float64)
