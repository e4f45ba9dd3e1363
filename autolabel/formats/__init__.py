"""Annotation-tool formats: a writer ("sink") and a reader for each of :data:`FORMATS`.

Every writer keeps the scores and the model id, writes each file atomically (temporary
file + rename) and never writes outside its output folder, whatever the image names
(``../``, absolute paths and drive letters are made relative, see
:func:`~autolabel.formats._common.safe_relpath`). What a writer writes, its reader
reads back to the same images, classes and boxes, to the format's precision:

=============  =================================================  =========================
format         files in ``out_dir``                               box precision
=============  =================================================  =========================
coco           ``annotations.json``                               exact (float32)
yolo           ``data.yaml``, ``labels/<stem>.txt``               6 decimals of the size
voc            ``Annotations/<stem>.xml``, ``labelmap.txt``        1 pixel (integers)
labelstudio    ``tasks.json``, ``label_config.xml``               float64 percent
cvat           ``annotations.xml``                                2 decimals
=============  =================================================  =========================

Track formats (:data:`TRACK_FORMATS`: video frames whose boxes carry ``track_id``; COCO
keeps ``track_id`` too): ``mot`` (``<sequence>.txt`` + ``.ini``, 2 decimals),
``cvat-video`` (``<sequence>.xml``, CVAT for video 1.1, tracks as keyframes) and
``labelstudio-video`` (``video_tasks.json`` + ``video_label_config.xml``). The keyframe
formats read back every frame within IoU >= ``tau`` (0.7) of the box written, exactly
with ``tau=None``.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from autolabel.core import Results
from autolabel.formats._common import ResultsLike
from autolabel.formats.coco import read_coco, write_coco
from autolabel.formats.cvat import read_cvat, write_cvat
from autolabel.formats.labelstudio import labelstudio_config, read_labelstudio, write_labelstudio
from autolabel.formats.cvat_video import read_cvat_video, write_cvat_video
from autolabel.formats.labelstudio_video import labelstudio_video_config, read_labelstudio_video, write_labelstudio_video
from autolabel.formats.mot import read_mot, write_mot
from autolabel.formats.voc import read_voc, write_voc
from autolabel.formats.yolo import read_yolo, write_yolo

__all__ = [
    "FORMATS", "TRACK_FORMATS", "check_format", "write", "read", "labelstudio_config",
    "write_coco", "write_yolo", "write_voc", "write_labelstudio", "write_cvat",
    "read_coco", "read_yolo", "read_voc", "read_labelstudio", "read_cvat", "write_mot", "read_mot",
    "write_cvat_video", "read_cvat_video", "write_labelstudio_video", "read_labelstudio_video",
    "labelstudio_video_config",
]

FORMATS = ("coco", "yolo", "voc", "labelstudio", "cvat")
TRACK_FORMATS = ("mot", "cvat-video", "labelstudio-video")  # formats of tracks only: video frames whose boxes carry track_id (coco keeps it too)
_FILE = {"coco": "annotations.json", "labelstudio": "tasks.json", "cvat": "annotations.xml"}
_WRITE: dict[str, Callable[..., list[str]]] = {
    "coco": write_coco, "yolo": write_yolo, "voc": write_voc, "labelstudio": write_labelstudio, "cvat": write_cvat,
    "mot": write_mot, "cvat-video": write_cvat_video, "labelstudio-video": write_labelstudio_video,
}
_READ: dict[str, Callable[..., Results]] = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "labelstudio": read_labelstudio, "cvat": read_cvat, "mot": read_mot,
         "cvat-video": read_cvat_video, "labelstudio-video": read_labelstudio_video}


def check_format(format: str) -> str:
    """``format`` if it is one of :data:`FORMATS`, else a ValueError listing them."""
    if format not in FORMATS + TRACK_FORMATS:
        raise ValueError(f"unknown format {format!r}; choose from {', '.join(FORMATS + TRACK_FORMATS)}")
    return format


def write(results: ResultsLike, out_dir: str | os.PathLike, format: str = "coco", **options: Any) -> list[str]:
    """Write ``results`` into ``out_dir`` (created) in ``format``.

    Writers stream: they go through the images once, holding one at a time (``results``
    may be a lazy view such as :class:`~autolabel.engine.log.LogResults`).

    Args:
        results: boxes in input pixels (xyxy), one :class:`~autolabel.core.Detections`
            with an :class:`~autolabel.core.ImageInfo` per image.
        out_dir: the output folder; nothing is written outside it.
        format: one of :data:`FORMATS`.
        options: go to the format's ``write_<format>`` function.

    Returns:
        The written paths.

    Raises:
        ValueError: an unknown format, an image without size or with a repeated key
            (the write stops there, leaving the per-image files of YOLO and VOC
            already written), class names a format cannot store, a name that would
            leave ``out_dir``.
        OSError: the folder cannot be written (the original error).
    """
    fmt = check_format(format)
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, _FILE[fmt]) if fmt in _FILE else out_dir
    return _WRITE[fmt](results, target, **options)


def read(path: str | os.PathLike, format: str, **kw: Any) -> Results:
    """Read what :func:`write` wrote.

    Args:
        path: the ``out_dir`` of :func:`write`, or the file itself.
        format: one of :data:`FORMATS`.
        kw: go to the format's ``read_<format>`` function.

    Returns:
        :class:`~autolabel.core.Results` with boxes in pixels (xyxy).

    Raises:
        ValueError: an unknown format, or a file that does not parse; the message names
            the file and the record.
        FileNotFoundError: no such file.
    """
    fmt = check_format(format)
    if fmt in _FILE and os.path.isdir(path):
        path = os.path.join(path, _FILE[fmt])
    return _READ[fmt](path, **kw)
