"""Files we write and read: safe output paths, atomic writes, JSON with errors that name the file."""

from __future__ import annotations

import json
import os
import re
import secrets
from contextlib import contextmanager, suppress
from typing import IO, Any, Iterator


def safe_relpath(name: str) -> str:
    """``name`` made relative and harmless: backslashes become ``/``, a drive letter and
    leading ``/`` are dropped, and so are ``.``/``..``/empty components
    (``"../../evil.jpg"`` -> ``"evil.jpg"``, ``"/etc/passwd.jpg"`` -> ``"etc/passwd.jpg"``)."""
    if "\0" in name:
        raise ValueError(f"file name {name!r} contains a NUL character")
    s = re.sub(r"^[A-Za-z]:", "", name.replace("\\", "/"))
    parts = [p for p in s.split("/") if p not in ("", ".", "..")]
    if not parts:
        raise ValueError(f"file name {name!r} has no usable component")
    return "/".join(parts)


def safe_join(out_dir: str | os.PathLike, name: str) -> str:
    """``out_dir/<safe_relpath(name)>``, verified (symlinks resolved) to stay inside ``out_dir``."""
    path = os.path.join(out_dir, *safe_relpath(name).split("/"))
    root = os.path.realpath(out_dir)
    if os.path.commonpath([root, os.path.realpath(path)]) != root:
        raise ValueError(f"file name {name!r} would be written outside {out_dir} (through a link)")
    return path


def inside(root: str | os.PathLike, name: str) -> str:
    """The file ``name`` (relative, as a labels file names it) under ``root``, for reading:
    refused when the name itself leaves ``root`` (``../x``, an absolute path, a drive).
    Links inside ``root`` are followed: they were put there by whoever owns the folder,
    not by the labels file.

    Raises:
        ValueError: naming ``name`` and ``root``.
    """
    if "\0" in name or os.path.isabs(name) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"refusing to read {name!r}: not a relative path under {root}")
    base = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(base, name))
    if os.path.commonpath([base, path]) != base:
        raise ValueError(f"refusing to read {name!r}: outside {root}")
    return path


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a new file in the folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: str | os.PathLike, durable: bool = False) -> Iterator[IO[str]]:
    """A text file (UTF-8) to write ``path`` through: written to a temporary file beside
    ``path`` and renamed over it when the block ends without an error (else removed), so
    a crash leaves the old file or the new one, never half of one. ``durable``: also
    fsync the file before the rename and the folder after it (survives power loss).

    Args:
        path: the file to write.
        durable: fsync file and folder.

    Yields:
        The open temporary file.

    Raises:
        OSError: the folder cannot be written (the error of the failing call, unchanged).
    """
    path = str(path)
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")  # mode "x": the umask applies
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):  # the temp file may never have been made: keep the real error
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder or ".")


def atomic_write(path: str | os.PathLike, text: str, durable: bool = False) -> str:
    """Write ``text`` to ``path`` through :func:`atomic_writer`; returns ``path``."""
    with atomic_writer(path, durable) as f:
        f.write(text)
    return str(path)


def load_json(source: str | os.PathLike | Any) -> tuple[Any, str]:
    """``(data, name)`` from a JSON file path, or an already parsed object (``name="<data>"``)."""
    if not isinstance(source, (str, os.PathLike)):
        return source, "<data>"
    try:
        with open(source, encoding="utf-8") as f:
            return json.load(f), str(source)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON: {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{source}: not UTF-8 text: {e}") from e

