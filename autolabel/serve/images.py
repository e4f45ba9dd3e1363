"""Which task image URLs the backend may read, and how.

A task's image URL is attacker-controlled text: anyone who can import a task can put
any address in it. The backend therefore reads only

- Label Studio local-files URLs (``/data/local-files/?d=<relative path>``), from the
  ``document_root`` on disk when one is configured (the server's
  ``LOCAL_FILES_DOCUMENT_ROOT``; the path must stay inside it), else from the server;
- URLs on the Label Studio host configured at start (``--label-studio-url`` or
  ``$LABEL_STUDIO_URL``: relative ``/data/...`` URLs, or absolute ones with the same
  scheme, host and port), with the server's token. The host is never taken from a
  request: ``/setup``'s ``hostname`` is ignored, and without a configured host only
  local files are read.

Any other URL (another host, ``file:``, a path outside the document root, a URL that
does not parse or holds control characters) is refused and that task fails with the
reason; nothing is fetched.

Decoding is bounded too: an image over ``max_pixels`` is refused from its header (a
JPEG is decoded at 1/2, 1/4 or 1/8 scale when that fits), and a :class:`PixelBudget`
caps the pixels decoded at once, so a request of huge images cannot exhaust memory.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import numpy as np

from autolabel.core import ImageInfo
from autolabel.sources import Item
from autolabel.io.images import ImageReadError, load_image_draft, open_pil

__all__ = ["ImageAccess", "RefusedURL", "PixelBudget", "MAX_IMAGE_PIXELS", "DECODE_PIXELS"]

_LOCAL_FILES = "/data/local-files/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Default limit of one image's pixels (40 MP, e.g. 7300 x 5500; Pillow's bomb limit is ~179 MP).
MAX_IMAGE_PIXELS = 40_000_000
#: Default limit of the pixels decoded at once by one request's decode threads.
DECODE_PIXELS = 40_000_000


class RefusedURL(ValueError):
    """A task image URL the backend will not read (not the Label Studio host, or outside local files)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    return u.scheme, (u.hostname or "").lower(), port


class PixelBudget:
    """A counting semaphore over pixels: decode threads take an image's pixels before
    decoding and give them back when the decode ends. One image larger than the whole
    budget waits until it can decode alone."""

    def __init__(self, pixels: int):
        self.total = int(pixels)
        self.free = self.total
        self._cond = threading.Condition()

    def take(self, pixels: int) -> int:
        """Wait until ``pixels`` (at most the whole budget) are free and take them; returns what was taken."""
        n = min(int(pixels), self.total)
        with self._cond:
            self._cond.wait_for(lambda: self.free >= n)
            self.free -= n
        return n

    def give(self, pixels: int) -> None:
        with self._cond:
            self.free += pixels
            self._cond.notify_all()


@dataclass
class _Local(Item):
    """A local file decoded under the access's pixel limits."""

    access: Any = field(default=None, repr=False)

    def load(self, draft: tuple[int, int] | None = None) -> tuple[np.ndarray, ImageInfo]:
        """As :meth:`Item.load`, within the per-image and per-request pixel limits."""
        arr, (w, h) = self.access.decode(self.path, draft, self.key)
        return arr, ImageInfo(self.key, w, h, self.path)


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
            del data
            try:
                arr, (w, h) = self.access.decode(f.name, draft, self.key)
            except ImageReadError as e:
                raise ImageReadError(_redact(self.url), e.reason) from e
        return arr, ImageInfo(self.key, w, h, None)


def _redact(url: str) -> str:
    """``url`` without its query string's values (they may hold tokens)."""
    from autolabel.serve.redact import redact

    return redact(url)


