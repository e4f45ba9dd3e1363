"""Label Studio round trip: push pre-labels for review, pull the corrections, measure.

:func:`push` creates (or reuses) a project whose labeling config comes from the class
names, and imports one task per image with its pre-labels as a ``prediction``
(per-region ``score``, task ``score`` = mean box score, ``model_version`` = model id),
in priority order (the review queue's, default: least confident first), with
``priority`` and any extra fields (routing queue, scores) in the task ``data`` so
annotators can sort and filter. Images are referenced by URL, by default through Label
Studio's local-files storage (``/data/local-files/?d=...``), never embedded.

Pushing is chunked and **idempotent**: tasks are keyed by the image key
(``data.key``); a key already in the project is updated in place (data fields, the
prediction of this ``model_version``), never imported twice. A push that stops half way
(crash, network) is resumed by running it again. A chunk that fails with a 5xx or a lost
connection is retried only after re-reading the project, so an import the server did
commit before the connection dropped is not repeated.

:func:`pull` reads every submitted annotation back, compares the human's final boxes
with the pre-labels they started from (:func:`autolabel.savings.match_image`), reads
the annotation's ``lead_time`` (seconds the annotator spent) and fits your team's cost
constants (:mod:`autolabel.costfit`). Tasks pushed without pre-labels
(``without_prelabels``) are the from-scratch baseline.

The server URL and API token come from arguments or ``LABEL_STUDIO_URL`` /
``LABEL_STUDIO_API_KEY``; the token is never printed or logged. Both a legacy token
(``Authorization: Token ...``) and a personal access token (a JWT refresh token,
exchanged for short-lived access tokens) work. Transient failures (connection refused
or reset, timeouts, HTTP 429/5xx) are retried with exponential backoff, then reported
as :class:`LabelStudioUnavailable` naming the server.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from autolabel.core import Detections, Results

if TYPE_CHECKING:
    from autolabel.costfit import Measurement

__all__ = [
    "ENV_URL",
    "ENV_TOKEN",
    "ENV_DOCUMENT_ROOT",
    "LabelStudioError",
    "LabelStudioAuthError",
    "LabelStudioUnavailable",
    "LabelConfigError",
    "Client",
    "PushReport",
    "push",
    "pull",
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


class _Transient(Exception):
    """A failure worth retrying (the request may or may not have reached the server)."""

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

    ``url``/``token`` default to ``$LABEL_STUDIO_URL``/``$LABEL_STUDIO_API_KEY``.
    Transient failures are retried ``retries`` times, waiting ``backoff * 2**attempt``
    seconds (at most ``max_backoff``, or the server's ``Retry-After``).
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

    def _send(
        self, method: str, path: str, body: Any, params: Mapping[str, Any] | None, auth: bool = True, renew: bool = True
    ) -> Any:
        """One HTTP exchange. Raises _Transient, LabelStudioAuthError or LabelStudioError."""
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
                ) from None
            if e.code in _RETRY_STATUS:
                ra = e.headers.get("Retry-After") if e.headers else None
                raise _Transient(f"HTTP {e.code} {detail}", float(ra) if ra and ra.isdigit() else None) from None
            raise LabelStudioError(
                f"Label Studio at {self.url}: {method} {path} failed: HTTP {e.code} {detail}"
            ) from None
        except _TRANSIENT_ERRORS as e:
            reason = getattr(e, "reason", e)
            raise _Transient(f"{type(reason).__name__}: {reason}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise LabelStudioError(
                f"{self.url}{path} did not answer JSON: is {self.url} a Label Studio server?"
            ) from None

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Send a request and return the decoded JSON answer, retrying transient failures;
        raises :class:`LabelStudioUnavailable` when they persist."""
        start, attempts = time.monotonic(), self.retries + 1
        for attempt in range(attempts):
            try:
                return self._send(method, path, body, params)
            except _Transient as e:
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
        )

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


