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
import traceback
from typing import Sequence

from autolabel.config import EXIT_FAILED

__all__ = ["main", "COMMANDS"]

COMMANDS = ("prelabel", "savings", "routing", "video", "labelstudio", "audit", "serve", "train", "loop")  # modules of autolabel.cli, in --help order


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autolabel", description="Model-assisted labeling for object detection.")
    p.add_argument("--debug", action="store_true", help="print the full traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"autolabel.cli.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A bad input (``FileNotFoundError``, ``ValueError``, ``KeyError``, a Label Studio
    refusal) prints one line naming it and its cause; any other error (a bug, in a
    backend or here) prints its type and message. Both exit with status 2; ``--debug``
    prints the full traceback, causes included, instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted before or after the command
    args = _build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        return int(args.func(args))
    except Exception as e:  # reported (the traceback under --debug), never swallowed: exit status 2
        if debug:
            traceback.print_exc(file=sys.stderr)
        else:
            expected = isinstance(e, _user_errors())
            print(f"autolabel {args.command}: error: {_describe(e, not expected)}"
                  f"{'' if expected else ' (--debug prints the traceback)'}", file=sys.stderr)
        return EXIT_FAILED


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that name a bad input or an unusable service, not a bug."""
    from autolabel.labelstudio.client import LabelStudioError  # the stdlib only

    return (FileNotFoundError, ValueError, KeyError, LabelStudioError)


def _describe(e: BaseException, with_type: bool) -> str:
    """``e``'s message, and its cause's when it has one."""
    text = f"{type(e).__name__}: {e}" if with_type else str(e)
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" (cause: {type(cause).__name__}: {cause})"
    return " ".join([text, *getattr(e, "__notes__", ())])
