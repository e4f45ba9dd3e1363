"""``autolabel serve`` as its own process, for the tests that talk to it over HTTP."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpx
import pytest
from ls_server import SERVER


def start_serve(args: Sequence[str], log: Path, env: Mapping[str, str], auth: Any = None,
                wait_s: float = 120) -> tuple[subprocess.Popen, str]:
    """Start ``autolabel serve --port <free> ARGS`` (output to ``log``) and wait until
    ``/health`` answers; fails the test, with the log, if it does not in ``wait_s``."""
    port = SERVER.free_port()
    cmd = [sys.executable, "-m", "autolabel.cli", "serve", "--port", str(port), *args]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url + "/health", auth=auth, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"autolabel serve did not answer /health:\n{log.read_text()}")


def stop_serve(proc: subprocess.Popen) -> None:
    """Stop it; kill it if it is still answering a request after 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:  # still answering a request: uvicorn waits for it
        proc.kill()
