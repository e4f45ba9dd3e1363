"""Video tasks pushed to a real Label Studio server and read back from it."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel import labelstudio as ls
from autolabel.formats import read_labelstudio_video
from autolabel.sources.sequences import open_sequence
from autolabel.labelstudio.video_push import push_video
from tests.conftest import DATA


@pytest.fixture(scope="module")
def client(server):
    return ls.Client(server.url, server.token, retries=2, backoff=0.05)


def test_tracks_go_in_as_video_tasks_and_come_back_within_tau(client):
    gt = open_sequence(DATA / "tud-campus").ground_truth
    out = push_video(gt, "tud video", client=client, fps=25)
    assert out.created == 1 and list(out.task_ids) == ["TUD-Campus"] and len(out.task_ids) == 1
    again = push_video(gt, "tud video", client=client, fps=25)
    assert again.created == 0 and again.unchanged == 1 and not again.task_ids and again.project_id == out.project_id
    assert again.to_dict() == {"project_id": out.project_id, "project_url": out.project_url, "created": 0,
                               "unchanged": 1, "task_ids": {}}

    project = client.request("GET", f"/api/projects/{out.project_id}")
    assert "<VideoRectangle" in project["label_config"]
    tasks = list(client.pages("/api/tasks", {"project": out.project_id, "fields": "all"}, "tasks"))
    assert len(tasks) == 1 and tasks[0]["data"]["video"].endswith("TUD-Campus.mp4")
    back = read_labelstudio_video(tasks, class_names=["person"], use="predictions")
    assert len(back) == 71
    for a, b in zip(gt, back):
        assert a.track_id.tolist() == b.track_id.tolist()
        if len(a):
            ix = np.clip(np.minimum(a.xyxy[:, 2:], b.xyxy[:, 2:]) - np.maximum(a.xyxy[:, :2], b.xyxy[:, :2]), 0, None)
            inter = ix.prod(1)
            union = np.prod(a.xyxy[:, 2:] - a.xyxy[:, :2], 1) + np.prod(b.xyxy[:, 2:] - b.xyxy[:, :2], 1) - inter
            assert (inter / union).min() >= 0.7 - 1e-6


def test_an_image_project_is_refused(client):
    client.request("POST", "/api/projects", {"title": "images only", "label_config": (
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image">'
        '<Label value="person"/></RectangleLabels></View>')})
    gt = open_sequence(DATA / "tud-campus").ground_truth
    with pytest.raises(ls.LabelStudioError, match="no <VideoRectangle> control"):
        push_video(gt, "images only", client=client)
