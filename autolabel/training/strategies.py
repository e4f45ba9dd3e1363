"""Which images to label next: the selection strategies of the labeling loop.

Each strategy ranks the unlabeled candidates of one round (:class:`Candidates`) and returns
the keys of the next ``k`` to label:

* ``random``: a seeded uniform draw (the baseline every active strategy must beat).
* ``uncertainty``: the images the routing scorer is least sure need no edit. A
  :class:`~autolabel.routing.FittedPolicy` (product model: calibrated box probabilities,
  miss model, image Platt scaling; :func:`autolabel.routing.fit_policy`) fitted on the
  labeled images' predictions gives every candidate ``p_no_edit``; the lowest are taken.
* ``diversity``: scikit-learn k-means (``k`` clusters) on the detector's own image
  embeddings (:func:`embed_images`: pooled features of the network's last layers); the
  image nearest each cluster centre is taken, so the batch covers the pool's modes.
* ``mix``: the ``mix_factor * k`` most uncertain images, then ``diversity`` among them
  (uncertain *and* unlike each other: the usual cure for near-duplicate uncertain batches).

With no model of the new classes yet (round one: nothing labeled), ``uncertainty`` falls back
to ``random``, and ``mix`` to ``diversity``: a scorer fitted on no labels measures nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from autolabel.core import Results

__all__ = ["STRATEGIES", "Candidates", "needs", "select", "uncertainty_scores", "fit_scorer", "cluster_pick", "embed_images"]

STRATEGIES = ("random", "uncertainty", "diversity", "mix")
_NEEDS = {"random": (), "uncertainty": ("scores",), "diversity": ("embeddings",), "mix": ("scores", "embeddings")}


@dataclass(frozen=True)
class Candidates:
    """The unlabeled images one round chooses from.

    Attributes:
        keys: image keys, the order of every array below.
        scores: (n,) routing ``p_no_edit`` of the current model's predictions (None: no
            scorer yet, e.g. nothing labeled).
        embeddings: (n, d) image embeddings from the current detector (None: not computed).
    """

    keys: tuple[str, ...]
    scores: np.ndarray | None = None
    embeddings: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("candidate keys repeat")
        for name in ("scores", "embeddings"):
            v = getattr(self, name)
            if v is not None and len(v) != len(self.keys):
                raise ValueError(f"{name} has {len(v)} rows for {len(self.keys)} candidates")


def needs(strategy: str) -> tuple[str, ...]:
    """What a strategy reads from :class:`Candidates` (``scores``, ``embeddings``)."""
    if strategy not in _NEEDS:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {list(STRATEGIES)}")
    return _NEEDS[strategy]


def select(strategy: str, candidates: Candidates, k: int, seed: int = 0, mix_factor: int = 3) -> list[str]:
    """The keys of the next ``k`` images to label (all of them when fewer remain).

    Args:
        strategy: one of :data:`STRATEGIES`.
        candidates: the unlabeled pool with what the strategy needs.
        k: batch size. seed: random draw and k-means initialisation.
        mix_factor: ``mix`` clusters the ``mix_factor * k`` most uncertain images.

    Returns:
        ``k`` distinct keys of ``candidates``.

    Raises:
        ValueError: unknown strategy, ``k < 1``, or embeddings missing for a strategy that clusters.
    """
    needs(strategy)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keys = np.array(candidates.keys, dtype=object)
    if k >= len(keys):
        return list(keys)
    rng = np.random.default_rng(seed)
    if strategy == "random" or (strategy == "uncertainty" and candidates.scores is None):
        return list(keys[np.sort(rng.choice(len(keys), k, replace=False))])
    if strategy == "uncertainty":
        return list(keys[_lowest(candidates.scores, k, rng)])  # type: ignore[arg-type]
    if candidates.embeddings is None:
        raise ValueError(f"strategy {strategy!r} needs image embeddings (Candidates.embeddings)")
    idx = np.arange(len(keys))
    if strategy == "mix" and candidates.scores is not None:
        idx = _lowest(candidates.scores, min(len(keys), mix_factor * k), rng)
    return list(keys[idx[cluster_pick(candidates.embeddings[idx], k, seed)]])


def _lowest(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` lowest scores, ties broken at random."""
    s = np.asarray(scores, np.float64)
    order = np.lexsort((rng.random(len(s)), s))
    return np.sort(order[:k])


def cluster_pick(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means (scikit-learn, ``k`` clusters) on L2-normalised embeddings; per cluster, the
    position of the image nearest its centre. Returns ``k`` distinct positions, sorted (fewer
    only when fewer distinct embeddings exist)."""
    from sklearn.cluster import KMeans

    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x))
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    dist = np.linalg.norm(x[:, None, :] - km.cluster_centers_[None], axis=2)  # (n, k)
    picked: list[int] = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            picked.append(int(members[np.argmin(dist[members, c])]))
    return np.array(sorted(set(picked)), np.int64)


def fit_scorer(labeled_predictions: Results, labeled_truth: Results, config: Any = "default") -> Any:
    """The routing policy (:func:`autolabel.routing.fit_policy`, product scorer) of the
    current model, fitted on its predictions for the labeled images; None when those cannot
    calibrate anything (no pre-label, or every image alike), with the reason left to the
    caller's fallback (``uncertainty`` then draws at random)."""
    from autolabel.routing import fit_policy

    try:
        return fit_policy(labeled_predictions, labeled_truth, config)
    except ValueError:
        return None


def uncertainty_scores(policy: Any, predictions: Results) -> np.ndarray:
    """``p_no_edit`` of each image of ``predictions`` under a fitted routing policy; (n,)."""
    _, images = policy.score(predictions)
    return images["p_no_edit"].to_numpy(np.float64)


def embed_images(model: Any, paths: Sequence[str], imgsz: int, batch: int = 16,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Image embeddings of an Ultralytics detector: ``YOLO.embed`` (its last layers'
    feature maps, average-pooled), one row per path; (n, d) float32.

    Args:
        model: an ``ultralytics.YOLO`` (e.g. ``UltralyticsDetector.model``).
        paths: image files. imgsz: input size. batch: images per forward pass.
        progress: called with the number of images done after each batch.
    """
    rows: list[np.ndarray] = []
    for i in range(0, len(paths), batch):
        chunk = list(paths[i:i + batch])
        out = model.embed(chunk, imgsz=imgsz, batch=len(chunk), verbose=False)
        rows.extend(np.asarray(t.detach().cpu().numpy(), np.float32).ravel() for t in out)
        if progress is not None:
            progress(len(chunk))
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)
