"""The shard log: an append-only, crash-safe record of a batch job, one line per input.

Layout, under ``OUT/.autolabel/``:

* ``manifest.json``: what the log holds (format version, ``model_id``, ``class_names``,
  ``conf``, ``iou``, ``max_det``; pose models add ``keypoint_spec``), written atomically
  when the log is created.
* ``shard-00000.jsonl``, ``shard-00001.jsonl``, ...: one new shard per run, never
  reopened, so a torn line can only ever be the last line of a shard.
* ``lock``: held with ``flock`` while a job writes (a second job on the same ``OUT``
  fails at once; the kernel drops the lock when a job is killed).

One JSON object per line (keys left out when empty)::

    {"key": "dir/a.jpg", "status": "ok", "model_id": "yolov5n@6a4f08578465",
     "width": 640, "height": 480, "path": "/data/dir/a.jpg",
     "frame_index": 30, "timestamp": 1.2,              # video frames only
     "xyxy": [[x1, y1, x2, y2], ...], "scores": [...], "class_ids": [...],
     "top_probs": [[[class_id, p], ...], ...],          # when the backend has class probabilities
     "polygons": [[[x, y, x, y, ...], ...], ...],       # segmentation models: per box, its polygons
     "keypoints": [[[x, y, v], ...], ...]}              # pose models: per box, K (x, y, visibility)
    {"key": "dir/b.jpg", "status": "failed", "model_id": "...", "reason": "cannot decode: ..."}

Boxes and scores are the float32 values the model produced, written exactly (a record
read back equals the in-memory :class:`~autolabel.core.Detections`). ``top_probs``
keeps, per box, the ``min(5, C)`` most probable classes rounded to 4 decimals
(enough for entropy / margin routing; the rest of the vector is read back as 0; with
5 classes or fewer the vector is complete).

Every batch is written with one ``write``, then flushed and ``fsync``-ed. A line that
does not end in a newline is a write cut short (``kill -9``, power loss): it is
ignored on read (and counted in :attr:`ShardLog.torn`); any other unreadable line is
an error naming the shard and line. When a key has several records (a retried
failure), the last one wins; records keep the position of the key's first record.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.keypoints import KeypointSpec
from autolabel.io.files import atomic_write, fsync_dir

try:  # POSIX only; elsewhere two jobs on one OUT are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOG_DIR", "LogError", "LogResults", "ResumeError", "ShardLog", "encode_record", "decode_record"]

LOG_DIR = ".autolabel"
FORMAT_VERSION = 1
TOP_PROBS = 5
_MANIFEST_KEYS = ("model_id", "class_names", "conf", "iou", "max_det")


class LogError(ValueError):
    """The shard log is corrupt, locked by another job, or does not fit this run."""


class ResumeError(LogError):
    """``OUT`` already holds results of another model or other settings."""


def encode_record(x: Detections | Failure, model_id: str) -> str:
    """One log line (with its newline) for a labeled image or a failed input."""
    if isinstance(x, Failure):
        return json.dumps({"key": x.key, "status": "failed", "model_id": model_id, "reason": x.reason}) + "\n"
    info = x.image
    if info is None:
        raise ValueError("a log record needs Detections with their ImageInfo")
    rec: dict[str, Any] = {"key": info.key, "status": "ok", "model_id": model_id,
                           "width": info.width, "height": info.height}
    for name in ("path", "frame_index", "timestamp"):
        if getattr(info, name) is not None:
            rec[name] = getattr(info, name)
    rec["xyxy"] = x.xyxy.tolist()
    rec["scores"] = x.scores.tolist()
    rec["class_ids"] = x.class_ids.tolist()
    if x.class_probs is not None and len(x):
        k = min(TOP_PROBS, x.class_probs.shape[1])
        top = np.argsort(-x.class_probs, axis=1, kind="stable")[:, :k]
        p = np.round(np.take_along_axis(x.class_probs, top, 1).astype(np.float64), 4)
        rec["top_probs"] = [[[int(c), float(v)] for c, v in zip(tc, tv)] for tc, tv in zip(top, p)]
    if "polygons" in x.data:
        rec["polygons"] = list(x.data["polygons"])
    if x.keypoints is not None:
        rec["keypoints"] = x.keypoints.tolist()  # float32 values, exact in JSON as float64
    return json.dumps(rec, separators=(",", ":")) + "\n"


def decode_record(
    rec: dict[str, Any], class_names: Sequence[str], probs: bool = True, keypoint_spec: KeypointSpec | None = None
) -> Detections | Failure:
    """A log record back to :class:`Detections` (with its image, ``class_probs`` when
    recorded and ``probs``, ``keypoints`` named by ``keypoint_spec`` when recorded) or :class:`Failure`."""
    if rec["status"] != "ok":
        return Failure(rec["key"], rec.get("reason", ""))
    info = ImageInfo(rec["key"], rec["width"], rec["height"], rec.get("path"),
                     rec.get("frame_index"), rec.get("timestamp"))
    dense = None
    if probs and "top_probs" in rec:
        dense = np.zeros((len(rec["scores"]), len(class_names)), np.float32)
        for row, pairs in zip(dense, rec["top_probs"]):
            for c, v in pairs:
                row[c] = v
    data = {}
    if "polygons" in rec:
        data["polygons"] = np.empty(len(rec["polygons"]), object)
        for k, polys in enumerate(rec["polygons"]):  # element by element: numpy would nest the lists
            data["polygons"][k] = polys
    kp = rec.get("keypoints")
    return Detections(np.asarray(rec["xyxy"], np.float32).reshape(-1, 4), np.asarray(rec["scores"]),
                      np.asarray(rec["class_ids"]), tuple(class_names), info, dense, data=data,
                      keypoint_spec=keypoint_spec if kp is not None else None,
                      keypoints=None if kp is None else np.asarray(kp, np.float32).reshape(len(rec["scores"]), -1, 3))


class ShardLog:
    """The shard log of one output directory (see the module docs for the format).

    Use as a context manager after :meth:`open`; :meth:`records` may be called with or
    without the log open.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.dir = self.out_dir / LOG_DIR
        self.torn: list[str] = []  # shards whose last line was cut short
        self._lock_fd: int | None = None
        self._file: Any = None

    # -- writing -----------------------------------------------------------------
    def open(self, manifest: dict[str, Any], resume: bool = True) -> ShardLog:
        """Lock the log, check (or write) its manifest and start a new shard.

        ``resume=False`` deletes an existing log first. Raises :class:`ResumeError`
        when the existing log was written by another model or with other settings.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            mpath = self.dir / "manifest.json"
            if not resume:
                for p in [mpath, *self.shards()]:
                    p.unlink(missing_ok=True)
            want = {"version": FORMAT_VERSION, **{k: manifest[k] for k in _MANIFEST_KEYS}}
            if manifest.get("keypoint_spec") is not None:  # pose models
                want["keypoint_spec"] = manifest["keypoint_spec"]
            want["class_names"] = list(want["class_names"])
            if mpath.is_file():
                self._check(self.manifest(), want)
            else:
                if self.shards():
                    raise LogError(f"{self.dir}: shard files without manifest.json; remove the folder to start over")
                atomic_write(mpath, json.dumps(want, indent=2) + "\n", durable=True)
            shards = self.shards()
            n = int(shards[-1].stem.split("-")[1]) + 1 if shards else 0
            path = self.dir / f"shard-{n:05d}.jsonl"
            self._file = open(path, "xb")
            fsync_dir(self.dir)
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                os.close(fd)
                lock = self.dir / "lock"
                raise LogError(f"another autolabel job is writing to {self.out_dir} (lock {lock})") from e
        self._lock_fd = fd

    def _check(self, have: dict[str, Any], want: dict[str, Any]) -> None:
        diff = [f"{k}: log has {have.get(k)!r}, this run {want[k]!r}" for k in want
                if k != "class_names" and have.get(k) != want[k]]
        if have.get("class_names") != want["class_names"]:
            diff.append("class_names differ")
        if diff:
            raise ResumeError(
                f"{self.out_dir} already holds results of another model or settings ({'; '.join(diff)}). "
                "Use another output directory, or start over with --no-resume (resume=False)."
            )

    def append(self, lines: Sequence[str]) -> None:
        """Append records (from :func:`encode_record`) durably: one write, flush, fsync."""
        if self._file is None:
            raise LogError("the shard log is not open")
        if lines:
            self._file.write("".join(lines).encode("utf-8"))
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def __enter__(self) -> ShardLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.dir.glob("shard-[0-9]*.jsonl"))

    def manifest(self) -> dict[str, Any]:
        path = self.dir / "manifest.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise LogError(f"no shard log in {self.out_dir} ({path} missing)") from e
        except json.JSONDecodeError as e:
            raise LogError(f"{path}: corrupt manifest: {e}") from e

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, shard by shard, in write order; torn last lines skipped."""
        return (rec for _, _, rec in self._scan())

    def _scan(self, shards: Sequence[Path] | None = None) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """``(shard number in shards, byte offset, record)`` of every record of ``shards``
        (default: all)."""
        self.torn = []
        for i, shard in enumerate(self.shards() if shards is None else shards):
            with open(shard, "rb") as f:
                offset = 0
                for n, line in enumerate(f, 1):
                    if not line.endswith(b"\n"):
                        self.torn.append(shard.name)
                        break
                    try:
                        yield i, offset, json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise LogError(f"{shard}:{n}: corrupt record ({e})") from e
                    offset += len(line)

    def done_keys(self, retry_failed: bool = False) -> set[str]:
        """Keys a resumed run skips: every recorded key, or only the labeled ones."""
        status: dict[str, str] = {}
        for rec in self.records():
            status[rec["key"]] = rec["status"]
        return {k for k, s in status.items() if s == "ok" or not retry_failed}

    def view(self, probs: bool = True) -> LogResults:
        """The log's results, read as they are iterated (see :class:`LogResults`)."""
        return LogResults(self, probs)

    def results(self, probs: bool = True) -> Results:
        """The log as in-memory :class:`Results` (labeled images in log order, failures
        listed); ``probs=False`` leaves out the class probabilities (less memory)."""
        view = self.view(probs)
        return Results(list(view), view.class_names, view.model_id, list(view.failures), view.keypoint_spec)

