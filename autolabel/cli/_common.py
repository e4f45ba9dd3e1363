"""Pieces every command module shares: the options a user set, shared option groups."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from typing import Any, Iterator

from autolabel.config import IOU_ACCEPT, IOU_MIN

__all__ = ["given", "match_options", "json_option", "emit_json", "say", "working"]


def given(**options: Any) -> dict[str, Any]:
    """The options the user set (argparse leaves the others ``None``)."""
    return {k: v for k, v in options.items() if v is not None}


def match_options() -> argparse.ArgumentParser:
    """Parent parser: how pre-labels are matched to the final boxes."""
    match_opts = argparse.ArgumentParser(add_help=False)
    match_opts.add_argument("--iou-accept", type=float, default=IOU_ACCEPT, help="IoU at which a box is accepted as is")
    match_opts.add_argument("--iou-min", type=float, default=IOU_MIN, help="IoU below which a box is no help")
    return match_opts


def json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json [FILE]``: the machine-readable output, on stdout or into FILE."""
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help=f"print {what} as JSON instead of the table (or write it to FILE)")


def emit_json(args: argparse.Namespace, data: Any) -> bool:
    """Write ``data`` where ``--json`` says; ``True`` when it went to stdout (then the
    command prints nothing else there)."""
    if args.json is None:
        return False
    text = json.dumps(data, indent=1, default=str)
    if args.json == "-":
        print(text)
        return True
    from autolabel.io.files import atomic_write

    print(f"wrote {atomic_write(args.json, text + chr(10))}")
    return False


def say(args: argparse.Namespace, text: str) -> None:
    """Print a note (what was written) on stdout, or on stderr when ``--json`` owns stdout."""
    print(text, file=sys.stderr if getattr(args, "json", None) == "-" else sys.stdout)


@contextlib.contextmanager
def working(desc: str, enabled: bool = True) -> Iterator[None]:
    """A tqdm bar on stderr that shows the seconds spent while the block runs (for a
    step whose library call reports no count of its own)."""
    if not enabled:
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr) as bar:

        def tick() -> None:
            while not done.wait(1.0):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