class ImageAccess:
    """Turns task image URLs into loadable :class:`~autolabel.sources.Item`s under the rules above.

    Args:
        label_studio_url: the Label Studio server (``http://host:port``); ``None`` until
            ``/setup`` tells it (see :meth:`set_host`).
        token: its API token (legacy or personal access token), sent only to that host.
        document_root: the server's local-files document root, read directly from disk.
        timeout: seconds per HTTP download.
        max_pixels: the most pixels one image may decode to (larger ones are refused from
            their header; JPEGs decode at a reduced scale when that fits).
        decode_pixels: the most pixels decoded at once (a :class:`PixelBudget`).
        decode_threads: threads decoding images ahead of inference (fixed: not one per core).
    """

    def __init__(
        self,
        label_studio_url: str | None = None,
        token: str | None = None,
        document_root: str | os.PathLike | None = None,
        timeout: float = 30.0,
        max_pixels: int = MAX_IMAGE_PIXELS,
        decode_pixels: int = DECODE_PIXELS,
        decode_threads: int = 2,
    ):
        if max_pixels <= 0 or decode_pixels <= 0 or decode_threads <= 0:
            raise ValueError(f"max_pixels, decode_pixels and decode_threads must be > 0, got {max_pixels}, "
                             f"{decode_pixels} and {decode_threads}")
        self.decode_threads = int(decode_threads)
        self.url = label_studio_url.rstrip("/") if label_studio_url else None
        self._token = token
        self.document_root = Path(document_root).resolve() if document_root else None
        self.timeout = timeout
        self.max_pixels = int(max_pixels)
        self.budget = PixelBudget(decode_pixels)
        self._http: Any = None
        self._auth: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # the token is never shown
        return f"ImageAccess(host={self.url}, document_root={self.document_root}, max_pixels={self.max_pixels})"

    def set_host(self, url: str | None, token: str | None) -> None:
        """What ``/setup`` sent. The host is never taken from a request (whoever calls
        ``/setup`` first would otherwise receive the token): ``url`` is ignored. The token
        is used, for the configured host only, where none was configured."""
        with self._lock:
            if self.url is not None and self._token is None and token:
                self._token = token
                self._auth = None

    def item(self, key: str, url: Any) -> Item:
        """The item that loads the image at ``url``. Raises :class:`RefusedURL` (also for
        a URL that does not parse: one bad task never fails the others)."""
        if not isinstance(url, str) or not url:
            raise RefusedURL(f"no image URL in the task (got {type(url).__name__})")
        shown = _redact(url)[:200]
        if _CONTROL.search(url):
            raise RefusedURL(f"refusing image URL {shown!r}: it holds control characters")
        try:
            split = urlsplit(url)
            if split.scheme or split.netloc:
                if self.url is None or _origin(url) != _origin(self.url):
                    raise RefusedURL(f"refusing to fetch {shown!r}: not on the Label Studio host "
                                     f"{self.url or '(none configured: --label-studio-url or $LABEL_STUDIO_URL)'}")
            elif not url.startswith("/"):
                raise RefusedURL(f"refusing image {shown!r}: neither a Label Studio URL nor local files")
            if split.path == _LOCAL_FILES and self.document_root is not None:
                return _Local(key, str(self._local_path(url)), access=self)
        except ValueError as e:  # urllib: bad port, unbalanced brackets, ...
            if isinstance(e, RefusedURL):
                raise
            raise RefusedURL(f"refusing image URL {shown!r}: it does not parse ({e})") from None
        if self.url is None:
            raise RefusedURL(
                f"cannot fetch {shown!r}: no Label Studio URL is configured (--label-studio-url or "
                "$LABEL_STUDIO_URL; serve never takes one from a request), so only local files are read "
                "(--document-root)"
            )
        return _Fetched(key, access=self, url=urljoin(self.url + "/", url))

    def _local_path(self, url: str) -> Path:
        rel = (parse_qs(urlsplit(url).query).get("d") or [""])[0]
        root = self.document_root
        assert root is not None
        if "\0" in unquote(rel):
            raise RefusedURL(f"refusing local file {rel[:200]!r}: it holds a NUL character")
        path = (root / unquote(rel)).resolve()
        if not rel or os.path.commonpath([root, path]) != str(root):
            raise RefusedURL(f"refusing local file {rel[:200]!r}: outside the document root {root}")
        return path

    def decode(self, path: str, draft: tuple[int, int] | None, name: str) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode ``path`` within the pixel limits: refused from its header when over
        ``max_pixels`` (see :func:`~autolabel.io.images.load_image_draft`), and decoded
        once its pixels are free in the :class:`PixelBudget` (decodes, the peak of memory,
        never hold more at once; each decode thread then holds at most one image until
        the detector's letterbox shrinks it).

        Raises:
            ImageReadError: unreadable, or too many pixels (naming ``name``).
        """
        try:
            with open_pil(path) as im:
                w, h = im.size
        except Exception:  # noqa: BLE001 - load_image_draft below names the file and the reason
            w = h = 0
        taken = self.budget.take(min(w * h, self.max_pixels))
        try:  # given back when the decode ends (not when the array dies: that may wait for the garbage collector)
            return load_image_draft(path, draft, self.max_pixels)
        except ImageReadError as e:
            raise ImageReadError(name, e.reason) from None
        finally:
            self.budget.give(taken)

    def fetch(self, url: str) -> bytes:
        """GET ``url`` from the Label Studio host with its token. Raises :class:`ImageReadError`."""
        import httpx

        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
        headers = {"Authorization": self._authorization()} if self._token else {}
        try:
            r = self._http.get(url, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as e:  # a URL httpx refuses is the task's fault
            raise ImageReadError(_redact(url), f"cannot download: {type(e).__name__}: {_redact(str(e))}") from None
        if r.status_code != 200:
            raise ImageReadError(_redact(url), f"Label Studio answered HTTP {r.status_code}")
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
