"""Label Studio video tasks: ``video_tasks.json`` (one task per sequence) and ``video_label_config.xml``.

Each track is one ``videorectangle`` region, as Label Studio's video object tracking
stores it (and as its own PathTrack importer writes it)::

    {"type": "videorectangle", "from_name": "box", "to_name": "video", "id": "walkers-3",
     "value": {"framesCount": 71, "duration": 2.84, "labels": ["person"], "sequence": [
        {"frame": 1, "enabled": true, "time": 0.04, "x": 62.3, "y": 37.9, "width": 18.9, "height": 47.7,
         "rotation": 0, "score": 0.91}, ...]}}

``frame`` is 1-based (``ImageInfo.frame_index + 1``), ``time`` is ``frame / fps``
seconds, boxes are percent of the frame size. The sequence holds the keyframes of
:func:`autolabel.keyframes.track_keyframes`; ``enabled: false`` marks the last keyframe
of a visible run (Label Studio interpolates from a keyframe to the next only while
``enabled``). ``score`` on a keyframe is autolabel's addition (the region's ``score`` is
the track's mean). The labeling config is generated for the label set: ``<Video>``,
``<VideoRectangle>`` and ``<Labels>``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from autolabel.core import Detections, ImageInfo, Results
from autolabel.formats._common import ResultsLike, check_names, number, refuse_invalid
from autolabel.io.files import atomic_writer, load_json
from autolabel.video.keyframes import TAU, KeyframeTrack, track_from_keyframes, track_keyframes
from autolabel.video.tracks import Track, from_tracks, sequences, tracks_of

__all__ = ["write_labelstudio_video", "read_labelstudio_video", "labelstudio_video_config", "video_tasks"]

TASKS, CONFIG = "video_tasks.json", "video_label_config.xml"


def labelstudio_video_config(class_names: Sequence[str], fps: float | None = None) -> str:
    """The labeling config for video object tracking over ``class_names``."""
    from xml.sax.saxutils import quoteattr

    labels = "\n".join(f"    <Label value={quoteattr(n)}/>" for n in class_names)
    rate = f' framerate="{fps:g}"' if fps else ""
    return (f'<View>\n  <Labels name="videoLabels" toName="video" allowEmpty="true">\n{labels}\n  </Labels>\n'
            f'  <Video name="video" value="$video"{rate}/>\n  <VideoRectangle name="box" toName="video"/>\n</View>\n')


def video_tasks(results: ResultsLike, fps: float | None = None,
                video_url: str = "/data/local-files/?d={name}.mp4", tau: float | None = TAU) -> list[dict[str, Any]]:
    """One Label Studio video task per sequence of ``results`` (see the module docs).

    Args:
        results: video frames whose boxes carry ``track_id``.
        fps: frames per second (default: from the frames' timestamps, else 25).
        video_url: the task's ``data.video``; ``{name}`` is the sequence name (Label
            Studio plays a video file: encode the frames as one where they are images).
        tau: keyframe IoU; ``None``: every frame is a keyframe.

    Returns:
        The tasks: ``data`` (``video``, ``sequence``), ``meta`` and one prediction each.
    """
    check_names(results.class_names)
    tasks = []
    for frames in sequences(results).values():
        name = frames[0].info.sequence_name
        rate = fps or _rate(frames) or 25.0
        w, h = frames[0].info.width, frames[0].info.height
        last = frames[-1].info.frame
        regions = []
        for t in tracks_of(frames):
            k = track_keyframes(t.frames, t.xyxy, t.scores, None, last, tau)
            seq = []
            for j in np.flatnonzero(~k.outside):
                nxt = j + 1 < len(k.frames) and not k.outside[j + 1]
                b = k.xyxy[j]
                seq.append({"frame": int(k.frames[j]) + 1, "enabled": bool(nxt), "time": (int(k.frames[j]) + 1) / rate,
                            "x": b[0] / w * 100, "y": b[1] / h * 100, "width": (b[2] - b[0]) / w * 100,
                            "height": (b[3] - b[1]) / h * 100, "rotation": 0, "score": float(k.scores[j])})
            regions.append({"id": f"{name}-{t.track_id}", "type": "videorectangle", "from_name": "box",
                            "to_name": "video", "origin": "prediction", "score": float(t.scores.mean()),
                            "value": {"framesCount": last + 1, "duration": (last + 1) / rate, "sequence": seq,
                                      "labels": [t.label]}})
        score = float(np.mean([r["score"] for r in regions])) if regions else 0.0
        tasks.append({"data": {"video": video_url.format(name=name), "sequence": name},
                      "meta": {"sequence": name, "fps": rate, "width": w, "height": h, "frames": last + 1},
                      "predictions": [{"model_version": results.model_id, "score": score, "result": regions}]})
    return tasks


def write_labelstudio_video(results: ResultsLike, out_dir: str | os.PathLike, fps: float | None = None,
                            video_url: str = "/data/local-files/?d={name}.mp4", tau: float | None = TAU) -> list[str]:
    """Write :func:`video_tasks` as ``video_tasks.json`` and the labeling config as
    ``video_label_config.xml`` in ``out_dir``; returns both paths. Arguments as :func:`video_tasks`."""
    tasks = video_tasks(results, fps, video_url, tau)
    paths = [os.path.join(str(out_dir), TASKS), os.path.join(str(out_dir), CONFIG)]
    with atomic_writer(paths[0]) as f:
        json.dump(tasks, f, indent=1)
    with atomic_writer(paths[1]) as f:
        f.write(labelstudio_video_config(results.class_names, tasks[0]["meta"]["fps"] if tasks else fps))
    return paths


def _rate(frames: Sequence[Detections]) -> float | None:
    a, b = frames[0].info, frames[-1].info
    if a.timestamp is None or b.timestamp is None or b.timestamp <= a.timestamp:
        return None
    return (b.frame - a.frame) / (b.timestamp - a.timestamp)


def read_labelstudio_video(source: str | os.PathLike | list[dict[str, Any]], class_names: Sequence[str] | None = None,
                           use: str = "auto") -> Results:
    """Label Studio video tasks (``video_tasks.json``, its folder, or parsed tasks) as per-frame :class:`Results`.

    Args:
        source: the tasks; each needs ``meta`` (``sequence``, ``width``, ``height``, ``frames``)
            as :func:`write_labelstudio_video` writes, or ``width``/``height`` in its regions'
            ``original_width``/``original_height`` and ``framesCount``.
        class_names: the label set (default: the labels found, sorted).
        use: ``"annotations"``, ``"predictions"`` or ``"auto"`` (annotations where a task has them).

    Returns:
        Every frame of every task, boxes with ``track_id``: the number after the last ``-``
        of the region id as written here, else the region's position (1..).

    Raises:
        ValueError: malformed tasks, naming the file, task and region.
    """
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        source = os.path.join(str(source), TASKS)
    data, name = load_json(source)
    if not isinstance(data, list):
        raise ValueError(f"{name}: Label Studio tasks are a JSON list")
    found: list[tuple[str, int, int, int, list[Track]]] = []
    labels: set[str] = set()
    for n, task in enumerate(data):
        where = f"{name}: task {n}"
        meta = task.get("meta") or {}
        results = _results(task, use, where)
        first = results[0]["value"] if results else {}
        w = int(number(meta.get("width", results[0].get("original_width") if results else None), where, "width"))
        h = int(number(meta.get("height", results[0].get("original_height") if results else None), where, "height"))
        frames = int(number(meta.get("frames", first.get("framesCount")), where, "frames"))
        tracks = []
        for r_i, r in enumerate(r for r in results if r.get("type") == "videorectangle"):
            rw = f"{where}, region {r.get('id', r_i)}"
            v = r.get("value") or {}
            label = (v.get("labels") or [""])[0]
            labels.add(label)
            seq = sorted(v.get("sequence") or [], key=lambda s: s.get("frame", 0))
            k = _keyframes(seq, w, h, float(r.get("score", 1.0)), frames, rw)
            f, b, s, _ = track_from_keyframes(k, frames - 1)
            rid = str(r.get("id", ""))
            tid = int(rid.rsplit("-", 1)[1]) if "-" in rid and rid.rsplit("-", 1)[1].isdigit() else r_i + 1
            if len(f):
                tracks.append(Track(tid, label, f, b, s))
        found.append((str(meta.get("sequence", f"task{n}")), w, h, frames, tracks))
    names = list(class_names) if class_names is not None else sorted(labels)
    dets = []
    for seq_name, w, h, frames, tracks in found:
        images = [ImageInfo(f"{seq_name}#{i}", w, h, None, i, None) for i in range(frames)]
        dets += from_tracks(tracks, images, names).detections
    return Results(dets, tuple(names))


def _results(task: dict[str, Any], use: str, where: str) -> list[dict[str, Any]]:
    if not isinstance(task, dict):
        raise ValueError(f"{where}: not an object")
    ann = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    pred = task.get("predictions") or []
    pick = ann if (use == "annotations" or (use == "auto" and ann)) else pred
    return list(pick[-1].get("result") or []) if pick else []


def _keyframes(seq: list[dict[str, Any]], w: int, h: int, score: float, frames: int, where: str) -> KeyframeTrack:
    rows: list[tuple[int, list[float], float, bool]] = []
    for i, s in enumerate(seq):
        kw = f"{where}, keyframe {i}"
        f = int(number(s.get("frame"), kw, "frame")) - 1
        x, y, bw, bh = (number(s.get(c), kw, c) for c in ("x", "y", "width", "height"))
        box = [x * w / 100, y * h / 100, (x + bw) * w / 100, (y + bh) * h / 100]
        refuse_invalid(box, (w, h), kw)
        sc = number(s.get("score", score), kw, "score")
        if rows and rows[-1][0] >= f:
            raise ValueError(f"{kw}: frame {f + 1} repeats or goes back")
        rows.append((f, box, sc, False))
        nxt = int(seq[i + 1]["frame"]) - 1 if i + 1 < len(seq) else frames
        if not s.get("enabled", True) and nxt > f + 1:  # hidden from the next frame on
            rows.append((f + 1, box, sc, True))
    arr = [np.array([r[j] for r in rows]) for j in range(4)]
    return KeyframeTrack(arr[0].astype(np.int64), arr[1].reshape(-1, 4), arr[2].astype(float), arr[3].astype(bool),
                         np.zeros(len(rows), bool))
