"""Several models' savings reports on one dataset: the comparison table, its figures, and
the document (Markdown, or one self-contained HTML page with the plots embedded as PNG)
written by :meth:`Comparison.save`. Made by :func:`autolabel.savings.report.compare`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from autolabel.config import CostProfile
from autolabel.matching import EDIT_KINDS
from autolabel.results import Record
from autolabel.savings.edits import Savings, kind_seconds
from autolabel.savings.render import html_page, markdown, png

if TYPE_CHECKING:
    from autolabel.savings.report import SavingsReport

__all__ = ["Comparison"]

_KIND_COLORS = ("#2e7d32", "#9ccc65", "#ffb300", "#fb8c00", "#e53935", "#5c6bc0")


@dataclass(frozen=True, eq=False, repr=False)
class Comparison(Record):
    """Several models' :class:`SavingsReport` on one dataset under one cost profile.

    :meth:`to_pandas` and the notebook view: :attr:`summary`, one row per model."""

    reports: list[SavingsReport]
    dataset: str
    profile: str

    def __repr__(self) -> str:
        per = "; ".join(f"{r.model} saves {r.savings.saved_fraction:.1%}" for r in self.reports[:4])
        more = f"; {len(self.reports) - 4} more" if len(self.reports) > 4 else ""
        return f"Comparison({self.dataset!r}, profile {self.profile!r}: {per}{more})"

    def to_pandas(self) -> Any:
        return self.summary

    def _repr_html_(self) -> str:
        import html

        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.summary.to_html(index=False)

    @property
    def summary(self) -> Any:
        """DataFrame, one row per model at its best threshold."""
        import pandas as pd

        rows = []
        for r in self.reports:
            s, k = r.savings, r.savings.per_1000_images
            rows.append({
                "model": r.model, "threshold": s.conf, "pred_boxes": s.pred_boxes,
                "saved_fraction": s.saved_fraction, "ci95_low": s.saved_fraction_ci95[0],
                "ci95_high": s.saved_fraction_ci95[1], "saved_hours_per_1000": k.saved_hours,
                "human_cost_saved_per_1000": k.human_cost_saved,
                "machine_s_per_image": None if k.machine_seconds is None else k.machine_seconds / 1000,
                "machine_cost_per_1000": k.machine_cost, "net_saving_per_1000": k.net_saving,
                "currency": s.currency,
            })
        return pd.DataFrame(rows)

    @property
    def sweep(self) -> Any:
        """DataFrame: every model's threshold sweep, with a ``model`` column."""
        import pandas as pd

        return pd.concat([r.sweep.assign(model=r.model) for r in self.reports], ignore_index=True)

    @property
    def edits(self) -> Any:
        """DataFrame: edit counts per model at its best threshold."""
        import pandas as pd

        return pd.DataFrame([{"model": r.model, "threshold": r.savings.conf, **r.savings.edits} for r in self.reports])

    def figures(self) -> dict[str, Any]:
        """matplotlib Figures: ``saving_vs_threshold``, ``edits``, and
        ``saving_vs_machine`` (when machine seconds were measured)."""
        from matplotlib.figure import Figure

        out = {}
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.add_subplot()
        for r in self.reports:
            sw = r.sweep
            (line,) = ax.plot(sw["threshold"], 100 * sw["saved_fraction"], marker=".", label=r.model)
            b = sw[sw["best"]]
            ax.plot(b["threshold"], 100 * b["saved_fraction"], "*", ms=14, color=line.get_color())
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(xlabel="pre-label confidence threshold", ylabel="human time saved (%)",
               title=f"Saving vs threshold ({self.profile}; star = best)")
        ax.legend()
        out["saving_vs_threshold"] = fig

        fig = Figure(figsize=(6.4, 1.6 + 0.5 * len(self.reports)), layout="constrained")
        ax = fig.add_subplot()
        ed = self.edits
        left = np.zeros(len(ed))
        for kind, color in zip(EDIT_KINDS, _KIND_COLORS):
            ax.barh(ed["model"], ed[kind], left=left, color=color, label=kind)
            left += ed[kind].to_numpy()
        ax.set(xlabel="edits at the best threshold", title="Edit breakdown per model")
        ax.invert_yaxis()
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=len(EDIT_KINDS), fontsize="small")
        out["edits"] = fig

        sm = self.summary
        if sm["machine_s_per_image"].notna().all():
            fig = Figure(figsize=(6.4, 4.0), layout="constrained")
            ax = fig.add_subplot()
            ax.scatter(sm["machine_s_per_image"], sm["saved_hours_per_1000"])
            for _, row in sm.iterrows():
                ax.annotate(row["model"], (row["machine_s_per_image"], row["saved_hours_per_1000"]),
                            textcoords="offset points", xytext=(5, 5))
            ax.margins(0.25)
            ax.set(xlabel="machine seconds per image (measured)", ylabel="human hours saved per 1,000 images",
                   title="Saving vs machine time")
            out["saving_vs_machine"] = fig
        return out

    # -- documents: one list of blocks, rendered as Markdown or HTML ------------------------
    def _blocks(self) -> list[tuple[str, Any]]:
        b: list[tuple[str, Any]] = [("h1", f"Pre-labeling savings: {self.dataset}")]
        first = self.reports[0]
        intro = (f"{first.savings.images} images, {first.savings.gt_boxes} ground-truth boxes (crowd regions excluded); "
                 f"cost profile '{self.profile}'; edits matched at IoU >= {first.iou_min} "
                 f"(accepted as is at IoU >= {first.iou_accept}).")
        b.append(("p", intro))
        for r in self.reports:
            b.append(("p", _headline(r.model, r.savings)))
        if len(self.reports) > 1:
            ranked = sorted(self.reports, key=lambda r: -r.savings.saved_seconds)
            top, rest = ranked[0], ranked[1:]
            diffs = ", ".join(
                f"{(top.savings.per_1000_images.saved_hours - r.savings.per_1000_images.saved_hours):.2f} h "
                f"per 1,000 images more than {r.model}" for r in rest)
            b.append(("p", f"Best: {top.model}, saving {diffs}."))
        b += [("h2", "Summary"), ("table", self.summary), ("figure", "saving_vs_threshold")]
        b.append(("figure", "saving_vs_machine"))
        b += [("h2", "Edits at the best threshold"), ("table", self.edits), ("figure", "edits")]
        b.append(("h2", "Threshold sweep"))
        cols = ["threshold", "pred_boxes", *EDIT_KINDS, "saved_fraction", "saved_hours_per_1000", "best"]
        for r in self.reports:
            b += [("h3", r.model), ("table", r.sweep[cols])]
        b.append(("h2", "Per class (at the best threshold; seconds without the per-image overhead)"))
        for r in self.reports:
            pc = r.per_class[(r.per_class["gt_boxes"] > 0) | (r.per_class["delete"] > 0)]
            b += [("h3", r.model), ("table", pc.sort_values("gt_boxes", ascending=False))]
        b.append(("h2", "Sensitivity to the cost profile (at the best threshold)"))
        for r in self.reports:
            b += [("h3", r.model), ("table", r.sensitivity)]
        b += [("h2", "Method"), ("p", _METHOD), ("table", _profile_table(self.profile))]
        return b

    @cached_property
    def _figures(self) -> dict[str, Any]:
        return self.figures()

    def to_markdown(self, figure_files: Mapping[str, str] | None = None) -> str:
        """Markdown; figures are linked from ``figure_files`` (name -> relative path)."""
        return markdown(self._blocks(), figure_files)

    def to_html(self) -> str:
        """One self-contained HTML page, plots embedded as PNG."""
        return html_page(self._blocks(), f"Pre-labeling savings: {self.dataset}", self._figures)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "profile": self.profile, "models": [r.to_dict() for r in self.reports]}

    def save(self, out_dir: str | os.PathLike, name: str = "report") -> list[str]:
        """Write ``<name>.md`` (with ``<name>-<plot>.png`` beside it), ``<name>.html``
        and ``<name>.json`` into ``out_dir``; returns the paths."""
        from autolabel.io.files import atomic_write, safe_join

        os.makedirs(out_dir, exist_ok=True)
        written, files = [], {}
        for fig_name, fig in self._figures.items():
            rel = f"{name}-{fig_name.replace('_', '-')}.png"
            path = safe_join(out_dir, rel)
            with open(path, "wb") as f:
                f.write(png(fig))
            files[fig_name] = rel
            written.append(path)
        written.append(atomic_write(safe_join(out_dir, f"{name}.md"), self.to_markdown(files)))
        written.append(atomic_write(safe_join(out_dir, f"{name}.html"), self.to_html()))
        written.append(atomic_write(safe_join(out_dir, f"{name}.json"), json.dumps(self.to_dict(), indent=1)))
        return written


