"""MOTChallenge text files: one ``<sequence>.txt`` per sequence, plus a ``<sequence>.ini``.

Rows are ``frame,id,x,y,w,h,score,-1,-1,-1`` (the MOTChallenge tracker layout that
TrackEval and ``trackers.eval`` read): ``frame`` is ``ImageInfo.frame_index + 1`` (MOT
frames are 1-based), ``x, y, w, h`` top-left corner and size in pixels with 2 decimals.
With more than one class, column 8 holds the class number (1-based, in the order of the
ini's ``labels``). Per-box ``Detections.data`` arrays (refined tracks carry ``detected``,
``raw_iou``, ``joined``: :mod:`autolabel.video.refine`) go to ``<sequence>.boxdata.csv``
(``frame,id,<keys>``) beside the file, which the reader reads back when present. The ``.ini`` beside each file is a MOTChallenge ``seqinfo.ini``
(``name``, ``frameRate``, ``seqLength``, ``imWidth``, ``imHeight``) plus ``labels`` and
``model_id``, so the reader can rebuild every frame's identity, empty frames included.

Ground-truth files (``gt/gt.txt``) are read with ``ground_truth=True``, in any of the
MOTChallenge layouts: MOT15 (7 or 10 columns: ``flag`` -1 or 1 = consider, then world
coordinates ``x, y, z`` or -1), MOT16/17/20 (9 columns: ``flag, class, visibility``) and
8 columns (``flag, class``). Rows whose flag is 0 are dropped, and in the layouts with a
class column (8 or 9 columns), rows of a class other than 1 (pedestrian), as
MOTChallenge's evaluation does. A 10-column file's columns 8-10 are world coordinates,
never a class.
"""

from __future__ import annotations

import configparser
import os
from typing import Any, Sequence

import numpy as np

from autolabel.core import Detections, ImageInfo, Results
from autolabel.formats._common import ResultsLike, check_names, num, refuse_invalid
from autolabel.io.files import atomic_writer, safe_relpath

__all__ = ["write_mot", "read_mot"]


def write_mot(results: ResultsLike, out_dir: str | os.PathLike, fps: float | None = None,
              ground_truth: bool = False) -> list[str]:
    """Write every sequence of ``results`` (frames with ``track_id``) as ``<name>.txt`` + ``<name>.ini``.

    Args:
        results: video frames (``frame_index`` set) whose boxes carry ``track_id``.
        out_dir: the output folder.
        fps: frame rate for the ini (default: derived from the frames' timestamps, else 25).
        ground_truth: write MOT16 ground-truth rows ``frame,id,x,y,w,h,1,1,1`` (consider
            flag 1, class 1 = pedestrian, visibility 1), single class only.

    Returns:
        The written paths.

    Raises:
        ValueError: frames that are not video frames, boxes without ``track_id``.
    """
    from autolabel.video.tracks import sequences

    check_names(results.class_names)
    multi = len(results.class_names) > 1
    if ground_truth and multi:
        raise ValueError("MOT ground truth has one class (pedestrian); filter the results to one class first")
    written = []
    for frames in sequences(results).values():
        name = frames[0].info.sequence_name
        base = os.path.join(str(out_dir), safe_relpath(name).replace("/", "_"))
        with atomic_writer(base + ".txt") as f:
            for d in frames:
                if len(d) and d.track_id is None:
                    raise ValueError(f"frame {d.info.key!r}: boxes without track_id cannot be written as MOT")
                frame = d.info.frame + 1
                ids = d.track_id if d.track_id is not None else np.zeros(0, np.int64)
                for b, s, c, t in zip(d.xywh.tolist(), d.scores, d.class_ids.tolist(), ids.tolist()):
                    box = f"{frame},{t},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f}"
                    if ground_truth:
                        f.write(f"{box},1,1,1\n")
                    else:
                        f.write(f"{box},{num(s)},{c + 1 if multi else -1},-1,-1\n")
        extra = _write_boxdata(base + ".boxdata.csv", frames)
        first = frames[0].info
        rate = fps or _rate(frames) or 25.0
        ini = _CaseKeptParser()
        ini["Sequence"] = {
            "name": name, "frameRate": f"{rate:g}", "seqLength": str(frames[-1].info.frame + 1),
            "imWidth": str(first.width), "imHeight": str(first.height),
            "labels": ",".join(results.class_names), "model_id": results.model_id,
        }
        with atomic_writer(base + ".ini") as f:
            ini.write(f)
        written += [base + ".txt", base + ".ini", *extra]
    return written


