"""The Label Studio REST client: authentication, retries, pages, projects and their config.

The server URL and API token come from arguments or ``LABEL_STUDIO_URL`` /
``LABEL_STUDIO_API_KEY``; the token is never printed or logged. Both a legacy token
(``Authorization: Token ...``) and a personal access token (a JWT refresh token,
exchanged for short-lived access tokens) work. :meth:`Client.request` retries
transient failures (connection refused or reset, timeouts, HTTP 429/5xx) with
exponential backoff, then raises :class:`LabelStudioUnavailable` naming the server;
:meth:`Client.request_once` sends one exchange and raises :class:`TransientError` for
the caller to decide (a non-idempotent import must re-read the project before retrying).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

__all__ = [
    "ENV_URL",
    "ENV_TOKEN",
    "ENV_DOCUMENT_ROOT",
    "LabelStudioError",
    "LabelStudioAuthError",
    "LabelStudioUnavailable",
    "LabelConfigError",
    "TransientError",
    "Client",
    "Control",
    "control",
    "get_project",
    "tasks",
    "task_state",
]

log = logging.getLogger(__name__)

ENV_URL = "LABEL_STUDIO_URL"
ENV_TOKEN = "LABEL_STUDIO_API_KEY"
ENV_DOCUMENT_ROOT = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_ERRORS = (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException)


class LabelStudioError(RuntimeError):
    """A request Label Studio refused; the message names the server and the reason."""


class LabelStudioAuthError(LabelStudioError):
    """The server rejected the API token (HTTP 401/403)."""


class LabelStudioUnavailable(LabelStudioError):
    """The server could not be reached, or kept failing, after every retry."""


class LabelConfigError(LabelStudioError, ValueError):
    """The project's labeling config cannot hold the pre-labels (e.g. missing classes)."""