_METHOD = (
    "Each image's pre-labels (score >= threshold) are paired one-to-one with its ground truth by an optimal "
    "assignment (scipy linear_sum_assignment) over pairs with IoU >= iou_min, preferring right-class pairs, then "
    "more pairs, then higher total IoU. A pre-label on a crowd region of its class is "
    "ignored (COCO's rule). Edits: accept (right class, IoU >= iou_accept), adjust (right class, lower IoU), "
    "relabel (wrong class, IoU >= iou_accept), adjust_relabel (wrong class, lower IoU), delete (unpaired or "
    "duplicate), draw (missed object). Scratch = every object drawn by hand; assisted = correcting the "
    "pre-labels; both include the per-image overhead and review passes. A wrong box costs the cheaper of fixing "
    "it and deleting + redrawing it. Machine time is the measured pre-labeling wall time on the machine that "
    "made this report. Seconds per action of this profile:"
)



def _headline(model: str, s: Savings) -> str:
    k, cur = s.per_1000_images, s.currency
    lo, hi = s.saved_fraction_ci95
    at = "every prediction as given" if s.conf is None else f"pre-label threshold {s.conf:.2f}"
    machine = (f"; machine time {k.machine_seconds / 1000:.3f} s per image costs {cur} {k.machine_cost or 0.0:.4f} "
               f"per 1,000 images, net saving {cur} {k.net_saving:,.2f}") if k.machine_seconds is not None else ""
    return (f"{model} saves {s.saved_fraction:.1%} of human labeling time (95% CI {lo:.1%} to {hi:.1%}) "
            f"at {at}: {k.saved_hours:.2f} h per 1,000 images ({k.scratch_hours:.2f} h from scratch, "
            f"{k.assisted_hours:.2f} h assisted), {cur} {k.human_cost_saved:,.2f} of labeling pay{machine}.")


def _profile_table(profile: str) -> Any:
    import pandas as pd

    p = CostProfile.load(profile)
    rows = [{"item": f"{k} (s)", "value": v} for k, v in kind_seconds(p).items()]
    rows += [{"item": "image overhead (s)", "value": p.image_overhead_s},
             {"item": "review passes x s per box", "value": f"{p.review_passes} x {p.review_s_per_box}"},
             {"item": "pay", "value": f"{p.currency} {p.hourly_wage}/h" if p.hourly_wage is not None else
              f"{p.currency} {p.price_per_image or 0}/image + {p.price_per_box or 0}/box"},
             {"item": "machine price", "value": f"{p.currency} {p.machine_price_per_hour}/h"}]
    return pd.DataFrame(rows)