def _write_boxdata(path: str, frames: Sequence[Detections]) -> list[str]:
    """``frame,id,<data keys>`` of every box, when the boxes carry numeric ``data``."""
    keys = sorted(k for k in frames[0].data if all(k in d.data and d.data[k].dtype.kind in "biuf" for d in frames))
    if not keys:
        return []
    with atomic_writer(path) as f:
        f.write(",".join(["frame", "id", *keys]) + "\n")
        for d in frames:
            for i, t in enumerate((d.track_id if d.track_id is not None else np.zeros(0, np.int64)).tolist()):
                vals = [num(float(d.data[k][i])) for k in keys]
                f.write(",".join([str(int(d.image.frame_index) + 1), str(t), *vals]) + "\n")  # type: ignore[union-attr,arg-type]
    return [path]


def _read_boxdata(path: str) -> dict[tuple[int, int], dict[str, float]]:
    """``{(frame, id): {key: value}}`` of a ``.boxdata.csv`` (empty when there is none)."""
    if not os.path.isfile(path):
        return {}
    import csv

    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            try:
                out[(int(row.pop("frame")), int(row.pop("id")))] = {k: float(v) for k, v in row.items()}
            except (TypeError, ValueError, KeyError):
                raise ValueError(f"{path}, line {n}: expected frame,id and numbers") from None
    return out


def _rate(frames: Sequence[Detections]) -> float | None:
    a, b = frames[0].info, frames[-1].info
    if a.timestamp is None or b.timestamp is None or b.timestamp <= a.timestamp:
        return None
    return round((b.frame - a.frame) / (b.timestamp - a.timestamp), 3)


def _parse(path: str) -> tuple[np.ndarray, int]:
    """The rows as (n, 8) floats (missing columns: flag 1, class -1) and the widest row's column count."""
    rows, width = [], 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = [p for p in line.replace(" ", "").strip().split(",")]
            if parts == [""]:
                continue
            if len(parts) < 6:
                raise ValueError(f"{path}, line {n}: expected at least 6 comma-separated values, got {len(parts)}")
            try:
                vals = [float(p) for p in parts[:8]]
            except ValueError:
                raise ValueError(f"{path}, line {n}: not a number in {line.strip()!r}") from None
            if not np.isfinite(vals).all():
                raise ValueError(f"{path}, line {n}: non-finite value")
            width = max(width, len(parts))
            rows.append(vals + [1.0] * (7 - len(vals)) + [-1.0] * (8 - max(len(vals), 7)))
    return np.array(rows, np.float64).reshape(-1, 8), width


def _frames(path: str, meta: dict[str, str], rows: np.ndarray) -> list[tuple[str, str | None, int, float | None]]:
    """``(key, path, frame_index, timestamp)`` of a sequence's frames from its ``.ini``
    (frames 0..seqLength-1 keyed ``<name>#<index>``; without a length, up to the last row's frame)."""
    name = meta.get("name") or os.path.splitext(os.path.basename(path))[0]
    fps = float(meta.get("frameRate", 0)) or None
    n = int(meta.get("seqLength", 0)) or int(rows[:, 0].max(initial=0))
    return [(f"{name}#{i}", None, i, None if fps is None else round(i / fps, 6)) for i in range(n)]


