"""Fail when a module of ``autolabel/`` is over 400 lines, or a function over 60 lines
(its docstring not counted: the Args/Returns/Raises the standards ask for) or over 8
parameters (``self``/``cls`` and ``*args``/``**kwargs`` not counted), unless it is named
in :data:`EXCEPTIONS` with the reason.

    python scripts/check_sizes.py          # prints what is over, exits 1 when anything is

Beyond 8 parameters a function takes an options dataclass instead.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
MAX_PARAMETERS = 8

#: ``"path/to/module.py:qualified.name"`` (or just the path for a module) -> why it may be longer.
EXCEPTIONS: dict[str, str] = {
    "autolabel/serve/backend.py:Backend.__init__": "the model side of `autolabel serve`: one parameter per setting of its "
                                                   "command line (9), validated where each is loaded",
}


def _parameters(f: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = f.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return len([n for n in names if n not in ("self", "cls")])


def _lines(f: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the ``def`` to the end, less the docstring's."""
    n = (f.end_lineno or f.lineno) - f.lineno + 1
    first = f.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        n -= (first.end_lineno or first.lineno) - first.lineno + 1
    return n


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((prefix + node.name, node))
            out += _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            out += _functions(node, f"{prefix}{node.name}.")
    return out


def problems(root: Path) -> list[str]:
    """Every size over its limit under ``root/autolabel`` that :data:`EXCEPTIONS` does not
    name, and every exception that no longer needs to be one."""
    out, used = [], set()
    for path in sorted((root / "autolabel").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            if rel in EXCEPTIONS:
                used.add(rel)
            else:
                out.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
        for name, f in _functions(ast.parse(text, rel)):
            key, n, k = f"{rel}:{name}", _lines(f), _parameters(f)
            over = [f"{n} lines (max {MAX_FUNCTION_LINES})"] * (n > MAX_FUNCTION_LINES)
            over += [f"{k} parameters (max {MAX_PARAMETERS})"] * (k > MAX_PARAMETERS)
            if over and key in EXCEPTIONS:
                used.add(key)
            elif over:
                out.append(f"{key} (line {f.lineno}): {', '.join(over)}")
    stale = [k for k in sorted(set(EXCEPTIONS) - used) if (root / k.split(":")[0]).is_file()]
    out += [f"{key}: excepted but within the limits now: drop the exception" for key in stale]
    return out


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    found = problems(root)
    for p in found:
        print(p)
    for key, why in EXCEPTIONS.items():
        print(f"excepted: {key}: {why}")
    print(f"{len(found)} over the limits, {len(EXCEPTIONS)} excepted")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
