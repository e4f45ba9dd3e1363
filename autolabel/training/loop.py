"""The labeling loop: label a few images, fine-tune, pre-label the rest, measure, repeat.

Each round of :func:`run_loop`

1. picks the next images from the unlabeled pool with a strategy
   (:mod:`autolabel.training.strategies`: random, uncertainty, diversity, mix), reading the
   current model's predictions and embeddings where the strategy needs them;
2. gets their labels from a :class:`LabelSource` (:class:`GroundTruthOracle` in benchmarks;
   in production a :class:`CallbackSource` around e.g. a Label Studio push and pull);
3. fine-tunes (:func:`autolabel.training.train`) on every label so far, from the base model
   or from the previous round's model (``warm_start``);
4. pre-labels the fixed held-back images and measures mAP50 and the human time saved
   (:func:`autolabel.savings.report.savings_report`, best threshold, 95% bootstrap interval);
5. optionally pre-labels the rest of the pool with the new model (``prelabel_rest``): the
   work product, and what the next round's uncertainty reads.

The held-back images are fixed before the first round, never selected, never trained on.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from autolabel.config import DEFAULT_PROFILE, CostProfile
from autolabel.core import Results
from autolabel.training.rounds import LoopResult, RoundResult
from autolabel.training.strategies import Candidates, embed_images, fit_scorer, needs, select, uncertainty_scores

__all__ = ["LabelSource", "GroundTruthOracle", "CallbackSource", "LoopOptions", "run_loop", "round_epochs"]


class LabelSource(Protocol):
    """Where a round's labels come from: ``labels(keys)`` returns one entry per key (image
    keys as in the pool, boxes in the loop's classes)."""

    def labels(self, keys: Sequence[str]) -> Results: ...


class GroundTruthOracle:
    """Labels from a labeled data set (benchmarks): every request is answered from ``truth``
    and recorded in :attr:`asked`, so a benchmark can check nothing was asked twice."""

    def __init__(self, truth: Results):
        self.truth = truth
        self.asked: list[str] = []

    def labels(self, keys: Sequence[str]) -> Results:
        missing = [k for k in keys if k not in {d.image.key for d in self.truth if d.image}]
        if missing:
            raise KeyError(f"the ground truth has no labels for {missing[:5]}")
        self.asked.extend(keys)
        return Results([self.truth[k] for k in keys], self.truth.class_names, self.truth.model_id)


class CallbackSource:
    """Labels from any function ``keys -> Results`` (production: push the images to Label
    Studio with :mod:`autolabel.labelstudio`, wait for the annotators, pull the export)."""

    def __init__(self, fetch: Callable[[Sequence[str]], Results]):
        self.fetch = fetch

    def labels(self, keys: Sequence[str]) -> Results:
        got = self.fetch(keys)
        have = {d.image.key for d in got if d.image}
        if set(keys) - have:
            raise ValueError(f"the label source returned no labels for {sorted(set(keys) - have)[:5]}")
        return Results([got[k] for k in keys], got.class_names, got.model_id)


@dataclass(frozen=True)
class LoopOptions:
    """How the loop runs.

    Attributes:
        strategy: ``random``, ``uncertainty``, ``diversity`` or ``mix``.
        rounds: cumulative labeled images after each round, increasing (e.g. 25, 50, 100, 200).
        base: the model the first round fine-tunes (resolver name or ``.pt`` path).
        warm_start: later rounds fine-tune the previous round's model (else the base each time).
        imgsz: training and prediction input size (px).
        epochs: epochs per round; None: :func:`round_epochs` of ``image_steps``.
        image_steps: images seen per round when ``epochs`` is None (epochs = steps / labeled).
        min_epochs, max_epochs: bounds of that rule.
        budget_minutes: wall-clock budget of each round's training (None: epochs only).
        seed: selection, training and k-means seed.
        profile: cost profile of the labeling hours and the savings.
        conf: score threshold of the predictions (low: savings sweeps thresholds above it).
        candidates: score at most this many unlabeled images per round (a seeded sample;
            None: the whole pool).
        routing: routing config of the uncertainty scorer. mix_factor: see :func:`select`.
        prelabel_rest: pre-label the rest of the pool after each round (written to the round's folder).
        n_boot: bootstrap resamples of the saved fraction's interval.
        train_options: more keyword arguments for :func:`autolabel.training.train`.
    """

    strategy: str = "random"
    rounds: tuple[int, ...] = (25, 50, 100, 200)
    base: str = "yolo11n-coco.pt"
    warm_start: bool = True
    imgsz: int = 320
    epochs: int | None = None
    image_steps: int = 2000
    min_epochs: int = 3
    max_epochs: int = 60
    budget_minutes: float | None = None
    seed: int = 0
    profile: str = DEFAULT_PROFILE
    conf: float = 0.01
    candidates: int | None = None
    routing: str = "default"
    mix_factor: int = 3
    prelabel_rest: bool = True
    n_boot: int = 1000
    train_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        needs(self.strategy)
        r = list(self.rounds)
        if not r or r[0] < 1 or any(b <= a for a, b in zip(r, r[1:])):
            raise ValueError(f"rounds must be increasing labeled-image counts >= 1, got {r}")


