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

from dataclasses import dataclass
from typing import Mapping

from autolabel.core import Results
from autolabel.formats.labelstudio_video import labelstudio_video_config, video_tasks
from autolabel.labelstudio.client import Client, LabelStudioError, get_project
from autolabel.results import Record
from autolabel.video.keyframes import TAU

__all__ = ["push_video", "VideoPushReport"]


@dataclass(frozen=True, repr=False)
class VideoPushReport(Record):
    """What a video push did, counted as :class:`~autolabel.labelstudio.push.PushReport`
    counts: sequences ``created`` as tasks, sequences ``unchanged`` (the project already
    held them), and ``task_ids``: created sequence name -> task id."""

    project_id: int
    project_url: str
    created: int
    unchanged: int
    task_ids: Mapping[str, int]
    _REPR = ("project_id", "created", "unchanged")


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
) -> VideoPushReport:
    """Push every sequence of ``results`` (boxes with ``track_id``) as a video task.

    Args:
        results: tracked frames of one or more sequences.
        project: a project id, or a title (created with the video labeling config if new).
        url, token: the server (default ``$LABEL_STUDIO_URL`` / ``$LABEL_STUDIO_API_KEY``).
        client: a ready :class:`~autolabel.labelstudio.Client` instead of ``url``/``token``.
        fps, video_url, tau: as :func:`~autolabel.formats.labelstudio_video.video_tasks`.

    Returns:
        The :class:`VideoPushReport`.

    Raises:
        LabelStudioError: the project's config has no ``videorectangle`` control, or the
        server refuses; :class:`~autolabel.labelstudio.LabelStudioAuthError` for a bad token.
    """
    client = client or Client(url, token)
    tasks = video_tasks(results, fps, video_url, tau)
    config = labelstudio_video_config(results.class_names, tasks[0]["meta"]["fps"] if tasks else fps)
    found = get_project(client, project, results.class_names, config,
                        "video pre-labels (tracks as keyframes) pushed by autolabel")
    if "videorectangle" not in str(found.get("label_config", "")).lower():
        raise LabelStudioError(f"Label Studio project {found.get('id')} ({found.get('title')!r}) has no "
                               "<VideoRectangle> control: push video tasks to a video tracking project")
    pid = int(found["id"])
    have = {t["data"].get("sequence") for t in client.pages(
        "/api/tasks", {"project": pid, "fields": "all", "resolve_uri": "false"}, "tasks") if isinstance(t.get("data"), dict)}
    new = [t for t in tasks if t["data"]["sequence"] not in have]
    ids: list[int] = []
    if new:
        out = client.request("POST", f"/api/projects/{pid}/import", new, {"return_task_ids": "true"})
        ids = list(out.get("task_ids") or []) if isinstance(out, dict) else []
    return VideoPushReport(pid, f"{client.url}/projects/{pid}", len(new), len(tasks) - len(new),
                           dict(zip((t["data"]["sequence"] for t in new), ids)))
