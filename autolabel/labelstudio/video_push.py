"""Push tracked pre-labels to Label Studio as video tasks.

One task per sequence, in Label Studio's video object tracking convention: the video in
``data.video``, each track one ``videorectangle`` region of keyframes
(:func:`autolabel.formats.labelstudio_video.video_tasks`), in a project whose labeling
config is :func:`~autolabel.formats.labelstudio_video.labelstudio_video_config`.
Pushing again skips the sequences the project already holds (``data.sequence``).

CVAT: write ``--format cvat-video`` and upload each ``<sequence>.xml`` to the task made
from that video (CVAT's "Upload annotations", format "CVAT 1.1"): CVAT reads the tracks,
keyframes, ``outside`` and ``occluded`` as written (see :mod:`autolabel.formats.cvat_video`).
There is no CVAT server on the machines this project is tested on, so no code here talks
to CVAT's API.
"""

from __future__ import annotations

from typing import Any

from autolabel.core import Results
from autolabel.formats.labelstudio_video import labelstudio_video_config, video_tasks
from autolabel.video.keyframes import TAU
from autolabel.labelstudio import Client, LabelStudioError

__all__ = ["push_video"]


def push_video(
    results: Results,
    project: int | str,
    *,
    url: str | None = None,
    token: str | None = None,
    client: Client | None = None,
    fps: float | None = None,
    video_url: str = "/data/local-files/?d={name}.mp4",
    tau: float | None = TAU,
) -> dict[str, Any]:
    """Push every sequence of ``results`` (boxes with ``track_id``) as a video task.

    Args:
        results: tracked frames of one or more sequences.
        project: a project id, or a title (created with the video labeling config if new).
        url, token: the server (default ``$LABEL_STUDIO_URL`` / ``$LABEL_STUDIO_API_KEY``).
        client: a ready :class:`~autolabel.labelstudio.Client` instead of ``url``/``token``.
        fps, video_url, tau: as :func:`~autolabel.formats.labelstudio_video.video_tasks`.

    Returns:
        ``{"project": id, "created": [sequence names], "skipped": [already there], "task_ids": [...]}``.

    Raises:
        LabelStudioError: the project's config has no ``videorectangle`` control, or the
        server refuses; :class:`~autolabel.labelstudio.LabelStudioAuthError` for a bad token.
    """
    client = client or Client(url, token)
    tasks = video_tasks(results, fps, video_url, tau)
    pid = _project_id(client, project, results, tasks[0]["meta"]["fps"] if tasks else fps)
    have = {t["data"].get("sequence") for t in client.pages(
        "/api/tasks", {"project": pid, "fields": "all", "resolve_uri": "false"}, "tasks") if isinstance(t.get("data"), dict)}
    new = [t for t in tasks if t["data"]["sequence"] not in have]
    ids: list[int] = []
    if new:
        out = client.request("POST", f"/api/projects/{pid}/import", new, {"return_task_ids": "true"})
        ids = list(out.get("task_ids") or []) if isinstance(out, dict) else []
    return {"project": pid, "created": [t["data"]["sequence"] for t in new],
            "skipped": [t["data"]["sequence"] for t in tasks if t["data"]["sequence"] in have], "task_ids": ids}


def _project_id(client: Client, project: int | str, results: Results, fps: float | None) -> int:
    if isinstance(project, int):
        found = client.request("GET", f"/api/projects/{project}")
    else:
        same = [p for p in client.pages("/api/projects", {"title": project}, "results") if p.get("title") == project]
        if len(same) > 1:
            raise LabelStudioError(f"Label Studio at {client.url}: {len(same)} projects are titled {project!r}; pass the id")
        found = client.request("GET", f"/api/projects/{same[0]['id']}") if same else client.request("POST", "/api/projects", {
            "title": project, "label_config": labelstudio_video_config(results.class_names, fps),
            "description": "video pre-labels (tracks as keyframes) pushed by autolabel"})
    if "videorectangle" not in str(found.get("label_config", "")).lower():
        raise LabelStudioError(f"Label Studio project {found.get('id')} ({found.get('title')!r}) has no "
                               "<VideoRectangle> control: push video tasks to a video tracking project")
    return int(found["id"])