def round_epochs(n_labeled: int, options: LoopOptions) -> int:
    """Epochs of a round: ``options.epochs``, else ``image_steps / n_labeled`` within
    ``[min_epochs, max_epochs]`` (so small rounds see as many images as large ones)."""
    if options.epochs is not None:
        return options.epochs
    return int(np.clip(math.ceil(options.image_steps / max(n_labeled, 1)), options.min_epochs, options.max_epochs))


@dataclass
class _State:
    """What carries over between rounds."""

    model: str
    pool: list[str]
    labeled: list[str] = field(default_factory=list)
    truth: list[Any] = field(default_factory=list)
    rest_predictions: Results | None = None  # the current model on the remaining pool
    trained: bool = False


def run_loop(
    images: str | os.PathLike, pool: Sequence[str], heldout: Results, source: LabelSource,
    out: str | os.PathLike, options: LoopOptions | None = None,
    train: Callable[..., Any] | None = None, progress: bool = True,
) -> LoopResult:
    """Run the labeling loop (see the module docs) and return what each round measured.

    Args:
        images: the folder every key (pool and held-back) is relative to.
        pool: keys of the unlabeled images the rounds choose from.
        heldout: ground truth of the fixed held-back images (disjoint from ``pool``).
        source: gives the labels of the chosen images.
        out: run folder (``heldout.json``, ``round_<i>/`` with training output, pre-labels, ``loop.*``).
        options: :class:`LoopOptions`.
        train: the trainer (default :func:`autolabel.training.train`), called as ``train(labels,
            images, out, **kwargs)`` and returning a ``TrainResult``; a benchmark passes a
            caching wrapper.
        progress: print one line per round and show progress bars.

    Returns:
        The :class:`~autolabel.training.rounds.LoopResult` (also saved in ``out``).

    Raises:
        ValueError: held-back images in the pool, repeated keys, a last round above the pool size.
        FileNotFoundError: an image missing from ``images``.
    """
    o = options or LoopOptions()
    images, out = str(images), str(out)
    pool = list(pool)
    held = [d.image.key for d in heldout if d.image]
    _check_inputs(images, pool, held, o)
    os.makedirs(out, exist_ok=True)
    heldout.save(os.path.join(out, "heldout"), format="coco")  # the fixed held-back set, recorded
    gt_coco = _load_json(os.path.join(out, "heldout", "annotations.json"))
    if train is None:
        from autolabel.training import train as train_fn
        train = train_fn
    state, rounds = _State(o.base, pool), []
    for i, target in enumerate(o.rounds, start=1):
        t0 = time.monotonic()
        picked = _choose(images, state, target - len(state.labeled), o, seed=o.seed * 1000 + i)
        got = source.labels(picked)
        state.labeled += picked
        state.truth += list(got)
        labels = Results(list(state.truth), got.class_names)
        rdir = os.path.join(out, f"round_{i}")
        res = train(labels, images, rdir, **_train_args(labels, state, o))
        minutes = float(res.total_seconds) / 60
        state.model, state.trained = res.model_pt, True
        r = _measure(images, heldout, gt_coco, state, (i, picked, labels, minutes, res.epochs), rdir, o)
        rounds.append(r)
        if progress:
            print(f"round {i}: {r.labeled_images} labeled, mAP50 {r.map50:.3f}, saved {r.saved_fraction:.1%} "
                  f"({r.saved_fraction_ci95[0]:.1%}-{r.saved_fraction_ci95[1]:.1%}), train {minutes:.1f} min, "
                  f"round {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    result = LoopResult(tuple(rounds), o.strategy, o.seed, tuple(held), o.profile, labels.class_names,
                        {k: v for k, v in asdict(o).items() if k != "train_options"})
    result.save(out)
    return result


def _train_args(labels: Results, state: _State, o: LoopOptions) -> dict[str, Any]:
    """Keyword arguments of this round's :func:`autolabel.training.train`: the classes with a
    labeled box so far (a class nobody has labeled yet cannot be learned; its objects count
    as misses in the savings), one labeled image per class enough, quiet, no loader processes."""
    present = {labels.class_names[c] for d in labels for c in d.class_ids[~d.crowd].tolist()}
    return {"base": state.model if o.warm_start else o.base, "imgsz": o.imgsz,
            "epochs": round_epochs(len(state.labeled), o), "seed": o.seed, "budget_minutes": o.budget_minutes,
            "class_names": [c for c in labels.class_names if c in present], "min_images_per_class": 1,
            "progress": False, "workers": 0, **dict(o.train_options)}


def _check_inputs(images: str, pool: Sequence[str], held: Sequence[str], o: LoopOptions) -> None:
    if len(set(pool)) != len(pool):
        raise ValueError("the pool lists an image twice")
    both = set(pool) & set(held)
    if both:
        raise ValueError(f"{len(both)} held-back images are also in the pool, e.g. {sorted(both)[:3]}")
    if o.rounds[-1] > len(pool):
        raise ValueError(f"the last round needs {o.rounds[-1]} labeled images; the pool has {len(pool)}")
    missing = [k for k in (*pool, *held) if not os.path.isfile(os.path.join(images, k))]
    if missing:
        raise FileNotFoundError(f"{len(missing)} images are not in {images}, e.g. {missing[:3]}")


