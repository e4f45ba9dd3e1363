"""What the labeling loop measured: one :class:`RoundResult` per round, gathered in a
:class:`LoopResult` (a DataFrame, a matplotlib plot, a Markdown report, JSON).

Units: hours are human hours under the loop's cost profile; ``saved_fraction`` is the share
of from-scratch labeling time the round's pre-labels save on the fixed held-back images, with
a 95% bootstrap interval over those images (:func:`autolabel.savings.summarize`);
``pool_hours_saved`` scales it to the images still unlabeled in the pool (their from-scratch
hours estimated by the held-back images' mean).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["RoundResult", "LoopResult"]

_COLUMNS = ("round", "labeled_images", "labeled_boxes", "labeling_hours", "map50", "threshold", "saved_fraction",
            "saved_fraction_ci95_low", "saved_fraction_ci95_high", "pool_images", "pool_hours_saved",
            "train_minutes", "epochs")


@dataclass(frozen=True)
class RoundResult:
    """One round: after labeling ``labeled_images`` images in total and training on them.

    Attributes:
        round: 1-based round number.
        selected: keys of the images labeled in this round (in the order chosen).
        labeled_images, labeled_boxes: cumulative labeled images and their boxes.
        labeling_hours: cumulative human hours to label them from scratch.
        map50: the round's model on the held-back images (pycocotools mAP@0.5).
        threshold: the pre-label threshold the savings are reported at (best of the sweep).
        saved_fraction, saved_fraction_ci95: held-back savings and their 95% interval.
        pool_images: images still unlabeled in the pool after this round.
        pool_hours_saved: hours the round's pre-labels would save on them (with ci95).
        train_minutes: wall-clock minutes of this round's training. epochs: epochs run.
        model: the round's checkpoint (``model.pt``). model_id: its id.
    """

    round: int
    selected: tuple[str, ...]
    labeled_images: int
    labeled_boxes: int
    labeling_hours: float
    map50: float
    threshold: float | None
    saved_fraction: float
    saved_fraction_ci95: tuple[float, float]
    pool_images: int
    pool_hours_saved: float
    pool_hours_saved_ci95: tuple[float, float]
    train_minutes: float
    epochs: int
    model: str = ""
    model_id: str = ""

    def row(self) -> dict[str, Any]:
        """The DataFrame row (see :data:`_COLUMNS`)."""
        d = asdict(self)
        d["saved_fraction_ci95_low"], d["saved_fraction_ci95_high"] = self.saved_fraction_ci95
        return {k: d[k] for k in _COLUMNS}


@dataclass(frozen=True)
class LoopResult:
    """Every round of one loop run, and how it was run.

    Attributes:
        rounds: the :class:`RoundResult` of each round, in order.
        strategy, seed: the selection strategy and seed.
        heldout: keys of the fixed held-back images the savings are measured on.
        profile: the cost profile's name. settings: the loop options as data.
        class_names: the classes trained.
    """

    rounds: tuple[RoundResult, ...]
    strategy: str
    seed: int
    heldout: tuple[str, ...]
    profile: str
    class_names: tuple[str, ...]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        last = self.rounds[-1] if self.rounds else None
        tail = (f", last: {last.labeled_images} labeled, {last.saved_fraction:.1%} saved, mAP50 {last.map50:.3f}"
                if last else "")
        return f"LoopResult({self.strategy}, seed {self.seed}, {len(self.rounds)} rounds{tail})"

    @property
    def labeled(self) -> tuple[str, ...]:
        """Every labeled key, in the order labeled."""
        return tuple(k for r in self.rounds for k in r.selected)

    def to_pandas(self) -> Any:
        """DataFrame, one row per round, with ``strategy`` and ``seed`` columns."""
        import pandas as pd

        df = pd.DataFrame([r.row() for r in self.rounds], columns=list(_COLUMNS))
        df.insert(0, "strategy", self.strategy)
        df.insert(1, "seed", self.seed)
        return df

    def plot(self, ax: Any = None) -> Any:
        """Saved fraction (95% interval) against labeled images; returns the axes."""
        return plot_curves(self.to_pandas(), ax)

    def to_markdown(self) -> str:
        """A Markdown report: settings and the per-round table."""
        from autolabel.savings.render import formatted, md_table

        df = self.to_pandas().drop(columns=["strategy", "seed"])
        lines = [f"# Labeling loop: {self.strategy}, seed {self.seed}", "",
                 f"Savings on {len(self.heldout)} fixed held-back images under `{self.profile}`; "
                 f"classes {', '.join(self.class_names)}.", "", md_table(formatted(df)), "",
                 "Settings: `" + json.dumps(dict(self.settings), sort_keys=True, default=str) + "`", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "seed": self.seed, "heldout": list(self.heldout), "profile": self.profile,
                "class_names": list(self.class_names), "settings": dict(self.settings),
                "rounds": [asdict(r) for r in self.rounds]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LoopResult:
        rounds = tuple(RoundResult(**{**r, "selected": tuple(r["selected"]),
                                      "saved_fraction_ci95": tuple(r["saved_fraction_ci95"]),
                                      "pool_hours_saved_ci95": tuple(r["pool_hours_saved_ci95"])})
                       for r in d["rounds"])
        return cls(rounds, str(d["strategy"]), int(d["seed"]), tuple(d["heldout"]), str(d["profile"]),
                   tuple(d["class_names"]), dict(d.get("settings", {})))

    def save(self, out: str | os.PathLike) -> list[str]:
        """Write ``loop.json``, ``loop.csv``, ``loop.md`` and ``loop.png`` into ``out``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from autolabel.io.files import atomic_write, safe_join
        from autolabel.savings.render import png

        os.makedirs(out, exist_ok=True)
        paths = [safe_join(out, n) for n in ("loop.json", "loop.csv", "loop.md", "loop.png")]
        atomic_write(paths[0], json.dumps(self.to_dict(), indent=1))
        atomic_write(paths[1], self.to_pandas().to_csv(index=False))
        atomic_write(paths[2], self.to_markdown())
        fig, ax = plt.subplots(figsize=(6, 4))
        self.plot(ax)
        with open(paths[3], "wb") as f:  # as the savings report writes its figures
            f.write(png(fig))
        plt.close(fig)
        return paths


def plot_curves(df: Any, ax: Any = None, by: Sequence[str] = ("strategy",)) -> Any:
    """Learning curves of a rounds DataFrame (:meth:`LoopResult.to_pandas`, many runs
    concatenated): mean saved fraction per labeled-image count and group, the band spanning
    the runs' 95% intervals. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for name, g in df.groupby(list(by)):
        m = g.groupby("labeled_images").agg(s=("saved_fraction", "mean"), lo=("saved_fraction_ci95_low", "min"),
                                            hi=("saved_fraction_ci95_high", "max"))
        label = " / ".join(map(str, name if isinstance(name, tuple) else (name,)))
        ax.plot(m.index, m["s"], marker="o", label=label)
        ax.fill_between(m.index, m["lo"], m["hi"], alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("labeled images")
    ax.set_ylabel("human time saved (held-back)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
