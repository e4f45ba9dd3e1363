"""Push pre-labels to a Label Studio project, in review priority order, idempotently.

:func:`push` creates (or reuses) a project whose labeling config comes from the class
names, and imports one task per image with its pre-labels as a ``prediction``
(per-region ``score``, task ``score`` = mean box score, ``model_version`` = model id),
in priority order (the review queue's, default: least confident first), with
``priority`` and any extra fields (routing queue, scores) in the task ``data`` so
annotators can sort and filter. A box with ``Detections.data["certified"]`` true is a
region with ``meta: {"certified": true, "text": ["certified"]}`` (shown in the region's
details) and the task data counts them (``certified_boxes``), so annotators can tell
certified boxes from uncertain ones. Images are referenced by URL, by default through
Label Studio's local-files storage (``/data/local-files/?d=...``), never embedded.

Only pre-labels are sent: with a routing, the boxes scoring below the policy's
pre-label threshold (``prelabel_conf``) are dropped; a routing manifest that does not
say its threshold is refused unless ``prelabel_conf`` is given.

Pushing is chunked and **idempotent**: tasks are keyed by the image key
(``data.key``); a key already in the project is updated in place (data fields, the
prediction of this ``model_version``), never imported twice. A push that stops half way
(crash, network) is resumed by running it again. A chunk that fails with a 5xx or a lost
connection is retried only after re-reading the project, so an import the server did
commit before the connection dropped is not repeated.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from autolabel.core import Results
from autolabel.labelstudio.client import (
    ENV_DOCUMENT_ROOT, Client, Control, LabelConfigError, LabelStudioUnavailable, TransientError, control,
    get_project, task_state,
)
from autolabel.labelstudio.plan import (
    LabelMap, Plan, PushOptions, RoutingLike, apply_label_map, order_plan, routing_plan,
)

__all__ = ["PushOptions", "PushReport", "push", "RoutingLike", "LabelMap"]

log = logging.getLogger(__name__)


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
        """JSON-ready counts (``tasks`` = tasks this push brought to the wanted state)."""
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


def _built_tasks(results: Results, image_root_url: str, extra: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tasks the Label Studio writer of :mod:`autolabel.formats` makes, as JSON would
    read them back (a round trip through ``json`` normalises types and refuses NaN)."""
    from autolabel.formats.labelstudio import labelstudio_tasks

    return [json.loads(json.dumps(t, allow_nan=False)) for t in labelstudio_tasks(results, image_root_url, extra)]


def _adapt(task: dict[str, Any], ctrl: Control) -> dict[str, Any]:
    """Rename the writer's ``label``/``image`` names to the project's control names."""
    if ctrl.image_field != "image":
        task["data"][ctrl.image_field] = task["data"].pop("image")
    for p in task.get("predictions", []):
        for r in p["result"]:  # box regions go to the project's RectangleLabels; keypoints keep their control
            r["from_name"] = ctrl.from_name if r["type"] == "rectanglelabels" else r["from_name"]
            r["to_name"] = ctrl.to_name
    return task


