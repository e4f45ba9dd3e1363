"""The project's labeling config: which control the regions belong to, and its labels.

Label Studio shows a predicted region only when its ``from_name`` is the name of a
``<RectangleLabels>`` control, its ``to_name`` that control's ``toName`` image, and its
label one of the control's ``<Label value=...>``. All three are read from the config the
project sends (``/setup``'s ``schema``, each predict request's ``label_config``), never
assumed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Sequence

__all__ = ["RegionNames", "LabelConfigMismatch", "parse_label_config", "check_labels"]


class LabelConfigMismatch(ValueError):
    """The labeling config cannot show this model's boxes (no box control, or labels missing)."""


@dataclass(frozen=True)
class RegionNames:
    """Where predicted boxes go: ``from_name`` (the RectangleLabels control), ``to_name``
    (its image), ``image_field`` (the task data key holding the image URL) and the
    control's ``labels``; ``keypoint_name``: a ``<KeyPointLabels>`` control on the same
    image, where a pose model's keypoints go (``None``: keypoints are not sent)."""

    from_name: str
    to_name: str
    image_field: str
    labels: tuple[str, ...]
    keypoint_name: str | None = None


def parse_label_config(xml: str) -> RegionNames:
    """Read the box control of a Label Studio labeling config.

    Args:
        xml: the ``<View>`` config text.

    Returns:
        The :class:`RegionNames` of its one ``<RectangleLabels>`` control.

    Raises:
        LabelConfigMismatch: the XML does not parse, has no or several
            ``<RectangleLabels>``, or the control's ``toName`` is not an ``<Image>``.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise LabelConfigMismatch(f"the project's labeling config is not valid XML: {e}") from None
    rects = list(root.iter("RectangleLabels"))
    if not rects:
        raise LabelConfigMismatch("the project's labeling config has no <RectangleLabels> control for boxes")
    if len(rects) > 1:
        names = [r.get("name") for r in rects]
        raise LabelConfigMismatch(f"the project's labeling config has several <RectangleLabels> controls: {names}")
    rect = rects[0]
    name, to_name = rect.get("name"), rect.get("toName")
    if not name or not to_name:
        raise LabelConfigMismatch("the <RectangleLabels> control needs both name= and toName=")
    images = {im.get("name"): im for im in root.iter("Image")}
    if to_name not in images:
        raise LabelConfigMismatch(f"<RectangleLabels name={name!r}> points to {to_name!r}, which is not an <Image>")
    value = images[to_name].get("value") or ""
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigMismatch(f"<Image name={to_name!r}> takes value={value!r}; expected a task field like '$image'")
    labels = tuple(el.get("value") or "" for el in rect.iter("Label"))
    kp = next((c.get("name") for c in root.iter("KeyPointLabels") if c.get("toName") == to_name), None)
    return RegionNames(name, to_name, value[1:], labels, kp)


def check_labels(class_names: Sequence[str], names: RegionNames) -> None:
    """Raise :class:`LabelConfigMismatch` naming every class the model emits that the
    project's control lacks (Label Studio would not draw those boxes).

    Args:
        class_names: the classes the backend emits (after its class map).
        names: the project's box control.
    """
    missing = [c for c in class_names if c not in names.labels]
    if missing:
        shown = missing if len(missing) <= 12 else missing[:12] + [f"... {len(missing) - 12} more"]
        raise LabelConfigMismatch(
            f"the project's <RectangleLabels name={names.from_name!r}> lacks {len(missing)} of the model's "
            f"{len(class_names)} classes: {shown}; add them to the labeling config, or serve with a class map "
            f"(--class-map) onto the project's labels {list(names.labels)[:12]}"
        )