# -- project and label config -----------------------------------------------------------------
@dataclass(frozen=True)
class _Control:
    """The project's RectangleLabels control: names to use in regions and the image field."""

    from_name: str
    to_name: str
    image_field: str
    labels: tuple[str, ...]


def _control(project: Mapping[str, Any], where: str) -> _Control:
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
    return _Control(name, c["to_name"][0], str(inputs[0].get("value") or "image"), tuple(c.get("labels") or ()))


def _project(client: Client, project: int | str, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """A project by id, or by exact title; created with a config for ``class_names``
    when given and no project has that title."""
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
        "label_config": labelstudio_config(class_names),
        "sampling": "Sequential sampling",
        "description": "pre-labels pushed by autolabel, in review priority order",
    }
    return client.request("POST", "/api/projects", body)


def _task_state(client: Client, pid: int) -> dict[str, dict[str, Any]]:
    """The project's tasks by image key, as the server holds them now."""
    return {t["data"].get("key"): t for t in _tasks(client, pid) if isinstance(t.get("data"), dict)}


def _tasks(client: Client, project_id: int) -> Iterator[dict[str, Any]]:
    return client.pages("/api/tasks", {"project": project_id, "fields": "all", "resolve_uri": "false"}, "tasks")


# -- push ---------------------------------------------------------------------------------------
@dataclass
class PushReport:
    """What a push did: tasks ``created``, ``updated`` (data or prediction changed),
    ``unchanged``; ``task_ids`` maps image key -> task id."""

    project_id: int
    project_url: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    task_ids: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "project_url": self.project_url,
            "tasks": len(self.task_ids),
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
        }


def _image_root(results: Results) -> str:
    """The folder every image key is relative to (from ``ImageInfo.path``)."""
    roots = set()
    for d in results:
        info = d.image
        if info is None or not info.path:
            raise ValueError(
                f"image {info.key if info else '?'!r} has no file path: local-files URLs need the image files; "
                "pass image_url= (a URL prefix the server can fetch) instead"
            )
        if info.frame_index is not None:
            raise ValueError(f"{info.key!r} is a video frame, not an image file: export the frames, or pass image_url=")
        p = Path(os.path.abspath(info.path)).as_posix()
        key = Path(info.key).as_posix()
        if not p.endswith("/" + key):
            raise ValueError(f"image key {info.key!r} is not the end of its path {info.path}: pass image_root=")
        roots.add(p[: -len(key) - 1])
    if len(roots) != 1:
        raise ValueError(f"images lie under {len(roots)} different roots {sorted(roots)[:3]}: pass image_root=")
    return roots.pop()


def _local_files_prefix(client: Client, project_id: int, image_root: str, document_root: str | None) -> str:
    """``/data/local-files/?d=<image_root relative to the document root>/``, registering
    ``image_root`` as the project's local-files storage (the server serves files only
    from a registered storage)."""
    doc = document_root or os.environ.get(ENV_DOCUMENT_ROOT)
    if not doc:
        raise ValueError(
            f"local-files URLs need the server's LOCAL_FILES_DOCUMENT_ROOT: pass document_root= (--document-root) "
            f"or set {ENV_DOCUMENT_ROOT}; or pass image_url= (a URL prefix)"
        )
    rel = os.path.relpath(os.path.realpath(image_root), os.path.realpath(doc))
    if rel == ".." or rel.startswith("../"):
        raise ValueError(f"images under {image_root} are outside the server's document root {doc}")
    root = os.path.normpath(os.path.join(os.path.abspath(doc), rel))  # as the server sees it
    storages = client.request("GET", "/api/storages/localfiles", params={"project": project_id}) or []
    if not any(
        os.path.commonpath([root, s.get("path") or "/"]) == os.path.normpath(s.get("path") or "/") for s in storages
    ):
        client.request(
            "POST",
            "/api/storages/localfiles",
            {
                "project": project_id,
                "path": root,
                "title": "autolabel images",
                "use_blob_urls": False,
                "description": "images of pushed pre-labels (served, not synced)",
            },
        )
    return "/data/local-files/?d=" + ("" if rel == "." else urllib.parse.quote(Path(rel).as_posix()) + "/")