def _canon_result(result: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps([{k: v for k, v in r.items() if k != "id"} for r in result], sort_keys=True)


def _check_labels(results: Results, ctrl: Control, where: str) -> None:
    used = sorted({n for d in results for n in d.labels})
    missing = [n for n in used if n not in ctrl.labels]
    if missing:
        raise LabelConfigError(
            f"{where}: the labeling config lacks {len(missing)} classes of the pre-labels: {missing}; "
            f"it has {list(ctrl.labels)}. Add them to the project, or pass label_map= (--label-map) "
            "to map them onto its labels (null drops them)"
        )


def _wanted(plan: Plan, ctrl: Control, image_url: str) -> dict[str, dict[str, Any]]:
    """The task each key should be, in the project's control names."""
    rank = {k: i + 1 for i, k in enumerate(plan.order)}
    extra = {k: {**plan.task_data.get(k, {}), "priority": r} for k, r in rank.items()}
    by_key = {t["data"]["key"]: _adapt(t, ctrl) for t in _built_tasks(plan.results, image_url, extra)}
    for k in plan.scratch:
        by_key[k]["predictions"] = []
    return by_key


def push(
    results: Results,
    project: int | str,
    *,
    url: str | None = None,
    token: str | None = None,
    client: Client | None = None,
    options: PushOptions | None = None,
    **kwargs: Any,
) -> PushReport:
    """Push pre-labels to a Label Studio project (an id, or a title: created if new).

    Args:
        results: the predictions, one :class:`~autolabel.core.Detections` per image.
        project: project id, or exact title (created with a config for the classes).
        url, token: the server and API token (default: ``$LABEL_STUDIO_URL``,
            ``$LABEL_STUDIO_API_KEY``); or give ``client``.
        options: what to send and how (:class:`~autolabel.labelstudio.plan.PushOptions`:
            routing or order, pre-label threshold, image URLs, label map, chunk size).
        kwargs: :class:`PushOptions` fields set on top of ``options``
            (``push(r, "p", routing="R/manifest.csv", chunk_size=100)``).

    Returns:
        A :class:`PushReport`.

    Raises:
        TypeError: a keyword that is no option (named).
        LabelConfigError: the project's labels lack classes of the pre-labels (listed).
        LabelStudioAuthError: the token was rejected.
        LabelStudioUnavailable: the server kept failing (the last failure is the cause).
        ValueError: bad options (checked before any request), a routing manifest
            without a pre-label threshold.
    """
    o = PushOptions.build(options, "push()", **kwargs)
    client = client or Client(url, token)
    if o.routing is not None:
        plan = routing_plan(results, o.routing, o.queues, o.prelabel_conf)
    else:
        plan = order_plan(results, o.order, o.task_data, o.without_prelabels, o.prelabel_conf)
    plan.results = apply_label_map(plan.results, o.label_map)

    proj = get_project(client, project, plan.results.class_names, keypoints=plan.results.keypoint_spec)
    pid = int(proj["id"])
    where = f"Label Studio at {client.url}, project {pid} ({proj.get('title')!r})"
    ctrl = control(proj, where)
    _check_labels(plan.results, ctrl, where)
    image_url = o.image_url
    if image_url is None:
        root = str(o.image_root) if o.image_root is not None else _image_root(plan.results)
        image_url = _local_files_prefix(client, pid, root, None if o.document_root is None else str(o.document_root))
    report = _send_chunks(client, pid, where, plan, _wanted(plan, ctrl, image_url), o.chunk_size, o.on_chunk)
    model_id = plan.results.model_id
    if model_id and len(plan.scratch) < len(plan.order) and proj.get("model_version") != model_id:
        client.request("PATCH", f"/api/projects/{pid}", {"model_version": model_id})
    return report


def _send_chunks(
    client: Client,
    pid: int,
    where: str,
    plan: Plan,
    by_key: dict[str, dict[str, Any]],
    chunk_size: int,
    on_chunk: Callable[[PushReport], None] | None,
) -> PushReport:
    """Bring the project to the wanted tasks, chunk after chunk; a chunk that fails
    transiently is retried after re-reading the project."""
    report = PushReport(pid, f"{client.url}/projects/{pid}")
    state = task_state(client, pid)
    for start in range(0, len(plan.order), chunk_size):
        chunk = [by_key[k] for k in plan.order[start : start + chunk_size]]
        outcome: dict[str, str] = {}
        for attempt in range(client.retries + 1):
            try:
                _push_chunk(client, pid, chunk, state, outcome, plan.results.model_id)
                break
            except TransientError as e:
                if attempt == client.retries:
                    raise LabelStudioUnavailable(f"{where}: push failed after {attempt + 1} tries: {e}") from e
                wait = client.delay(attempt, e.retry_after)
                log.warning("%s: %s; re-reading the project and retrying the chunk in %.1f s", where, e, wait)
                time.sleep(wait)
                state = task_state(client, pid)
        for key, what in outcome.items():
            setattr(report, what, getattr(report, what) + 1)
            report.task_ids[key] = int(state[key]["id"])
        report.chunks += 1
        if on_chunk is not None:
            on_chunk(report)
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
        out = client.request_once("POST", f"/api/projects/{pid}/import", new, {"return_task_ids": "true"})
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
        client.request_once("POST", f"/api/projects/{pid}/import/predictions", [p for _, p in add])
        for cur, p in add:
            cur.setdefault("predictions", []).append(p)