def read_mot(
    path: str | os.PathLike,
    frames: Sequence[tuple[str, str | None, int, float | None]] | None = None,
    image_size: tuple[int, int] | None = None,
    ground_truth: bool = False,
    class_name: str = "person",
) -> Results:
    """A MOT file as per-frame :class:`Results` with ``track_id``.

    Args:
        path: the ``.txt`` file, or a folder of them, one sequence each (a ``.ini`` beside it, as :func:`write_mot` writes, gives
            the sequence name, size, frame rate, length and labels).
        frames: ``(key, path, frame_index, timestamp)`` of every frame, in order (default:
            from the ``.ini``: frames 0..seqLength-1 keyed ``<name>#<index>``).
        image_size: ``(width, height)`` when no ``.ini`` gives it.
        ground_truth: apply MOTChallenge's ground-truth row filter (see the module docs).
        class_name: the class of single-class files.

    Returns:
        One :class:`Detections` per frame (empty frames included); scores from column 7
        (1.0 for ground truth).

    Raises:
        ValueError: malformed rows (naming file and line), a frame outside the sequence,
        one id twice in a frame, or no way to know the image size.
    """
    path = str(path)
    if os.path.isdir(path):
        found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".txt"))
        if not found:
            raise ValueError(f"{path}: no MOT .txt files in the folder")
        if frames is not None and len(found) > 1:
            raise ValueError(f"{path}: frames= describes one sequence, the folder holds {len(found)}")
        parts = [read_mot(p, frames, image_size, ground_truth, class_name) for p in found]
        return Results([d for r in parts for d in r], parts[0].class_names, parts[0].model_id)
    rows, width = _parse(path)
    meta = _ini(os.path.splitext(path)[0] + ".ini")
    labels = [x for x in meta.get("labels", "").split(",") if x] or [class_name]
    if ground_truth:
        has_class = width in (8, 9)  # MOT16+ (flag, class, visibility); MOT15's 10 columns end in world x, y, z
        pedestrian = (rows[:, 7] == -1) | (rows[:, 7] == 1) if has_class else np.ones(len(rows), bool)
        rows = rows[(rows[:, 6] != 0) & pedestrian]
    if image_size is None and "imWidth" in meta:
        image_size = (int(meta["imWidth"]), int(meta["imHeight"]))
    if image_size is None:
        raise ValueError(f"{path}: no .ini beside it; pass image_size=(width, height)")
    frames = _frames(path, meta, rows) if frames is None else frames
    index = {f[2]: j for j, f in enumerate(frames)}
    per: list[list[np.ndarray]] = [[] for _ in frames]
    for r in rows:
        j = index.get(int(r[0]) - 1)
        if j is None:
            raise ValueError(f"{path}: frame {int(r[0])} is outside the sequence ({len(frames)} frames)")
        per[j].append(r)
    w, h = image_size
    extra = _read_boxdata(os.path.splitext(path)[0] + ".boxdata.csv")
    keys = sorted(next(iter(extra.values()), {}))
    dets = []
    for (key, p, fi, ts), rs in zip(frames, per):
        a = np.array(rs).reshape(-1, 8)
        ids = a[:, 1].astype(np.int64)
        if len(set(ids.tolist())) != len(ids):
            raise ValueError(f"{path}: frame {fi + 1} has one track id twice")
        cls = np.maximum(a[:, 7].astype(np.int64) - 1, 0) if len(labels) > 1 else np.zeros(len(a), np.int64)
        if (cls >= len(labels)).any():
            raise ValueError(f"{path}: frame {fi + 1}: class number beyond the {len(labels)} labels")
        for r in a:
            refuse_invalid([r[2], r[3], r[2] + r[4], r[3] + r[5]], (w, h), f"{path}: frame {fi + 1}, id {int(r[1])}")
        scores = np.ones(len(a)) if ground_truth else a[:, 6]
        order = np.argsort(ids, kind="stable")
        d = Detections.from_xywh(a[order, 2:6], scores[order], cls[order], class_names=labels,
                                 image=ImageInfo(key, w, h, p, fi, ts), track_id=ids[order])
        if keys:
            d.data.update({k: np.array([extra.get((fi + 1, int(t)), {}).get(k, np.nan) for t in ids[order]])
                           for k in keys})
        dets.append(d)
    return Results(dets, tuple(labels), meta.get("model_id", ""))


class _CaseKeptParser(configparser.ConfigParser):
    """Keeps MOT's camelCase keys (``frameRate``) as written."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def _ini(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    cp = _CaseKeptParser()
    try:
        cp.read(path, encoding="utf-8")
    except configparser.Error as e:
        raise ValueError(f"{path}: not a valid ini file: {e}") from None
    return dict(cp["Sequence"]) if cp.has_section("Sequence") else {}