_Record = TypeVar("_Record", Detections, Failure)


class LogResults:
    """The results in a shard log, read from it as they are iterated, so that an export
    of any size holds one image at a time: labeled images (:class:`Detections`, in the
    order of each key's first record, with its last record's content) and
    :attr:`failures`, each iterable any number of times. Holds only each key's last
    record's position (a pass over the log when made). Made by :meth:`ShardLog.view`;
    :meth:`map` transforms each image as it is read."""

    def __init__(self, log: ShardLog, probs: bool = True):
        m = log.manifest()
        self.class_names: tuple[str, ...] = tuple(m["class_names"])
        self.model_id: str = m["model_id"]
        spec = m.get("keypoint_spec")
        #: names and skeleton of the keypoints (pose models), from the manifest
        self.keypoint_spec = None if spec is None else KeypointSpec.from_dict(spec)
        self.probs = probs
        self.shards = log.shards()
        self.has_frames = False  # whether any labeled image is a video frame
        self._transform: Callable[[Detections], Detections] | None = None
        last: dict[str, tuple[int, int, bool]] = {}  # key -> (shard, offset, labeled) of its last record
        for shard, offset, rec in log._scan(self.shards):
            ok = rec["status"] == "ok"
            last[rec["key"]] = (shard, offset, ok)
            self.has_frames = self.has_frames or (ok and rec.get("frame_index") is not None)
        self._labeled = np.array([pos[:2] for pos in last.values() if pos[2]], np.int64).reshape(-1, 2)
        self._failed = np.array([pos[:2] for pos in last.values() if not pos[2]], np.int64).reshape(-1, 2)
        self._boxes: int | None = None

    def __len__(self) -> int:
        return len(self._labeled)

    def __iter__(self) -> Iterator[Detections]:
        boxes = 0
        for x in self._read(self._labeled, Detections):
            d = x if self._transform is None else self._transform(x)
            boxes += len(d)
            yield d
        self._boxes = boxes

    @property
    def failures(self) -> _Failures:
        """The inputs that could not be read (:class:`Failure`), read as iterated."""
        return _Failures(self)

    @property
    def num_boxes(self) -> int:
        """Boxes in all images (counted on the first full iteration)."""
        if self._boxes is None:
            self._boxes = sum(len(d) for d in self)
        return self._boxes

    def map(self, transform: Callable[[Detections], Detections], class_names: Sequence[str]) -> LogResults:
        """A view whose images are ``transform(image)``, with these class names."""
        out = copy.copy(self)
        out._transform, out.class_names, out._boxes = transform, tuple(class_names), None
        return out

    def _read(self, positions: np.ndarray, kind: type[_Record]) -> Iterator[_Record]:
        """The records at ``positions`` ((shard, offset) rows), decoded: each a ``kind``."""
        files: dict[int, Any] = {}
        try:
            for row in positions:
                shard, offset = int(row[0]), int(row[1])
                if shard not in files:
                    files[shard] = open(self.shards[shard], "rb")
                f = files[shard]
                if f.tell() != offset:  # records of one shard mostly come in order: no seek
                    f.seek(offset)
                x = decode_record(json.loads(f.readline()), self.class_names, self.probs, self.keypoint_spec)
                if not isinstance(x, kind):
                    raise RuntimeError(f"{self.shards[shard]}: the record at byte {offset} is not a {kind.__name__}")
                yield x
        finally:
            for f in files.values():
                f.close()


class _Failures:
    """The failures of a :class:`LogResults`, read as iterated."""

    def __init__(self, results: LogResults):
        self.results = results

    def __len__(self) -> int:
        return len(self.results._failed)

    def __iter__(self) -> Iterator[Failure]:
        return self.results._read(self.results._failed, Failure)
