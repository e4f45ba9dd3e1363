"""Start and stop a throwaway Label Studio server on 127.0.0.1 (for the tests and for demos).

Label Studio pins many packages, so it runs from its own virtual environment as a separate
process (``bash scripts/setup.sh --tests`` creates ``.venv-ls``). The executable is taken
from ``$AUTOLABEL_LS_BIN`` or ``<repo>/.venv-ls/bin/label-studio``.

Each server gets a fresh data directory (SQLite database, media, log), a user and a random
legacy API token, created at start (legacy tokens are enabled for the new organization with
``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``). Local-files serving is on, rooted at
``document_root``, so tasks reference images as ``/data/local-files/?d=<relative path>``.

    python scripts/labelstudio_server.py run   --document-root ../shared/data   # foreground
    python scripts/labelstudio_server.py start --document-root ../shared/data   # background
    python scripts/labelstudio_server.py stop  --data-dir /tmp/ls-xxxx

``start`` prints the URL and data directory as JSON; the user name, password and token are
written to ``<data dir>/credentials.json`` (mode 600), never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Label Studio's default SSRF block list less loopback (the ML backend runs on 127.0.0.1)
_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "fc00::/7", "fe80::/10", "ff00::/8",
)
INSTALL_HINT = 'python3 -m venv .venv-ls && .venv-ls/bin/pip install "label-studio==1.23.2"'


def find_executable() -> str:
    """The ``label-studio`` executable: ``$AUTOLABEL_LS_BIN`` or ``<repo>/.venv-ls/bin/label-studio``."""
    env = os.environ.get("AUTOLABEL_LS_BIN")
    candidate = Path(env) if env else ROOT / ".venv-ls" / "bin" / "label-studio"
    if not candidate.is_file() or not os.access(candidate, os.X_OK):
        where = f"AUTOLABEL_LS_BIN={env}" if env else str(candidate)
        raise FileNotFoundError(f"Label Studio executable not found ({where}); install it with: {INSTALL_HINT}")
    return str(candidate)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LabelStudioServer:
    """A running server; ``stop()`` (or leaving the ``with`` block) ends it and removes a
    temporary data directory."""

    url: str
    token: str
    username: str
    password: str
    data_dir: Path
    document_root: Path
    process: subprocess.Popen | None = None
    owns_data_dir: bool = False

    def __repr__(self) -> str:  # never show the token or password
        return f"LabelStudioServer({self.url}, data_dir={self.data_dir})"

    @classmethod
    def start(
        cls,
        document_root: str | os.PathLike,
        port: int | None = None,
        data_dir: str | os.PathLike | None = None,
        executable: str | None = None,
        timeout: float = 240.0,
    ) -> LabelStudioServer:
        """Start ``label-studio`` and wait until ``/health`` answers (first start migrates
        the database: 20-90 s)."""
        exe = executable or find_executable()
        owns = data_dir is None
        data = Path(data_dir or tempfile.mkdtemp(prefix="autolabel-ls-")).resolve()
        data.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        server = cls(
            url=f"http://127.0.0.1:{port}",
            token=secrets.token_hex(20),
            username="autolabel@localhost",
            password=secrets.token_urlsafe(16),
            data_dir=data,
            document_root=Path(document_root).resolve(),
            owns_data_dir=owns,
        )
        env = dict(os.environ)
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(data),
            LABEL_STUDIO_USERNAME=server.username,
            LABEL_STUDIO_PASSWORD=server.password,
            LABEL_STUDIO_USER_TOKEN=server.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
            LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(server.document_root),
            LABEL_STUDIO_LATEST_VERSION_CHECK="false",
            LABEL_STUDIO_COLLECT_ANALYTICS="false",
            # let it connect an ML backend on 127.0.0.1 (autolabel serve) and that backend's /webhook;
            # private, link-local and cloud-metadata networks stay blocked
            LABEL_STUDIO_ML_BLOCK_LOCAL_IP="false",
            LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS="false",
            LABEL_STUDIO_USER_ADDITIONAL_BANNED_SUBNETS=",".join(_BANNED_SUBNETS),
            LOG_LEVEL="WARNING",
        )
        log = open(data / "server.log", "ab")
        cmd = [exe, "start", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data), "--no-browser"]
        try:
            server.process = subprocess.Popen(
                cmd,
                env=env,
                cwd=data,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        (data / "server.pid").write_text(str(server.process.pid))
        fd = os.open(data / "credentials.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(
                {"url": server.url, "username": server.username, "password": server.password, "token": server.token}, f
            )
        try:
            server.wait_healthy(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with status {self.process.returncode} while starting; "
                    f"log {self.data_dir / 'server.log'}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"Label Studio at {self.url} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join((self.data_dir / "server.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LabelStudioServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process_group(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group of a server started by ``start`` (its own session; not
    our child, so it is reaped by init), SIGKILL after ``grace`` s."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("run", "start"):
        s = sub.add_parser(name, help="run in the foreground" if name == "run" else "start in the background")
        s.add_argument("--document-root", required=True, help="folder served as local files (your images)")
        s.add_argument("--port", type=int, default=None, help="default: a free port")
        s.add_argument("--data-dir", default=None, help="default: a new temporary folder")
    s = sub.add_parser("stop", help="stop a server started with 'start'")
    s.add_argument("--data-dir", required=True)
    args = p.parse_args(argv)

    if args.command == "stop":
        pid_file = Path(args.data_dir) / "server.pid"
        if not pid_file.is_file():
            print(f"no server.pid in {args.data_dir}", file=sys.stderr)
            return 2
        stop_process_group(int(pid_file.read_text()))
        pid_file.unlink()
        return 0
    server = LabelStudioServer.start(
        args.document_root, args.port, args.data_dir or tempfile.mkdtemp(prefix="autolabel-ls-")
    )
    info = {
        "url": server.url,
        "data_dir": str(server.data_dir),
        "credentials": str(server.data_dir / "credentials.json"),
        "pid": server.process.pid if server.process else None,
    }
    print(json.dumps(info, indent=2), flush=True)
    if args.command == "start":
        return 0
    try:
        assert server.process is not None
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
