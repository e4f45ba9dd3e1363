"""``autolabel`` command line: a thin layer over the Python API.

Each module of this package owns a few subcommands: ``_cmd_<name>(args) -> int``
functions and a ``register(subparsers)`` that adds their parsers. A new command is a new
module listed in :data:`COMMANDS`. Exit status (:mod:`autolabel.config`): 0 success,
1 completed with skipped inputs, 2 failed (bad arguments, model or configuration).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from autolabel.config import EXIT_FAILED

__all__ = ["main", "COMMANDS"]

COMMANDS = ("prelabel", "savings", "routing", "labelstudio", "audit")  # modules of autolabel.cli, in --help order


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autolabel", description="Model-assisted labeling for object detection.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"autolabel.cli.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"autolabel {args.command}: error: {e}", file=sys.stderr)
        return EXIT_FAILED
