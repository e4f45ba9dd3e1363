"""Pull submitted annotations back from Label Studio and measure them against the pre-labels.

:func:`pull` reads every submitted annotation, compares the human's final boxes with
the pre-labels they started from (one :func:`autolabel.matching.match` over all of
them), reads the annotation's ``lead_time`` (seconds the annotator spent) and fits your
team's cost constants (:mod:`autolabel.savings.costfit`). Tasks pushed without pre-labels
(``without_prelabels``) are the from-scratch baseline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from autolabel.core import Detections, Results
from autolabel.labelstudio.client import Client, control, get_project, tasks

if TYPE_CHECKING:
    from autolabel.savings.measure import Measurement

__all__ = ["pull"]


def _one(task: Mapping[str, Any], kind: str, item: Mapping[str, Any], names: Sequence[str]) -> Detections:
    from autolabel.formats import read_labelstudio

    res = read_labelstudio([{"id": task["id"], "data": task["data"], kind: [item]}], class_names=names, use=kind)
    return res.detections[0]


def _task_rows(task: Mapping[str, Any], names: Sequence[str],
               model_version: str | None) -> list[tuple[dict[str, Any], Detections, Detections, bool]]:
    """``(meta, pre-labels, final boxes, prelabeled)`` of every submitted annotation of
    ``task``, oldest first; the pre-labels are the annotation's ``parent_prediction``, else
    the task's newest prediction (of ``model_version`` when given)."""
    done = sorted(
        (a for a in task.get("annotations") or [] if not a.get("was_cancelled")),
        key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a["id"]),
    )
    preds = [p for p in task.get("predictions") or [] if model_version is None or p.get("model_version") == model_version]
    preds.sort(key=lambda p: (str(p.get("created_at") or ""), p["id"]))
    by_id = {p["id"]: p for p in preds}
    rows = []
    for a in done:
        gt = _one(task, "annotations", a, names)
        started = by_id.get(a.get("parent_prediction")) or (preds[-1] if preds else None)
        pre = _one(task, "predictions", started, names) if started else Detections.empty(names, gt.image)
        lead = a.get("lead_time")
        meta = {
            "task_id": task["id"], "annotation_id": a["id"], "image": gt.info.key, "annotator": a.get("completed_by"),
            "prediction_id": started["id"] if started else None,
            "seconds": float(lead) if isinstance(lead, (int, float)) and math.isfinite(lead) else math.nan,
        }
        rows.append((meta, pre, gt, started is not None))
    return rows


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
    the annotator started from into the annotation's boxes (every row matched at once,
    in one :class:`~autolabel.matching.Matching`), and its ``lead_time``. The pre-labels
    are the annotation's ``parent_prediction`` when Label Studio recorded it, else the
    task's newest prediction (only predictions of ``model_version`` when given). A task
    without one is a from-scratch row (every box drawn). The latest annotation of each
    task is the ground truth, its prediction the pre-labels.

    Args:
        project: project id or exact title.
        url, token: the server and API token (or give ``client``).
        model_version: compare against this model's predictions only.
        options: go to :func:`autolabel.savings.measure.measure`: ``profile`` (the base cost
            profile), ``fit`` (default True: fit the cost constants to the lead
            times), ``fixed``, ``iou_accept``, ``iou_min``, ``n_boot``.

    Returns:
        A :class:`~autolabel.savings.measure.Measurement`; its ``.save(out_dir)`` writes COCO,
        the edit table, the fit and a cost profile YAML.

    Raises:
        LabelStudioError: no such project, or the server refused (see
            :class:`~autolabel.labelstudio.Client`).
        LabelConfigError: the project has no single ``<RectangleLabels>`` control.
    """
    from autolabel.savings.measure import measure

    client = client or Client(url, token)
    proj = get_project(client, project if isinstance(project, int) else str(project))
    pid = int(proj["id"])
    ctrl = control(proj, f"Label Studio at {client.url}, project {pid}")
    names = ctrl.labels
    gt_dets, pre_dets, pairs = [], [], []
    for task in tasks(client, pid):
        task = {**task, "data": {**task["data"], "image": task["data"].get(ctrl.image_field)}}
        rows = _task_rows(task, names, model_version)
        if rows:
            pairs += rows
            gt_dets.append(rows[-1][2])  # the latest annotation is the task's ground truth
            pre_dets.append(rows[-1][1])
    model = str(model_version or proj.get("model_version") or "")
    return measure(
        pairs,
        Results(gt_dets, names),
        Results(pre_dets, names, model),
        source=f"{client.url}/projects/{pid}",
        **options,
    )