class TransientError(LabelStudioError):
    """A failure worth retrying: the request may or may not have reached the server.
    ``retry_after``: the server's ``Retry-After`` in seconds, when it sent one."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def _server_detail(body: bytes) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return "(not a Label Studio API response)" if text.lstrip().startswith("<") else text[:300]
    if not isinstance(payload, dict):
        return str(payload)[:300]
    parts = [str(payload.get("detail") or "")]
    if payload.get("validation_errors"):
        parts.append(json.dumps(payload["validation_errors"], ensure_ascii=False))
    return " ".join(p for p in parts if p)[:500] or str(payload)[:300]


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class Client:
    """A thin JSON client for the Label Studio REST API with retries.

    Args:
        url: the server (default: ``$LABEL_STUDIO_URL``).
        token: a legacy API token or a personal access token (default:
            ``$LABEL_STUDIO_API_KEY``); never shown in ``repr`` or logs.
        retries: retries of a transient failure, waiting ``backoff * 2**attempt``
            seconds (at most ``max_backoff``, or the server's ``Retry-After``).
        backoff, max_backoff: seconds.
        timeout: seconds per request.

    Raises:
        ValueError: no URL or token, or negative ``retries``/``backoff``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 120.0,
    ):
        url = url or os.environ.get(ENV_URL)
        token = token or os.environ.get(ENV_TOKEN)
        if not url:
            raise ValueError(f"no Label Studio URL: pass url= (--url) or set {ENV_URL}")
        if not token:
            raise ValueError(f"no Label Studio API token: pass token= or set {ENV_TOKEN}")
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must not be negative")
        self.url = url.rstrip("/")
        self._token = token
        self._auth: str | None = None
        self.retries, self.backoff, self.max_backoff, self.timeout = retries, backoff, max_backoff, timeout

    def __repr__(self) -> str:  # the token is never shown
        return f"Client({self.url})"

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(self.max_backoff, retry_after)
        return min(self.max_backoff, self.backoff * 2**attempt)

    def _authorization(self) -> str:
        if self._auth is None:
            if _is_jwt(self._token):  # personal access token: a refresh token for short-lived access tokens
                out = self._send("POST", "/api/token/refresh/", {"refresh": self._token}, None, auth=False)
                self._auth = "Bearer " + out["access"]
            else:
                self._auth = "Token " + self._token
        return self._auth

    def request_once(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One HTTP exchange, never retried.

        Args:
            method: ``GET``, ``POST``, ``PATCH``, ...
            path: the API path (``/api/projects``).
            body: a JSON-serialisable request body (``None``: none).
            params: query parameters.

        Returns:
            The decoded JSON answer (``None`` for an empty one).

        Raises:
            TransientError: a lost connection, a timeout or HTTP 429/5xx (the request
                may have been carried out).
            LabelStudioAuthError: the token was rejected.
            LabelStudioError: any other refusal, or an answer that is not JSON.
        """
        return self._send(method, path, body, params)

    def _send(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None, auth: bool = True, renew: bool = True
    ) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = self._authorization()
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            detail = _server_detail(e.read())
            if e.code in (401, 403):
                if auth and renew and e.code == 401 and self._auth and self._auth.startswith("Bearer "):
                    self._auth = None  # the access token expired: get a new one, once
                    return self._send(method, path, body, params, auth, renew=False)
                hint = (
                    " (legacy tokens are disabled in this organization: use a personal access token)"
                    if "legacy token" in detail
                    else ""
                )
                what = "rejected the API token" if e.code == 401 else "refused this token's user"
                raise LabelStudioAuthError(
                    f"Label Studio at {self.url} {what}: HTTP {e.code} {detail.rstrip('.')}{hint}. "
                    f"Check the token passed (token=, or ${ENV_TOKEN})"
                ) from e
            if e.code in _RETRY_STATUS:
                ra = e.headers.get("Retry-After") if e.headers else None
                raise TransientError(f"HTTP {e.code} {detail}", float(ra) if ra and ra.isdigit() else None) from e
            raise LabelStudioError(
                f"Label Studio at {self.url}: {method} {path} failed: HTTP {e.code} {detail}"
            ) from e
        except _TRANSIENT_ERRORS as e:
            reason = getattr(e, "reason", e)
            raise TransientError(f"{type(reason).__name__}: {reason}") from e
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise LabelStudioError(
                f"{self.url}{path} did not answer JSON: is {self.url} a Label Studio server?"
            ) from e

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """:meth:`request_once`, retrying transient failures with backoff.

        Returns:
            The decoded JSON answer.

        Raises:
            LabelStudioUnavailable: the failures persisted (the last one is its cause).
            LabelStudioAuthError, LabelStudioError: as :meth:`request_once`.
        """
        start, attempts = time.monotonic(), self.retries + 1
        for attempt in range(attempts):
            try:
                return self._send(method, path, body, params)
            except TransientError as e:
                last = e
                if attempt + 1 < attempts:
                    wait = self.delay(attempt, e.retry_after)
                    log.warning(
                        "Label Studio at %s: %s %s: %s; retry %d/%d in %.1f s",
                        self.url,
                        method,
                        path,
                        e,
                        attempt + 1,
                        self.retries,
                        wait,
                    )
                    time.sleep(wait)
        raise LabelStudioUnavailable(
            f"Label Studio at {self.url} is unavailable: {method} {path}: {last} "
            f"(tried {attempts} times over {time.monotonic() - start:.1f} s)"
        ) from last

    def pages(self, path: str, params: Mapping[str, Any], key: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (``key``: the list's field in each page)."""
        page, seen = 1, 0
        while True:
            out = self.request("GET", path, params={**params, "page": page, "page_size": page_size})
            items = out.get(key) or []
            yield from items
            seen += len(items)
            total = out.get("total", out.get("count"))
            if not items or len(items) < page_size or (total is not None and seen >= total):
                return
            page += 1


# -- project and label config ---------------------------------------------------------------
@dataclass(frozen=True)
class Control:
    """The project's RectangleLabels control: names to use in regions and the image field."""

    from_name: str
    to_name: str
    image_field: str
    labels: tuple[str, ...]


def control(project: Mapping[str, Any], where: str) -> Control:
    """The one ``<RectangleLabels>`` control of a project (``where`` names it in errors).

    Raises:
        LabelConfigError: none, or several.
    """
    parsed = project.get("parsed_label_config") or {}
    rect = [(n, c) for n, c in parsed.items() if c.get("type") == "RectangleLabels"]
    if not rect:
        raise LabelConfigError(f"{where}: the labeling config has no <RectangleLabels> control for boxes")
    if len(rect) > 1:
        raise LabelConfigError(
            f"{where}: the labeling config has several <RectangleLabels> controls: {[n for n, _ in rect]}"
        )
    name, c = rect[0]
    inputs = c.get("inputs") or [{}]
    return Control(name, c["to_name"][0], str(inputs[0].get("value") or "image"), tuple(c.get("labels") or ()))


def get_project(client: Client, project: int | str, class_names: Sequence[str] | None = None,
                label_config: str | None = None, description: str = "pre-labels pushed by autolabel, in review "
                "priority order", keypoints: Any = None) -> dict[str, Any]:
    """A project by id, or by exact title; created when ``class_names`` are given and no
    project has that title, with ``label_config`` (default: the image labeling config of
    :func:`~autolabel.formats.labelstudio_config` for ``class_names``, with a
    ``KeyPointLabels`` control for a :class:`~autolabel.keypoints.KeypointSpec` ``keypoints``)
    and ``description``."""
    if isinstance(project, int):
        return client.request("GET", f"/api/projects/{project}")
    found = [p for p in client.pages("/api/projects", {"title": project}, "results") if p.get("title") == project]
    if len(found) > 1:
        raise LabelStudioError(
            f"Label Studio at {client.url}: {len(found)} projects are titled {project!r} "
            f"(ids {[p['id'] for p in found]}); pass the project id"
        )
    if found:
        return client.request("GET", f"/api/projects/{found[0]['id']}")
    if class_names is None:
        raise LabelStudioError(f"Label Studio at {client.url}: no project titled {project!r}")
    from autolabel.formats import labelstudio_config

    body = {
        "title": project,
        "label_config": label_config or labelstudio_config(class_names, keypoints=keypoints),
        "sampling": "Sequential sampling",
        "description": description,
    }
    return client.request("POST", "/api/projects", body)


def task_state(client: Client, pid: int) -> dict[str, dict[str, Any]]:
    """The project's tasks by image key, as the server holds them now."""
    return {t["data"].get("key"): t for t in tasks(client, pid) if isinstance(t.get("data"), dict)}


def tasks(client: Client, project_id: int) -> Iterator[dict[str, Any]]:
    """Every task of a project, with its annotations and predictions, as stored."""
    return client.pages("/api/tasks", {"project": project_id, "fields": "all", "resolve_uri": "false"}, "tasks")
