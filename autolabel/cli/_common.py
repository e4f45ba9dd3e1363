"""Pieces every command module shares: the options a user set, shared option groups."""

from __future__ import annotations

import argparse
from typing import Any

from autolabel.config import IOU_ACCEPT, IOU_MIN

__all__ = ["given", "match_options"]


def given(**options: Any) -> dict[str, Any]:
    """The options the user set (argparse leaves the others ``None``)."""
    return {k: v for k, v in options.items() if v is not None}


def match_options() -> argparse.ArgumentParser:
    """Parent parser: how pre-labels are matched to the final boxes."""
    match_opts = argparse.ArgumentParser(add_help=False)
    match_opts.add_argument("--iou-accept", type=float, default=IOU_ACCEPT, help="IoU at which a box is accepted as is")
    match_opts.add_argument("--iou-min", type=float, default=IOU_MIN, help="IoU below which a box is no help")
    return match_opts