def _load_json(path: str) -> Any:
    from autolabel.io.files import load_json

    return load_json(path)[0]


def _predict(images: str, keys: Sequence[str], model: str, o: LoopOptions) -> Results:
    """The model's predictions (``conf`` and up) on ``keys``, keyed like the pool."""
    from autolabel.detectors import load_detector
    from autolabel.pipeline import prelabel
    from autolabel.sources.inputs import Item, Source

    src = Source([Item(k, os.path.join(images, k)) for k in keys], f"{len(keys)} images under {images}", len(keys))
    return prelabel(src, load_detector(model), conf=o.conf, progress=False)


def _choose(images: str, state: _State, k: int, o: LoopOptions, seed: int) -> list[str]:
    """The next ``k`` keys: the strategy over (a sample of) the unlabeled pool."""
    done = set(state.labeled)
    rest = [p for p in state.pool if p not in done]
    rng = np.random.default_rng(seed)
    if o.candidates is not None and len(rest) > max(o.candidates, k):
        rest = [rest[j] for j in np.sort(rng.choice(len(rest), o.candidates, replace=False))]
    want = needs(o.strategy)
    scores = None
    if "scores" in want and state.trained:
        scores = _uncertainty(images, rest, state, o)
    emb = None
    if "embeddings" in want:
        from autolabel.detectors import load_detector
        from autolabel.detectors.ultralytics import no_autoinstall

        det = load_detector(state.model)
        if det.backend != "ultralytics":
            raise ValueError(f"{state.model}: image embeddings need an Ultralytics .pt model, got {det.backend}")
        with no_autoinstall():
            emb = embed_images(det.model, [os.path.join(images, r) for r in rest], o.imgsz)  # type: ignore[attr-defined]
    return select(o.strategy, Candidates(tuple(rest), scores, emb), k, seed, o.mix_factor)


def _uncertainty(images: str, rest: Sequence[str], state: _State, o: LoopOptions) -> np.ndarray | None:
    """Routing ``p_no_edit`` of the current model on ``rest``, the scorer fitted on the labeled
    images (the model has trained on them: its calibration there is optimistic, but the same
    for every candidate). None when nothing can be calibrated (random draw then)."""
    truth = Results(list(state.truth), state.truth[0].class_names if state.truth else ())
    policy = fit_scorer(_predict(images, state.labeled, state.model, o), truth, o.routing)
    if policy is None:
        return None
    have = state.rest_predictions
    pred = (Results([have[k] for k in rest], have.class_names, have.model_id) if have is not None
            and all(k in {d.image.key for d in have if d.image} for k in rest) else _predict(images, rest, state.model, o))
    return uncertainty_scores(policy, pred)


def _measure(images: str, heldout: Results, gt_coco: Any, state: _State, step: tuple[Any, ...], rdir: str,
             o: LoopOptions) -> RoundResult:
    """The round's numbers on the held-back set (and the rest of the pool, with ``prelabel_rest``)."""
    from autolabel.savings.edits import scratch_seconds
    from autolabel.savings.ladder import coco_map
    from autolabel.savings.report import savings_report

    i, picked, labels, minutes, epochs = step
    profile = CostProfile.load(o.profile)
    held = [d.image.key for d in heldout if d.image]
    pred = _predict(images, held, state.model, o)
    rep = savings_report(pred, heldout, profile, conf="best", n_boot=o.n_boot)
    s = rep.summary
    frac, ci = float(s["saved_fraction"]), tuple(float(x) for x in s["saved_fraction_ci95"])
    boxes = np.array([int((~d.crowd).sum()) for d in labels])
    held_scratch = float(np.sum(scratch_seconds(np.array([int((~d.crowd).sum()) for d in heldout]), profile)))
    done = set(state.labeled)
    rest = [p for p in state.pool if p not in done]
    per_image_h = held_scratch / max(len(held), 1) / 3600
    state.rest_predictions = None
    if o.prelabel_rest and rest:
        state.rest_predictions = _predict(images, rest, state.model, o)
        state.rest_predictions.save(os.path.join(rdir, "prelabels"), format="coco")
    return RoundResult(
        round=i, selected=tuple(picked), labeled_images=len(labels), labeled_boxes=int(boxes.sum()),
        labeling_hours=float(np.sum(scratch_seconds(boxes, profile))) / 3600, map50=coco_map(pred, gt_coco)[1],
        threshold=rep.best_threshold, saved_fraction=frac, saved_fraction_ci95=(ci[0], ci[1]), pool_images=len(rest),
        pool_hours_saved=frac * per_image_h * len(rest),
        pool_hours_saved_ci95=(ci[0] * per_image_h * len(rest), ci[1] * per_image_h * len(rest)),
        train_minutes=float(minutes), epochs=int(epochs), model=state.model, model_id=pred.model_id,
    )
