"""CVAT for video 1.1 XML: one ``<name>.xml`` per sequence, tracks as keyframes.

What CVAT imports (its "CVAT for video 1.1" format)::

    <annotations>
      <version>1.1</version>
      <meta><task><name>walkers</name><size>71</size><mode>interpolation</mode>
        <start_frame>0</start_frame><stop_frame>70</stop_frame>
        <labels><label><name>person</name>...</label></labels>
        <original_size><width>640</width><height>480</height></original_size></task></meta>
      <track id="0" label="person" source="auto">
        <box frame="0" keyframe="1" outside="0" occluded="0" xtl=".." ytl=".." xbr=".." ybr=".." z_order="0">
          <attribute name="score">0.91</attribute></box>
        <box frame="24" keyframe="1" outside="1" .../>   <!-- out of view from frame 24 on -->
      </track>
    </annotations>

Written: the fewest keyframes within IoU >= ``tau`` of every frame
(:func:`autolabel.keyframes.track_keyframes`; ``tau=None`` writes every frame), an
``outside`` keyframe after every visible run that ends before the last frame, per-box
``occluded`` from ``Detections.data["occluded"]`` when present, and the score attribute.
Read: keyframes (``keyframe="1"``) expanded as CVAT does (linear between keyframes,
nothing from an ``outside`` keyframe on, the last visible box held to ``stop_frame``);
shapes with ``keyframe="0"`` (CVAT's export writes every frame) are CVAT's own
interpolation and are skipped. Frame ``f`` is ``ImageInfo.frame_index`` ``start_frame + f``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Sequence

import numpy as np

from autolabel.core import ImageInfo, Results
from autolabel.formats._common import ResultsLike, check_names, load_xml, now, num, number, refuse_invalid, sub, xml_text
from autolabel.io.files import atomic_writer, safe_relpath
from autolabel.formats.cvat import add_labels
from autolabel.video.keyframes import TAU, KeyframeTrack, track_from_keyframes, track_keyframes
from autolabel.video.tracks import Track, from_tracks, sequences, tracks_of

__all__ = ["write_cvat_video", "read_cvat_video"]


def write_cvat_video(results: ResultsLike, out_dir: str | os.PathLike, tau: float | None = TAU) -> list[str]:
    """Write each sequence of ``results`` (frames with ``track_id``) as ``<name>.xml``.

    Args:
        results: video frames whose boxes carry ``track_id``.
        out_dir: the output folder.
        tau: keyframe IoU (see the module docs); ``None``: every frame is a keyframe.

    Returns:
        The written paths.
    """
    check_names(results.class_names)
    written = []
    for frames in sequences(results).values():
        info, name = frames[0].info, frames[0].info.sequence_name
        last = frames[-1].info.frame
        root = ET.Element("annotations")
        sub(root, "version", "1.1")
        meta = sub(root, "meta")
        task = sub(meta, "task")
        for tag, v in (("name", name), ("size", last + 1), ("mode", "interpolation"), ("overlap", 0),
                       ("start_frame", 0), ("stop_frame", last), ("model_id", results.model_id)):
            sub(task, tag, v)
        add_labels(task, results.class_names, mutable=True)
        size = sub(task, "original_size")
        sub(size, "width", info.width)
        sub(size, "height", info.height)
        sub(meta, "dumped", now())
        keys = ["occluded"] if all("occluded" in d.data for d in frames) else []
        for t in tracks_of(frames, keys):
            k = track_keyframes(t.frames, t.xyxy, t.scores, t.data.get("occluded"), last, tau)
            track = sub(root, "track", id=t.track_id, label=t.label, source="auto")
            for f, b, s, out, occ in zip(k.frames.tolist(), k.xyxy.tolist(), k.scores, k.outside, k.occluded):
                corners = {c: f"{v:.2f}" for c, v in zip(("xtl", "ytl", "xbr", "ybr"), b)}
                box = sub(track, "box", frame=f, keyframe=1, outside=int(out), occluded=int(occ), **corners, z_order=0)
                sub(box, "attribute", num(s), name="score")
        path = os.path.join(str(out_dir), safe_relpath(name).replace("/", "_") + ".xml")
        with atomic_writer(path) as f:
            f.write(xml_text(root))
        written.append(path)
    return written


def read_cvat_video(path: str | os.PathLike, class_names: Sequence[str] | None = None) -> Results:
    """A CVAT for video 1.1 XML file (or a folder of them) as per-frame :class:`Results`.

    Args:
        path: the ``.xml`` file, or a folder: every ``.xml`` in it, one sequence each.
        class_names: the label set (default: the task's labels).

    Returns:
        Every frame ``start_frame..stop_frame`` (keys ``<task name>#<frame>``), boxes with
        ``track_id`` (the track's ``id``) and ``data["occluded"]``.

    Raises:
        ValueError: a malformed file, naming it and the track.
    """
    paths = _files(str(path), ".xml")
    parts = [_read_one(p, class_names) for p in paths]
    names = parts[0].class_names
    return Results([d for r in parts for d in r], names, parts[0].model_id)


def _read_one(path: str, class_names: Sequence[str] | None) -> Results:
    root = load_xml(path)
    if root.tag != "annotations":
        raise ValueError(f"{path}: root element is <{root.tag}>, not <annotations>")
    task = root.find("meta/task")
    if task is None:
        task = root.find("meta/job")
    if task is None:
        raise ValueError(f"{path}: no <meta><task> (a CVAT for video file)")
    where = f"{path}: <meta>"
    start = int(number(task.findtext("start_frame", "0"), where, "start_frame"))
    stop = int(number(task.findtext("stop_frame"), where, "stop_frame"))
    w = int(number(task.findtext("original_size/width"), where, "original_size/width"))
    h = int(number(task.findtext("original_size/height"), where, "original_size/height"))
    name = task.findtext("name") or os.path.splitext(os.path.basename(path))[0]
    names = list(class_names) if class_names is not None else [el.findtext("name", "") for el in task.iter("label")]
    tracks = []
    for el in root.iter("track"):
        tw = f"{path}: track {el.get('id')}"
        if el.get("label") not in names:
            raise ValueError(f"{tw}: unknown label {el.get('label')!r}; known: {', '.join(names)}")
        rows = []
        for box in el.iter("box"):
            if box.get("keyframe", "1") != "1":
                continue
            bw = f"{tw}, frame {box.get('frame')}"
            xyxy = [number(box.get(c), bw, c) for c in ("xtl", "ytl", "xbr", "ybr")]
            if box.get("outside") != "1":  # an outside keyframe only ends the track
                refuse_invalid(xyxy, (w, h), bw)
            score = box.find("attribute[@name='score']")
            rows.append((int(number(box.get("frame"), bw, "frame")) - start, xyxy,
                         number(score.text, bw, "score") if score is not None else 1.0,
                         box.get("outside") == "1", box.get("occluded") == "1"))
        rows.sort(key=lambda r: r[0])
        if len({r[0] for r in rows}) != len(rows):
            raise ValueError(f"{tw}: two keyframes on one frame")
        if not rows:
            continue
        k = KeyframeTrack(*(np.array([r[j] for r in rows]) for j in range(5)))
        f, b, s, occ = track_from_keyframes(k, stop - start)
        if len(f):
            tracks.append(Track(int(number(el.get("id"), tw, "id")), str(el.get("label")), f, b, s,
                                {"occluded": occ.astype(bool)}))
    images = [ImageInfo(f"{name}#{i}", w, h, None, i, None) for i in range(stop - start + 1)]
    return from_tracks(tracks, images, names, task.findtext("model_id", ""))


def _files(path: str, ext: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(ext))
    if not found:
        raise ValueError(f"{path}: no {ext} files in the folder")
    return found
