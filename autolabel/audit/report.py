"""Writing an :class:`~autolabel.audit.core.Audit`: CSV tables, the Label Studio review
queue, a Markdown/HTML summary and the top suspects drawn (OpenCV)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from autolabel.io.files import atomic_write, safe_join
from autolabel.savings.render import Block, html_page, markdown

__all__ = ["write_audit", "draw_suspect"]

_COLORS = {"missing": (0, 200, 255), "spurious": (255, 60, 60), "wrong_class": (255, 0, 255),
           "loose": (255, 200, 0), "duplicate": (60, 255, 60)}  # RGB


def draw_suspect(image: np.ndarray, labels: Any, row: Any) -> np.ndarray:
    """An RGB crop around one suspect: the image's labels in thin grey, the suspect's
    label (if any) dashed white, the suspect's location in its kind's colour, captioned."""
    import cv2

    im = image.copy()
    for b in labels.xyxy.astype(int):
        cv2.rectangle(im, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (160, 160, 160), 1)
    if row.label >= 0:
        lb = np.array([row.label_x, row.label_y, row.label_x + row.label_w, row.label_y + row.label_h]).astype(int)
        cv2.rectangle(im, tuple(lb[:2].tolist()), tuple(lb[2:].tolist()), (255, 255, 255), 2)
    c = _COLORS.get(row.kind, (255, 255, 0))
    x1, y1, x2, y2 = (int(v) for v in (row.x, row.y, row.x + row.w, row.y + row.h))
    cv2.rectangle(im, (x1, y1), (x2, y2), c, 2)
    h, w = im.shape[:2]
    pad = int(max(row.w, row.h, 80))
    crop = im[max(0, y1 - pad):min(h, y2 + pad), max(0, x1 - pad):min(w, x2 + pad)]
    scale = 360 / max(crop.shape[:2])
    crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    text = f"{row.kind} {row.category}->{row.suggested} {row.score:.2f}" if row.kind == "wrong_class" \
        else f"{row.kind} {row.category} {row.score:.2f}"
    bar = np.zeros((22, crop.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1, cv2.LINE_AA)
    return np.concatenate([bar, crop], 0)


def _examples(a: Any, out_dir: str, image_root: str, k: int) -> tuple[list[str], list[str]]:
    """Draw the top ``k`` suspects; returns the written paths and, per suspect not drawn,
    why (an image outside ``image_root``, missing or unreadable): the audit goes on."""
    import cv2

    from autolabel.io.files import inside
    from autolabel.io.images import ImageReadError, load_image

    os.makedirs(os.path.join(out_dir, "examples"), exist_ok=True)
    paths, skipped = [], []
    by_name = {d.image.file_name: d for d in a.labels}
    for r, row in enumerate(a.suspects.head(k).itertuples(index=False)):
        try:
            pic = draw_suspect(load_image(inside(image_root, row.file_name)), by_name[row.file_name], row)
        except (ValueError, ImageReadError) as e:  # ImageReadError names the file and the reason
            skipped.append(f"suspect {r} ({row.file_name}): not drawn: {e}")
            continue
        path = safe_join(out_dir, f"examples/{r:03d}-{row.kind}-{os.path.splitext(os.path.basename(row.file_name))[0]}.png")
        ok, buf = cv2.imencode(".png", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode {path}")
        with open(path, "wb") as f:
            f.write(buf.tobytes())
        paths.append(path)
    return paths, skipped


def write_audit(a: Any, out_dir: str | os.PathLike, image_root: str | os.PathLike | None, examples: int,
                min_score: float) -> list[str]:
    """Write everything :meth:`Audit.save` lists into ``out_dir``; returns the paths."""
    from autolabel.formats import write

    out = str(out_dir)
    os.makedirs(out, exist_ok=True)
    paths = [atomic_write(safe_join(out, "suspects.csv"), a.suspects.to_csv(index=False)),
             atomic_write(safe_join(out, "images.csv"), a.images.to_csv(index=False))]
    results, order, data = a.review_queue(min_score)
    keep = set(order)
    queue = type(results)([d for d in results if d.image.key in keep], results.class_names, "audit")
    rank = {k: i for i, k in enumerate(order)}
    queue.detections.sort(key=lambda d: rank[d.image.key])
    paths += write(queue, os.path.join(out, "review"), "labelstudio", extra_data=data)
    pics, skipped = _examples(a, out, str(image_root), examples) if image_root is not None else ([], [])
    paths += pics
    if skipped:
        import warnings

        warnings.warn(f"{len(skipped)} of {len(skipped) + len(pics)} example suspects not drawn (listed in "
                      f"summary.md; is the image folder {image_root} right?): {skipped[0]}", stacklevel=3)
    how = "calibrated on the reviewed reference" if a.calibrated else \
        "uncalibrated (ranker scores; give a reviewed reference to calibrate)"
    blocks = _summary_blocks(a, how, pics, skipped)
    paths.append(atomic_write(safe_join(out, "summary.md"), markdown(blocks)))
    paths.append(atomic_write(safe_join(out, "summary.html"), html_page(blocks, "Label audit")))
    return paths


def _summary_blocks(a: Any, how: str, pics: list[str], skipped: list[str]) -> list[Block]:
    """The audit summary: suspects per kind, the top suspects, the lowest-quality images, examples."""
    import pandas as pd

    s = a.suspects
    counts = s["kind"].value_counts()
    kinds = pd.DataFrame({"kind": counts.index, "suspects": [int(counts[k]) for k in counts.index],
                          "score >= 0.5": [int(((s.kind == k) & (s.score >= 0.5)).sum()) for k in counts.index]})
    top = s.head(30)
    top = pd.DataFrame({"rank": range(len(top)), "file": top.file_name, "kind": top.kind, "category": top.category,
                        "score": [f"{x:.3f}" for x in top.score], "evidence": top.evidence})
    blocks: list[Block] = [("h1", f"Label audit: {len(a.images)} images, {len(s)} suspects"), ("p", f"Scores: {how}."),
                           ("table", kinds), ("h2", "Top suspects"), ("table", top),
                           ("h2", "Lowest label quality"), ("table", a.images.head(15))]
    if pics or skipped:
        blocks += [("h2", "Examples")] + [("image", f"examples/{os.path.basename(p)}") for p in pics]
        blocks += [("p", s) for s in skipped]
    return blocks
