"""Label Studio round trip: push pre-labels for review, pull the corrections, measure.

* :mod:`~autolabel.labelstudio.client`: :class:`Client` (REST, retries, tokens) and
  the errors; projects and their labeling config.
* :mod:`~autolabel.labelstudio.plan`: what a push sends (routing order, pre-label
  threshold, task data); :mod:`~autolabel.labelstudio.push`: :func:`push`, chunked and
  idempotent.
* :mod:`~autolabel.labelstudio.pull`: :func:`pull`, annotations back into a
  :class:`~autolabel.savings.measure.Measurement` (edits, lead times, fitted cost constants).
"""

from autolabel.labelstudio.client import (
    ENV_DOCUMENT_ROOT,
    ENV_TOKEN,
    ENV_URL,
    Client,
    LabelConfigError,
    LabelStudioAuthError,
    LabelStudioError,
    LabelStudioUnavailable,
    TransientError,
    tasks,
)
from autolabel.labelstudio.plan import LabelMap, PushOptions, RoutingLike
from autolabel.labelstudio.pull import pull
from autolabel.labelstudio.push import PushReport, push

__all__ = [  # noqa: RUF022 (grouped by module)
    "Client", "LabelStudioError", "LabelStudioAuthError", "LabelStudioUnavailable", "LabelConfigError",
    "TransientError", "ENV_URL", "ENV_TOKEN", "ENV_DOCUMENT_ROOT", "tasks",
    "push", "PushOptions", "PushReport", "RoutingLike", "LabelMap",
    "pull",
]
