"""Which task image URLs the backend may read, and how.

A task's image URL is attacker-controlled text: anyone who can import a task can put
any address in it. The backend therefore reads only

- Label Studio local-files URLs (``/data/local-files/?d=<relative path>``), from the
  ``document_root`` on disk when one is configured (the server's
  ``LOCAL_FILES_DOCUMENT_ROOT``; the path must stay inside it), else from the server;
- URLs on the Label Studio host it was set up with (relative ``/data/...`` URLs, or
  absolute ones with the same scheme, host and port), with the server's token.

Any other URL (another host, ``file:``, a path outside the document root) is refused
and that task fails with the reason; nothing is fetched.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import numpy as np

from autolabel.core import ImageInfo
from autolabel.sources import Item
from autolabel.io.images import ImageReadError, load_image_draft

__all__ = ["ImageAccess", "RefusedURL"]

_LOCAL_FILES = "/data/local-files/"


class RefusedURL(ValueError):
    """A task image URL the backend will not read (not the Label Studio host, or outside local files)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return u.scheme, (u.hostname or "").lower(), port


@dataclass
class _Fetched(Item):
    """An image read over HTTP from the Label Studio host when the pipeline loads it
    (in its decode threads, so downloads overlap with inference)."""

    access: Any = field(default=None, repr=False)
    url: str = ""

    def load(self, draft: tuple[int, int] | None = None) -> tuple[np.ndarray, ImageInfo]:
        """As :meth:`Item.load`, from the bytes fetched over HTTP."""
        data = self.access.fetch(self.url)
        suffix = Path(urlsplit(self.url).path).suffix[:8]
        # load_image_draft decodes files (EXIF orientation, clear errors); a private temp file reuses it
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:
            f.write(data)
            f.flush()
            try:
                arr, (w, h) = load_image_draft(f.name, draft)
            except ImageReadError as e:
                raise ImageReadError(self.url, e.reason) from e
        return arr, ImageInfo(self.key, w, h, None)


class ImageAccess:
    """Turns task image URLs into loadable :class:`~autolabel.sources.Item`s under the rules above.

    Args:
        label_studio_url: the Label Studio server (``http://host:port``); ``None`` until
            ``/setup`` tells it (see :meth:`set_host`).
        token: its API token (legacy or personal access token), sent only to that host.
        document_root: the server's local-files document root, read directly from disk.
        timeout: seconds per HTTP download.
    """

    def __init__(
        self,
        label_studio_url: str | None = None,
        token: str | None = None,
        document_root: str | os.PathLike | None = None,
        timeout: float = 30.0,
    ):
        self.url = label_studio_url.rstrip("/") if label_studio_url else None
        self._token = token
        self.document_root = Path(document_root).resolve() if document_root else None
        self.timeout = timeout
        self._http: Any = None
        self._auth: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the token is never shown
        return f"ImageAccess(host={self.url}, document_root={self.document_root})"

    def set_host(self, url: str | None, token: str | None) -> None:
        """What ``/setup`` sent: used only where nothing was configured at start."""
        with self._lock:
            if self.url is None and url:
                self.url = url.rstrip("/")
            if self._token is None and token:
                self._token = token
                self._auth = None

    def item(self, key: str, url: str) -> Item:
        """The item that loads the image at ``url``. Raises :class:`RefusedURL`."""
        if not isinstance(url, str) or not url:
            raise RefusedURL(f"no image URL in the task (got {url!r})")
        split = urlsplit(url)
        if split.scheme or split.netloc:
            if self.url is None or _origin(url) != _origin(self.url):
                raise RefusedURL(f"refusing to fetch {url!r}: not on the Label Studio host {self.url or '(not set up)'}")
        elif not url.startswith("/"):
            raise RefusedURL(f"refusing image {url!r}: neither a Label Studio URL nor local files")
        if split.path == _LOCAL_FILES and self.document_root is not None:
            return Item(key, str(self._local_path(url)))
        if self.url is None:
            raise RefusedURL(f"cannot fetch {url!r}: no Label Studio host configured (--label-studio-url) or set up, and no --document-root for local files")
        return _Fetched(key, access=self, url=urljoin(self.url + "/", url))

    def _local_path(self, url: str) -> Path:
        rel = (parse_qs(urlsplit(url).query).get("d") or [""])[0]
        root = self.document_root
        assert root is not None
        path = (root / unquote(rel)).resolve()
        if not rel or os.path.commonpath([root, path]) != str(root):
            raise RefusedURL(f"refusing local file {rel!r}: outside the document root {root}")
        return path

    def fetch(self, url: str) -> bytes:
        """GET ``url`` from the Label Studio host with its token. Raises :class:`ImageReadError`."""
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
        headers = {"Authorization": self._authorization()} if self._token else {}
        try:
            r = self._http.get(url, headers=headers)
        except httpx.HTTPError as e:
            raise ImageReadError(url, f"cannot download: {type(e).__name__}: {e}") from None
        if r.status_code != 200:
            raise ImageReadError(url, f"Label Studio answered HTTP {r.status_code}")
        return r.content

    def client(self) -> Any:
        """A Label Studio :class:`~autolabel.labelstudio.Client` for this host and token (training reads
        the project's annotations with it). Raises ``ValueError`` when no host or token is known yet."""
        from autolabel.labelstudio import Client

        return Client(self.url, self._token)

    def _authorization(self) -> str:
        with self._lock:
            if self._auth is None:
                from autolabel.labelstudio import Client

                # the project's client knows both token kinds (a PAT is exchanged for an access token)
                self._auth = Client(self.url, self._token, retries=1)._authorization()
            return self._auth

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
