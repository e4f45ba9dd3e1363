"""YOLO (Ultralytics) detection labels: ``labels/<stem>.txt`` + ``data.yaml``.

A label line is ``class cx cy w h`` normalised to 0..1 (6 decimals), plus a 6th
confidence column unless ``confidence=False``. ``data.yaml`` holds ``names``, ``nc``,
``train``/``val`` (``images``) and ``model_id``. Pose models (``Detections.keypoints``) write
Ultralytics' pose label lines, ``class cx cy w h`` then ``x y v`` per keypoint (normalised, 6
decimals), and ``kpt_shape``, ``flip_idx``, ``kpt_names`` (per class, as Ultralytics writes them)
and ``skeleton`` (0-based) in
``data.yaml``; ``v`` is the model's visibility score when ``confidence`` (as Ultralytics'
``save_txt(save_conf=True)`` writes it), else COCO's flag (2 where the score >= ``keypoint_conf``,
0 below; labels' own flags 0/1/2 are kept). Images are not copied: put them at
``images/<file name>`` and the Ultralytics images -> labels rule finds every label file.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import yaml

from autolabel.config import load_yaml
from autolabel.core import ImageInfo, Results
from autolabel.formats._common import (
    Builder, ResultsLike, Size, check_names, from_relative, keypoint_flags, num, number, per_image_paths, rel_posix,
    size_for, to_relative, with_keypoints,
)
from autolabel.io.files import atomic_write
from autolabel.io.images import image_size
from autolabel.io.images import find_images
from autolabel.keypoints import KeypointSpec

__all__ = ["write_yolo", "read_yolo"]


def write_yolo(
    results: ResultsLike, out_dir: str | os.PathLike, confidence: bool = True, keypoint_conf: float = 0.5
) -> list[str]:
    """Write ``data.yaml`` and one ``labels/<stem>.txt`` per image (empty when no boxes).

    Args:
        results: boxes in pixels (xyxy), each image with its size.
        out_dir: the dataset folder.
        confidence: add the score as a 6th column (as Ultralytics' ``save_conf``
            predictions do). Ultralytics' training loader refuses 6-column labels
            ("labels require 5 columns"): write ``confidence=False`` for a dataset to
            train on.
        keypoint_conf: with ``confidence=False``, keypoints scoring below it get ``v = 0``.

    Returns:
        The written paths.

    Raises:
        ValueError: class names the format cannot store, two images with one stem.
    """
    out_dir = str(out_dir)
    check_names(results.class_names)
    written = []
    spec = getattr(results, "keypoint_spec", None)
    for d, info, path in per_image_paths(results, out_dir, "labels", ".txt"):
        rel = to_relative(d, info, center=True)
        kps = _keypoint_text(d.keypoints, info, confidence, keypoint_conf) if spec is not None else [""] * len(d)
        lines = [
            f"{c} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}{k}" + (f" {num(s)}" if confidence else "")
            for c, r, k, s in zip(d.class_ids.tolist(), rel, kps, d.scores)
        ]
        written.append(atomic_write(path, "".join(line + "\n" for line in lines)))
    data = {
        "train": "images", "val": "images", "nc": len(results.class_names),
        "names": dict(enumerate(results.class_names)), "model_id": results.model_id,
    }
    if spec is not None:
        data.update(kpt_shape=[len(spec), 3], flip_idx=_flip_idx(spec.names), kpt_names={i: list(spec.names) for i in range(len(results.class_names))},
                    skeleton=[list(e) for e in spec.skeleton])
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return [atomic_write(os.path.join(out_dir, "data.yaml"), text), *written]


def read_yolo(
    root: str | os.PathLike, split: str | None = None, image_sizes: Mapping[str, Size] | None = None
) -> Results:
    """A YOLO dataset: ``root`` is its folder (with ``data.yaml``) or the YAML file.

    Images: every image under ``images/`` (or, without it, the ``train``/``val``/``test``
    entries), or those of ``split`` only; an entry is a folder, an image list ``.txt`` or
    an image, relative to ``path:`` (itself relative to the YAML's folder). Keys are the
    paths below the ``images`` folder; labels follow the images -> labels rule, a missing
    label file meaning no boxes. Sizes come from ``image_sizes`` (``{key: (width,
    height)}``) or the image headers (EXIF-oriented); with no images at all, the keys of
    ``image_sizes`` name the images. A 6th column is read as the confidence."""
    yaml_path = str(root) if str(root).endswith((".yaml", ".yml")) else os.path.join(str(root), "data.yaml")
    if not os.path.isfile(yaml_path):
        raise FileNotFoundError(f"not a YOLO dataset (no data.yaml): {root}")
    data = load_yaml(yaml_path)
    names = _names(data, yaml_path)
    base = os.path.join(os.path.dirname(os.path.abspath(yaml_path)), str(data.get("path") or ""))
    splits = [k for k in ("train", "val", "test") if data.get(k)]
    if split is not None:
        if not data.get(split):
            raise ValueError(f"{yaml_path}: no split {split!r}; it has {', '.join(splits) or 'none'}")
        entries = [data[split]]
    elif os.path.isdir(os.path.join(base, "images")):
        entries = ["images"]
    else:
        entries = [data[k] for k in splits]
    paths = list(dict.fromkeys(p for e in entries for p in _images(e, base)))
    if not paths and image_sizes:
        paths = [os.path.join(base, "images", *k.split("/")) for k in image_sizes]
    if not paths:
        raise ValueError(f"{yaml_path}: no images found; put them under images/ or pass image_sizes")
    builder = Builder(yaml_path, names)
    spec = _spec(data, yaml_path)
    keypoints = []
    for path in paths:
        key, label = _key_and_label(path, base)
        exists = os.path.isfile(path)
        given = image_sizes is not None and key in image_sizes
        size = size_for(key, image_sizes, yaml_path) if given or not exists else image_size(path)
        boxes, scores, ids, kps = _labels(label, size, len(names), 0 if spec is None else len(spec))
        builder.add(ImageInfo(key, *size, path if exists else None), boxes, scores, ids)
        keypoints.append(kps)
    results = builder.results(str(data.get("model_id") or ""))
    return results if spec is None else with_keypoints(results, keypoints, spec)


def _keypoint_text(kp: Any, info: ImageInfo, confidence: bool, conf: float) -> list[str]:
    """Each box's `` x y v ...`` (normalised x, y; v a score or a COCO flag)."""
    if kp is None:
        raise ValueError(f"image {info.key!r}: boxes without keypoints in a keypoint dataset")
    flags = keypoint_flags(kp[:, :, 2])
    out = []
    for box in kp:
        vis = box[:, 2] if confidence or flags else (box[:, 2] >= conf) * 2
        out.append("".join(f" {x / info.width:.6f} {y / info.height:.6f} {num(f) if confidence and not flags else int(f)}"
                           for (x, y), f in zip(box[:, :2].tolist(), vis)))
    return out


def _flip_idx(names: tuple[str, ...]) -> list[int]:
    """Ultralytics' ``flip_idx``: each keypoint's mirror (``left_*`` <-> ``right_*``), itself otherwise."""
    index = {n: i for i, n in enumerate(names)}
    swap = {"left": "right", "right": "left"}
    out = []
    for n in names:
        side, _, rest = n.partition("_")
        out.append(index.get(f"{swap[side]}_{rest}", index[n]) if side in swap else index[n])
    return out


def _spec(data: Any, where: str) -> KeypointSpec | None:
    """The keypoint spec of a pose dataset's ``kpt_shape`` (names and skeleton when written by us)."""
    shape = data.get("kpt_shape") if isinstance(data, dict) else None
    if shape is None:
        return None
    if not isinstance(shape, list) or len(shape) != 2 or shape[1] not in (2, 3) or int(shape[0]) <= 0:
        raise ValueError(f"{where}: kpt_shape must be [keypoints, 2 or 3], got {shape!r}")
    k = int(shape[0])
    if shape[1] == 2:
        raise ValueError(f"{where}: kpt_shape [{k}, 2] (no visibility) is not supported; write [{k}, 3]")
    raw = data.get("kpt_names") or ()
    if isinstance(raw, dict):  # Ultralytics: {class id: [names]}, one list for every class here
        raw = next(iter(raw.values()), ())
    default, names = KeypointSpec.default(k), tuple(str(n) for n in raw)
    if not names:
        return default
    return KeypointSpec(names, tuple(tuple(e) for e in data.get("skeleton") or ()),
                        default.sigmas if default.names == names else ())


def _names(data: Any, where: str) -> list[str]:
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise ValueError(f"{where}: names keys must be 0..{len(names) - 1}, got {sorted(names)}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list):
        raise ValueError(f"{where}: 'names' must be a list or a {{id: name}} mapping")
    return [str(n) for n in names]


def _images(entry: Any, base: str) -> list[str]:
    if isinstance(entry, list):
        return [p for e in entry for p in _images(e, base)]
    if not entry:
        return []
    p = os.path.join(base, str(entry))
    if os.path.isdir(p):
        return find_images(p)
    if p.endswith(".txt") and os.path.isfile(p):
        with open(p, encoding="utf-8") as f:
            lines = [x.strip() for x in f if x.strip()]
        # Ultralytics: "./x" is relative to the list's folder
        return [os.path.join(os.path.dirname(p), x[2:]) if x.startswith("./") else os.path.join(base, x)
                for x in lines]
    return [p] if os.path.isfile(p) else []


def _key_and_label(path: str, base: str) -> tuple[str, str]:
    """Key below the last ``images`` folder and the label path (``images`` -> ``labels``, ``.txt``)."""
    p = os.path.abspath(path).replace(os.sep, "/")
    head, sep, tail = p.rpartition("/images/")
    if sep:
        return tail, f"{head}/labels/{os.path.splitext(tail)[0]}.txt"
    return rel_posix(path, base), os.path.splitext(path)[0] + ".txt"


def _labels(path: str, size: Size, nc: int, nk: int) -> tuple[list, list, list, np.ndarray]:
    """Boxes (pixel xyxy), scores, class ids and (N * nk * 3) keypoint values of one label file."""
    rows: list[list[float]] = []
    scores: list[float] = []
    ids: list[int] = []
    kps: list[float] = []
    cols = 5 + 3 * nk
    if not os.path.isfile(path):
        return rows, scores, ids, np.zeros(0, np.float32)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            v = line.split()
            if not v:
                continue
            where = f"{path}: line {n}"
            if len(v) not in (cols, cols + 1):
                kp = f" and {nk} x (x y v)" if nk else ""
                raise ValueError(f"{where}: expected 'class cx cy w h{kp} [confidence]', got {len(v)} values")
            c = number(v[0], where, "class")
            if c != int(c) or not 0 <= c < nc:
                raise ValueError(f"{where}: class {v[0]!r} is not an id in 0..{nc - 1}")
            rows.append([number(x, where, "box") for x in v[1:5]])
            if min(rows[-1][2:]) < 0:
                raise ValueError(f"{where}: negative box width or height")
            scores.append(number(v[cols], where, "confidence") if len(v) == cols + 1 else 1.0)
            ids.append(int(c))
            kps.extend(number(x, where, "keypoint") for x in v[5:cols])
    k = np.asarray(kps, np.float64).reshape(-1, 3) * [size[0], size[1], 1]
    return from_relative(np.array(rows), size, center=True).tolist(), scores, ids, k.astype(np.float32).reshape(-1)