def _default_order(results: Results) -> list[str]:
    """Least confident first: ascending mean box score (images without boxes first), then key."""
    from autolabel.formats._common import image_score

    return [d.image.key for d in sorted(results, key=lambda d: (image_score(d), d.image.key))]  # type: ignore[union-attr]


def _built_tasks(results: Results, image_root_url: str, extra: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tasks the Label Studio writer of :mod:`autolabel.formats` makes, as JSON would
    read them back (a round trip through ``json`` normalises types and refuses NaN)."""
    from autolabel.formats.labelstudio import labelstudio_tasks

    return [json.loads(json.dumps(t, allow_nan=False)) for t in labelstudio_tasks(results, image_root_url, extra)]


def _adapt(task: dict[str, Any], ctrl: _Control) -> dict[str, Any]:
    """Rename the writer's ``label``/``image`` names to the project's control names."""
    if ctrl.image_field != "image":
        task["data"][ctrl.image_field] = task["data"].pop("image")
    for p in task.get("predictions", []):
        for r in p["result"]:
            r["from_name"], r["to_name"] = ctrl.from_name, ctrl.to_name
    return task


def _canon_result(result: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k != "id"} for r in result], sort_keys=True)


def _apply_label_map(results: Results, label_map: Any) -> Results:
    """``label_map``: ``{our class: project label or None}`` (other classes kept), or a
    class map config (dict with ``mapping``, YAML path) as :class:`~autolabel.classmap.ClassMap` takes."""
    if not label_map:
        return results
    from dataclasses import replace

    from autolabel.classmap import ClassMap

    plain = isinstance(label_map, Mapping) and "mapping" not in label_map
    cmap = ClassMap.load(
        {"mapping": dict(label_map), "keep_unmapped": True} if plain else label_map, results.class_names
    )
    return replace(results, detections=[cmap(d) for d in results], class_names=cmap.target_names)


_ROUTING_FIELDS = ("queue", "review_rank", "p_no_edit", "expected_edit_s", "expected_scratch_s", "reason")


def _routing_plan(
    results: Results, routing: Any, queues: Sequence[str]
) -> tuple[Results, list[str], dict[str, dict[str, Any]], list[str]]:
    """From a routing (a :class:`autolabel.routing.Routing`, its manifest DataFrame or
    ``manifest.csv``): the images of ``queues``, the review queue first in priority order,
    then the scratch queue (pushed without pre-labels), then auto-accepted ones; the
    routing fields as task data (``routing_<field>``); the scratch keys."""
    import pandas as pd

    from autolabel.routing import QUEUES, task_data

    bad = [q for q in queues if q not in QUEUES]
    if bad:
        raise ValueError(f"unknown queues {bad}; choose from {', '.join(QUEUES)}")
    if isinstance(routing, (str, os.PathLike)):
        manifest = pd.read_csv(routing)
    else:
        manifest = getattr(routing, "manifest", routing)
        conf = getattr(getattr(getattr(routing, "policy", None), "config", None), "prelabel_conf", None)
        results = results.filter(conf) if conf is not None else results  # the policy's pre-labels
    missing = [c for c in ("file_name", "queue", "review_rank") if c not in manifest.columns]
    if missing:
        raise ValueError(f"routing manifest lacks columns {missing}: not written by autolabel route?")
    by_name = {d.image.file_name: d for d in results if d.image is not None}
    unknown = [f for f in manifest["file_name"] if f not in by_name]
    if unknown:
        raise ValueError(f"routing manifest names {len(unknown)} images not in the pre-labels: {unknown[:5]}")
    rank = {q: i for i, q in enumerate(QUEUES[1:] + QUEUES[:1])}  # review, scratch, auto_accept
    m = manifest[manifest["queue"].isin(list(queues))].copy()
    m["_q"] = m["queue"].map(rank)
    m = m.sort_values(["_q", "review_rank", "file_name"], kind="stable", na_position="last")
    keys = [by_name[f].image.key for f in m["file_name"]]  # type: ignore[union-attr]
    data = task_data(m[[c for c in _ROUTING_FIELDS if c in m.columns]], keys)
    scratch = [k for k, q in zip(keys, m["queue"]) if q == "scratch"]
    from dataclasses import replace

    return replace(results, detections=[by_name[f] for f in m["file_name"]], failures=[]), keys, data, scratch


def push(
    results: Results,
    project: int | str,
    *,
    url: str | None = None,
    token: str | None = None,
    client: Client | None = None,
    routing: Any = None,
    queues: Sequence[str] = ("review", "scratch"),
    order: Sequence[str] | None = None,
    task_data: Mapping[str, Mapping[str, Any]] | None = None,
    image_url: str | None = None,
    image_root: str | os.PathLike | None = None,
    document_root: str | os.PathLike | None = None,
    label_map: Any = None,
    without_prelabels: Sequence[str] = (),
    chunk_size: int = 200,
    on_chunk: Callable[[PushReport], None] | None = None,
) -> PushReport:
    """Push pre-labels to a Label Studio project (an id, or a title: created if new).

    ``routing`` (a :class:`autolabel.routing.Routing`, its manifest, or the
    ``manifest.csv`` of ``autolabel route``): push the images of ``queues``, the review
    queue first in its priority order, the scratch queue without pre-labels, with the
    routing fields in the task data. Or give ``order``: image keys in priority order
    (keys left out follow least confident first, by mean box score), and ``task_data``:
    image key -> extra task data. ``image_url``: a URL prefix the images' file names
    are appended to; default: local-files URLs under ``document_root`` (the server's
    ``LOCAL_FILES_DOCUMENT_ROOT``, default ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``)
    for images under ``image_root`` (default: derived from the image paths).
    ``label_map``: our class -> the project's label (``None`` drops those boxes), for a
    project whose labels differ. ``without_prelabels``: keys pushed without pre-labels
    (the from-scratch baseline). ``on_chunk`` is called after every chunk.

    Raises :class:`LabelConfigError` (listing the classes) when the project's labels lack
    classes of the pre-labels, :class:`LabelStudioAuthError`,
    :class:`LabelStudioUnavailable`, or ``ValueError`` for bad arguments.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    client = client or Client(url, token)
    if routing is not None:
        if order is not None or task_data is not None or without_prelabels:
            raise ValueError("give routing= or order=/task_data=/without_prelabels=, not both")
        results, order, task_data, without_prelabels = _routing_plan(results, routing, queues)
    results = _apply_label_map(results, label_map)
    keys = [d.image.key for d in results if d.image is not None]
    if len(keys) != len(results) or len(set(keys)) != len(keys):
        raise ValueError("every image needs an ImageInfo with a unique key")
    known, order = set(keys), list(order or [])
    unknown = [k for k in order if k not in known]
    repeated = sorted({k for k in order if order.count(k) > 1}) if len(set(order)) != len(order) else []
    if unknown or repeated:
        raise ValueError(
            f"order must name pre-labeled images once each; unknown: {unknown[:5]}, repeated: {repeated[:5]}"
        )
    listed = set(order)
    order += [k for k in _default_order(results) if k not in listed]
    scratch = set(without_prelabels)
    if scratch - known:
        raise ValueError(f"without_prelabels names images not in the pre-labels: {sorted(scratch - known)[:5]}")

    proj = _project(client, project, results.class_names)
    pid = int(proj["id"])
    where = f"Label Studio at {client.url}, project {pid} ({proj.get('title')!r})"
    ctrl = _control(proj, where)
    used = sorted({n for d in results for n in d.labels})
    missing = [n for n in used if n not in ctrl.labels]
    if missing:
        raise LabelConfigError(
            f"{where}: the labeling config lacks {len(missing)} classes of the pre-labels: {missing}; "
            f"it has {list(ctrl.labels)}. Add them to the project, or pass label_map= (--label-map) "
            "to map them onto its labels (null drops them)"
        )
    if image_url is None:
        root = str(image_root) if image_root is not None else _image_root(results)
        image_url = _local_files_prefix(client, pid, root, None if document_root is None else str(document_root))
    rank = {k: i + 1 for i, k in enumerate(order)}
    extra = {k: {**(task_data or {}).get(k, {}), "priority": rank[k]} for k in keys}
    by_key = {t["data"]["key"]: _adapt(t, ctrl) for t in _built_tasks(results, image_url, extra)}
    for k in scratch:
        by_key[k]["predictions"] = []

    report = PushReport(pid, f"{client.url}/projects/{pid}")
    state = _task_state(client, pid)
    for start in range(0, len(order), chunk_size):
        chunk = [by_key[k] for k in order[start : start + chunk_size]]
        outcome: dict[str, str] = {}
        for attempt in range(client.retries + 1):
            try:
                _push_chunk(client, pid, chunk, state, outcome, results.model_id)
                break
            except _Transient as e:
                if attempt == client.retries:
                    raise LabelStudioUnavailable(f"{where}: push failed after {attempt + 1} tries: {e}") from None
                wait = client.delay(attempt, e.retry_after)
                log.warning("%s: %s; re-reading the project and retrying the chunk in %.1f s", where, e, wait)
                time.sleep(wait)
                state = _task_state(client, pid)
        for key, what in outcome.items():
            setattr(report, what, getattr(report, what) + 1)
            report.task_ids[key] = int(state[key]["id"])
        report.chunks += 1
        if on_chunk is not None:
            on_chunk(report)
    if results.model_id and len(scratch) < len(keys) and proj.get("model_version") != results.model_id:
        client.request("PATCH", f"/api/projects/{pid}", {"model_version": results.model_id})
    return report


def _push_chunk(
    client: Client, pid: int, chunk: list[dict[str, Any]], state: dict[str, Any], outcome: dict[str, str], model_id: str
) -> None:
    """Bring one chunk of tasks to the wanted state, recording per key ``created``,
    ``updated`` or ``unchanged`` in ``outcome`` (kept across retries of the chunk).
    Imports are sent once: a transient failure propagates and the caller re-reads the
    project before trying again."""
    new = [t for t in chunk if t["data"]["key"] not in state]
    if new:
        for t in new:  # created by this push even if the answer is lost and a re-read finds them
            outcome[t["data"]["key"]] = "created"
        out = client._send("POST", f"/api/projects/{pid}/import", new, {"return_task_ids": "true"})
        for t, tid in zip(new, out["task_ids"]):
            state[t["data"]["key"]] = {"id": tid, "data": t["data"], "predictions": t["predictions"]}
    fresh = {id(t) for t in new}
    add: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (task state, prediction to create)
    for t in chunk:
        if id(t) in fresh:
            continue
        key = t["data"]["key"]
        cur = state[key]
        tid = int(cur["id"])
        changed = False
        if any(cur["data"].get(k) != v for k, v in t["data"].items()):
            merged = {**cur["data"], **t["data"]}
            client.request("PATCH", f"/api/tasks/{tid}", {"data": merged})
            cur["data"], changed = merged, True
        for want in t["predictions"]:
            have = [p for p in cur.get("predictions") or [] if p.get("model_version") == model_id]
            if not have:
                add.append((cur, {**want, "task": tid}))
                changed = True
            elif (
                _canon_result(have[-1]["result"]) != _canon_result(want["result"])
                or have[-1].get("score") != want["score"]
            ):
                client.request(
                    "PATCH", f"/api/predictions/{have[-1]['id']}", {"result": want["result"], "score": want["score"]}
                )
                have[-1].update(result=want["result"], score=want["score"])
                changed = True
        if changed and outcome.get(key) != "created":
            outcome[key] = "updated"
        outcome.setdefault(key, "unchanged")
    if add:
        client._send("POST", f"/api/projects/{pid}/import/predictions", [p for _, p in add], None)
        for cur, p in add:
            cur.setdefault("predictions", []).append(p)


# -- pull ---------------------------------------------------------------------------------------
def _one(task: Mapping[str, Any], kind: str, item: Mapping[str, Any], names: Sequence[str]) -> Detections:
    from autolabel.formats import read_labelstudio

    res = read_labelstudio([{"id": task["id"], "data": task["data"], kind: [item]}], class_names=names, use=kind)
    return res.detections[0]


def pull(
    project: int | str,
    *,
    url: str | None = None,
    token: str | None = None,
    client: Client | None = None,
    model_version: str | None = None,
    **options: Any,
) -> Measurement:
    """Read a project's submitted annotations and measure them against the pre-labels.

    One row per submitted (not skipped) annotation: the edits that turn the pre-labels
    the annotator started from into the annotation's boxes, and its ``lead_time``. The
    pre-labels are the annotation's ``parent_prediction`` when Label Studio recorded it,
    else the task's newest prediction (only predictions of ``model_version`` when
    given). A task without one is a from-scratch row (every box drawn). The latest
    annotation of each task is the ground truth, its prediction the pre-labels.
    ``options`` go to :func:`autolabel.costfit.measure`: ``profile`` (the base cost
    profile), ``fit`` (default True: fit the cost constants to the lead times),
    ``fixed``, ``iou_accept``, ``iou_min``, ``n_boot``. ``.save(out_dir)`` of the result
    writes COCO, the edit table, the fit and a cost profile YAML.
    """
    from autolabel.costfit import measure

    client = client or Client(url, token)
    proj = _project(client, project if isinstance(project, int) else str(project))
    pid = int(proj["id"])
    ctrl = _control(proj, f"Label Studio at {client.url}, project {pid}")
    names = ctrl.labels
    gt_dets, pre_dets, pairs = [], [], []
    for task in _tasks(client, pid):
        done = sorted(
            (a for a in task.get("annotations") or [] if not a.get("was_cancelled")),
            key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a["id"]),
        )
        if not done:
            continue
        preds = [
            p for p in task.get("predictions") or [] if model_version is None or p.get("model_version") == model_version
        ]
        preds.sort(key=lambda p: (str(p.get("created_at") or ""), p["id"]))
        by_id = {p["id"]: p for p in preds}
        task = {**task, "data": {**task["data"], "image": task["data"].get(ctrl.image_field)}}
        for a in done:
            gt = _one(task, "annotations", a, names)
            started = by_id.get(a.get("parent_prediction")) or (preds[-1] if preds else None)
            pre = _one(task, "predictions", started, names) if started else Detections.empty(names, gt.image)
            lead = a.get("lead_time")
            pairs.append(
                (
                    {
                        "task_id": task["id"],
                        "annotation_id": a["id"],
                        "image": gt.image.key,  # type: ignore[union-attr]
                        "annotator": a.get("completed_by"),
                        "prediction_id": started["id"] if started else None,
                        "seconds": float(lead) if isinstance(lead, (int, float)) and math.isfinite(lead) else math.nan,
                    },
                    pre,
                    gt,
                    started is not None,
                )
            )
        gt_dets.append(gt)
        pre_dets.append(pre)
    model = str(model_version or proj.get("model_version") or "")
    return measure(
        pairs,
        Results(gt_dets, names),
        Results(pre_dets, names, model),
        source=f"{client.url}/projects/{pid}",
        **options,
    )
