"""The one renderer of the reports (savings, model ladder, label audit): cells as text,
Markdown and HTML tables, whole pages from blocks, PNG bytes, and the shared page style.

Tables are written here, not by ``DataFrame.to_markdown`` (which needs ``tabulate`` and
changes with its version), so a report reads the same wherever it is made.
"""

from __future__ import annotations

import base64
import html
import io
import posixpath
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["CSS", "Block", "formatted", "md_table", "html_table", "markdown", "html_page", "png"]

#: A piece of a report: ``("h1" | "h2" | "h3", text)``, ``("p", text)``, ``("table", DataFrame)``,
#: ``("figure", name)`` (a matplotlib figure the page gets) or ``("image", relative path)`` (a file beside it).
Block = tuple[str, Any]

CSS = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
       "th,td{padding:0.25em 0.6em;border-bottom:1px solid #ddd;text-align:right}"
       "th{background:#f4f4f4}img{max-width:100%;display:block;margin:1em 0}")


def _cell(column: str, v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return column if v else ""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        if "fraction" in column or column.startswith("ci95"):
            return f"{v:.1%}"
        if column == "threshold":
            return f"{v:.2f}"
        return f"{v:,.2f}" if abs(v) >= 1 or v == 0 else f"{v:.3g}"
    return str(v)


def formatted(df: Any) -> Any:
    """Every cell as text: fractions as percentages, other floats with 2 decimals
    (3 significant digits below 1), a true ``best`` as the word best."""
    import pandas as pd

    return pd.DataFrame({c: [_cell(str(c), v) for v in df[c].tolist()] for c in df.columns})


def md_table(df: Any) -> str:
    """A Markdown table of ``df``'s cells as they are (``str`` of each; see :func:`formatted`)."""
    cells = [[str(c) for c in df.columns]] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])


def html_table(df: Any) -> str:
    """An HTML table of ``df``'s cells as they are (see :func:`formatted`)."""
    return str(df.to_html(index=False, border=0))


def markdown(blocks: Sequence[Block], figure_files: Mapping[str, str] | None = None,
             alt: Mapping[str, str] | None = None) -> str:
    """Markdown of ``blocks``; tables :func:`formatted`, figures linked from ``figure_files``
    (name -> relative path; figures not in it are left out), ``alt`` text by name."""
    out = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + x)
        elif kind == "p":
            out.append(x)
        elif kind == "table":
            out.append(md_table(formatted(x)))
        elif kind == "image":
            out.append(f"![{posixpath.basename(x)}]({x})")
        elif figure_files and x in figure_files:
            out.append(f"![{(alt or {}).get(x, x)}]({figure_files[x]})")
    return "\n\n".join(out) + "\n"


def html_page(blocks: Sequence[Block], title: str, figures: Mapping[str, Any] | None = None) -> str:
    """One self-contained HTML page of ``blocks``: tables :func:`formatted`, ``figures``
    (name -> matplotlib figure) embedded as PNG."""
    out = []
    for kind, x in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{html.escape(x)}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(x)}</p>")
        elif kind == "table":
            out.append(html_table(formatted(x)))
        elif kind == "image":
            out.append(f'<img alt="{html.escape(posixpath.basename(x))}" src="{html.escape(x)}">')
        elif figures and x in figures:
            out.append(f'<img alt="{x}" src="data:image/png;base64,{base64.b64encode(png(figures[x])).decode()}">')
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
