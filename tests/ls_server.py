"""The throwaway Label Studio server script (``scripts/labelstudio_server.py``), loaded
once for every test module that talks to a real server (the ``server`` fixture lives in
``conftest.py`` so one server serves the whole session)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _server_module():
    spec = importlib.util.spec_from_file_location("labelstudio_server", ROOT / "scripts" / "labelstudio_server.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


SERVER = _server_module()
