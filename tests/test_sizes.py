"""The size limits of the standards (scripts/check_sizes.py): modules <= 400 lines,
functions <= 60 lines (docstring not counted) and <= 8 parameters, exceptions named."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("check_sizes", ROOT / "scripts" / "check_sizes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_tree_keeps_to_the_size_limits():
    assert _checker().problems(ROOT) == []


def test_the_check_finds_a_long_function_and_a_long_signature(tmp_path):
    pkg = tmp_path / "autolabel"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (pkg / "m.py").write_text(f'def long():\n    """Doc\n    lines."""\n{body}\n\n\ndef wide(a, b, c, d, e, f, g, h, i, *args, **kw):\n'
                              "    return a\n\n\nclass C:\n    def ok(self, a, b, c, d, e, f, g, h):\n        return a\n")
    found = _checker().problems(tmp_path)
    assert found == ["autolabel/m.py:long (line 1): 61 lines (max 60)", "autolabel/m.py:wide (line 66): 9 parameters (max 8)"]
