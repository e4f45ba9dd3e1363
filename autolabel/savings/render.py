"""Rendering of report tables and figures: cells as text, Markdown tables, PNG bytes,
and the page style shared by the HTML reports."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["CSS", "formatted", "md_table", "png"]

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
    cells = [[str(c) for c in df.columns]] + [[str(v) for v in row] for row in df.itertuples(index=False)]
    cells = [[c.replace("|", "\\|") for c in row] for row in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells[1:]])


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
