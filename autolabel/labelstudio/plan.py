"""What a push sends: the pre-labels in priority order, task data, the scratch keys.

From a routing (:data:`RoutingLike`: the review queue first in its priority order, the
scratch queue without pre-labels, routing fields as ``routing_<field>`` task data, only
boxes at or above the policy's pre-label threshold), or from an explicit order.
Nothing here talks to the server.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

from pydantic import Field, field_validator, model_validator

from autolabel.config import Options
from autolabel.core import Results

if TYPE_CHECKING:
    import pandas as pd

    from autolabel.routing import Routing

__all__ = ["RoutingLike", "LabelMap", "PushOptions", "Plan", "routing_plan", "order_plan", "apply_label_map"]

RoutingLike = Union["Routing", "pd.DataFrame", str, os.PathLike]
"""A :class:`~autolabel.routing.Routing`, its manifest DataFrame, or the ``manifest.csv``
that ``autolabel route`` writes (its ``summary.json`` beside it)."""
LabelMap = Union[Mapping[str, Any], str, os.PathLike]
"""``{our class: project label or None}``, or a class map config (a dict with
``mapping``, or a YAML path) as :class:`~autolabel.classmap.ClassMap` loads."""


class PushOptions(Options):
    """What :func:`~autolabel.labelstudio.push` sends and how, beside the results and the
    project; validated when made (unknown names and bad values are refused before any
    request). ``push(..., routing=m, chunk_size=100)`` builds one from its keywords.

    Attributes:
        routing: push the images of ``queues``, the review queue first in its priority
            order, the scratch queue without pre-labels, with the routing fields in the
            task data (:data:`RoutingLike`).
        queues: with ``routing``: the queues to push (``auto_accept``, ``review``, ``scratch``).
        order: image keys in priority order (keys left out follow least confident
            first, by mean box score); not with ``routing``.
        task_data: image key -> extra task data; not with ``routing``.
        prelabel_conf: push only boxes scoring at least this. With ``routing`` the
            default is the policy's pre-label threshold (required when the manifest
            does not say it); without, every box is pushed.
        image_url: a URL prefix the images' file names are appended to; default:
            local-files URLs under ``document_root`` (the server's
            ``LOCAL_FILES_DOCUMENT_ROOT``, default ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``)
            for images under ``image_root`` (default: derived from the image paths).
        label_map: our class -> the project's label (``None`` drops those boxes) (:data:`LabelMap`).
        without_prelabels: keys pushed without pre-labels (the from-scratch baseline).
        chunk_size: tasks per import request.
        on_chunk: called with the report after every chunk.
    """

    routing: Any = None
    queues: tuple[str, ...] = ("review", "scratch")
    order: Sequence[str] | None = None
    task_data: Mapping[str, Mapping[str, Any]] | None = None
    prelabel_conf: float | None = Field(None, ge=0, le=1)
    image_url: str | None = None
    image_root: Path | None = None
    document_root: Path | None = None
    label_map: Any = None
    without_prelabels: tuple[str, ...] = ()
    chunk_size: int = Field(200, ge=1)
    on_chunk: Callable[..., Any] | None = None

    @field_validator("queues")
    @classmethod
    def _queues(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from autolabel.routing import QUEUES

        bad = [q for q in v if q not in QUEUES]
        if bad:
            raise ValueError(f"unknown queues {bad}; choose from {', '.join(QUEUES)}")
        return v

    @model_validator(mode="after")
    def _one_order(self) -> PushOptions:
        if self.routing is not None and (self.order is not None or self.task_data is not None or self.without_prelabels):
            raise ValueError("give routing= or order=/task_data=/without_prelabels=, not both")
        return self



@dataclass
class Plan:
    """What to push: the pre-labels (one per image), keys in priority order, extra task
    data per key, and the keys pushed without pre-labels."""

    results: Results
    order: list[str]
    task_data: dict[str, dict[str, Any]]
    scratch: set[str]


def _default_order(results: Results) -> list[str]:
    """Least confident first: ascending mean box score (images without boxes first), then key."""
    from autolabel.formats._common import image_score

    return [d.image.key for d in sorted(results, key=lambda d: (image_score(d), d.image.key))]


def apply_label_map(results: Results, label_map: LabelMap | None) -> Results:
    """``label_map``: ``{our class: project label or None}`` (other classes kept), or a
    class map config (dict with ``mapping``, YAML path) as :class:`~autolabel.classmap.ClassMap` takes."""
    if not label_map:
        return results
    from dataclasses import replace

    from autolabel.classmap import ClassMap

    spec = label_map
    if isinstance(label_map, Mapping) and "mapping" not in label_map:
        spec = {"mapping": dict(label_map), "keep_unmapped": True}
    cmap = ClassMap.load(spec, results.class_names)
    return replace(results, detections=[cmap(d) for d in results], class_names=cmap.target_names)




_ROUTING_FIELDS = ("queue", "review_rank", "p_no_edit", "expected_edit_s", "expected_scratch_s", "reason")


def _routing_conf(routing: RoutingLike) -> float | None:
    """The policy's pre-label threshold: from a Routing, or the ``summary.json`` that
    ``autolabel route`` writes beside ``manifest.csv``; ``None`` when not known."""
    policy = getattr(routing, "policy", None)
    if policy is not None:
        return float(policy.config.prelabel_conf)
    if isinstance(routing, (str, os.PathLike)):
        summary = Path(routing).with_name("summary.json")
        if summary.is_file():
            try:
                conf = json.loads(summary.read_text(encoding="utf-8")).get("prelabel_conf")
            except ValueError as e:
                raise ValueError(f"{summary}: not valid JSON: {e}") from e
            return None if conf is None else float(conf)
    return None


def routing_plan(results: Results, routing: RoutingLike, queues: Sequence[str], conf: float | None) -> Plan:
    """From a routing: the images of ``queues``, the review queue first in priority order,
    then the scratch queue (pushed without pre-labels), then auto-accepted ones; the
    routing fields as task data (``routing_<field>``); only boxes scoring ``>= conf``
    (default: the policy's pre-label threshold)."""
    import pandas as pd

    from autolabel.routing import QUEUES, task_data

    conf = _routing_conf(routing) if conf is None else conf
    if conf is None:
        raise ValueError(
            "the routing manifest does not say the policy's pre-label threshold (no prelabel_conf in the summary.json "
            "beside it), so boxes below it would be pushed as pre-labels: pass prelabel_conf= (--prelabel-conf), "
            "or route again with this version of autolabel"
        )
    if isinstance(routing, (str, os.PathLike)):
        try:
            manifest = pd.read_csv(routing)
        except (OSError, ValueError) as e:
            raise ValueError(f"{routing}: cannot read the routing manifest: {e}") from e
    else:
        manifest = getattr(routing, "manifest", routing)
    missing = [c for c in ("file_name", "queue", "review_rank") if c not in manifest.columns]
    if missing:
        raise ValueError(f"routing manifest lacks columns {missing}: not written by autolabel route?")
    results = results.filter(conf)  # the policy's pre-labels, on every path
    by_name = {d.image.file_name: d for d in results if d.image is not None}
    unknown = [f for f in manifest["file_name"] if f not in by_name]
    if unknown:
        raise ValueError(f"routing manifest names {len(unknown)} images not in the pre-labels: {unknown[:5]}")
    rank = {q: i for i, q in enumerate(QUEUES[1:] + QUEUES[:1])}  # review, scratch, auto_accept
    m = manifest[manifest["queue"].isin(list(queues))].copy()
    m["_q"] = m["queue"].map(rank)
    m = m.sort_values(["_q", "review_rank", "file_name"], kind="stable", na_position="last")
    dets = [by_name[f] for f in m["file_name"]]
    keys = [d.image.key for d in dets]
    data = task_data(m[[c for c in _ROUTING_FIELDS if c in m.columns]], keys)
    scratch = {k for k, q in zip(keys, m["queue"]) if q == "scratch"}
    return Plan(replace(results, detections=dets, failures=[]), keys, data, scratch)


def order_plan(
    results: Results,
    order: Sequence[str] | None,
    task_data: Mapping[str, Mapping[str, Any]] | None,
    without_prelabels: Sequence[str],
    conf: float | None,
) -> Plan:
    """Check an explicit order: keys named once each; the rest follow least confident first."""
    if conf is not None:
        results = results.filter(conf)
    keys = [d.image.key for d in results if d.image is not None]
    if len(keys) != len(results) or len(set(keys)) != len(keys):
        raise ValueError("every image needs an ImageInfo with a unique key")
    known, listed = set(keys), list(order or [])
    unknown = [k for k in listed if k not in known]
    repeated = sorted({k for k in listed if listed.count(k) > 1}) if len(set(listed)) != len(listed) else []
    if unknown or repeated:
        raise ValueError(
            f"order must name pre-labeled images once each; unknown: {unknown[:5]}, repeated: {repeated[:5]}"
        )
    seen = set(listed)
    listed += [k for k in _default_order(results) if k not in seen]
    scratch = set(without_prelabels)
    if scratch - known:
        raise ValueError(f"without_prelabels names images not in the pre-labels: {sorted(scratch - known)[:5]}")
    return Plan(results, listed, {k: dict(v) for k, v in (task_data or {}).items()}, scratch)
