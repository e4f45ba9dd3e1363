"""Query strings out of every log line: a task's image URL may carry a token
(``?token=...``), and the HTTP client (httpx), its transport (httpcore) and the server
(uvicorn) log URLs whole at INFO.

:class:`RedactFilter` rewrites a record's message and arguments; :func:`install` puts it
on those loggers and on the handlers that write the log, so that records of their child
loggers are redacted too. Only the value of Label Studio's local-files parameter ``d``
(a file path, never a secret) is kept, so that a refused local file can still be told
apart in the log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["redact", "RedactFilter", "install", "LOGGERS"]

#: The loggers that log URLs: the HTTP client, its transport, the server, and ours.
LOGGERS = ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "autolabel")
_QUERY = re.compile(r"\?([^\s\"'<>#]*)")
_KEEP = {"d"}  # Label Studio's local-files path


def _params(match: re.Match[str]) -> str:
    parts = []
    for p in match.group(1).split("&"):
        key, sep, _ = p.partition("=")
        parts.append(p if key in _KEEP else f"{key}{sep}<redacted>" if sep else "<redacted>")
    return "?" + "&".join(parts)


def redact(text: str) -> str:
    """``text`` with the value of every query parameter but ``d`` replaced by ``<redacted>``."""
    return _QUERY.sub(_params, text) if "?" in text else text


class RedactFilter(logging.Filter):
    """Redacts a record's message and its non-numeric arguments (in place; passes every record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _arg(v) for k, v in record.args.items()}
        return True


def _arg(a: Any) -> Any:
    if a is None or isinstance(a, (int, float)):
        return a  # %d / %f formats keep working
    return redact(str(a))


_FILTER = RedactFilter()


def install() -> RedactFilter:
    """Put the filter on :data:`LOGGERS` and on every handler of them and of the root
    logger (idempotent); returns the filter, for handlers made later (uvicorn's)."""
    for logger in (logging.getLogger(), *map(logging.getLogger, LOGGERS)):
        for target in (logger, *logger.handlers):
            if _FILTER not in target.filters:
                target.addFilter(_FILTER)
    return _FILTER
