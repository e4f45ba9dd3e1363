"""Track quality against ground truth: HOTA, CLEAR (MOTA, ID switches, fragments, mostly
tracked / lost) and identity (IDF1) metrics, with false and missed tracks.

The metrics are ``trackers.eval`` (Roboflow, Apache-2.0), a maintained implementation
built for parity with TrackEval. Both sides are written as MOTChallenge files first
(:func:`autolabel.formats.mot.write_mot`) and evaluated from those files, so the numbers
are what any MOTChallenge tool computes from the same files (``tests/test_tracking.py``
checks MOTA and IDF1 against TrackEval itself).

Track counts beyond CLEAR: a **false track** is a predicted track of which fewer than
half the boxes pair with a ground-truth box (read from :func:`autolabel.matching.match`
at IoU >= ``iou``); a **missed track** is a ground-truth track that is mostly lost
(CLEAR's ``ML``: matched on fewer than 20% of its frames).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from autolabel.core import Results
from autolabel.matching import DELETE, IGNORE, match
from autolabel.video.tracks import sequences

__all__ = ["evaluate_tracks", "evaluate_mot_files", "false_tracks"]

_COLUMNS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "Frag", "MT", "PT", "ML", "CLR_FP", "CLR_FN")


def evaluate_mot_files(gt_path: str | os.PathLike, pred_path: str | os.PathLike, iou: float = 0.5) -> dict[str, Any]:
    """HOTA, CLEAR and identity metrics of one MOT tracker file against a MOT ground-truth file.

    The ground truth is first read by :func:`autolabel.formats.mot.read_mot` (any
    MOTChallenge layout: MOT15's ``-1`` flags and world coordinates, MOT16/17's flag,
    class and visibility) and written again in the MOT16 layout that ``trackers.eval``
    reads, so a MOT15 file is not read as empty.

    Args:
        gt_path: ground truth (MOTChallenge ``gt.txt``).
        pred_path: tracker output (``frame,id,x,y,w,h,score,...``).
        iou: IoU threshold of CLEAR and identity matching (HOTA averages 0.05..0.95).

    Returns:
        ``{metric: value}`` for the metrics in ``_COLUMNS`` (fractions, not percent).

    Raises:
        ValueError: a malformed file (named).
    """
    from trackers.eval import evaluate_mot_sequence

    from autolabel.formats.mot import read_mot, write_mot

    gt = read_mot(gt_path, image_size=(1 << 20, 1 << 20), ground_truth=True)
    if os.path.getsize(pred_path) == 0:  # nothing tracked: every object missed (trackers.eval refuses empty files)
        tracks = {int(t) for d in gt for t in (d.track_id if d.track_id is not None else [])}
        return {**{k: 0.0 for k in _COLUMNS}, "IDSW": 0, "Frag": 0, "MT": 0, "PT": 0, "ML": len(tracks),
                "CLR_FP": 0, "CLR_FN": gt.num_boxes}
    with tempfile.TemporaryDirectory() as tmp:
        gt_file = write_mot(gt, tmp, ground_truth=True)[0]
        r = evaluate_mot_sequence(gt_file, str(pred_path), metrics=["CLEAR", "HOTA", "Identity"], threshold=iou)
    values = {**_metrics(r.CLEAR), **_metrics(r.HOTA), **_metrics(r.Identity)}
    return {k: values[k] for k in _COLUMNS}


def _metrics(group: Any) -> dict[str, Any]:
    """One metric group of ``trackers.eval`` (all three are requested above)."""
    if group is None:
        raise RuntimeError("trackers.eval returned no values for a metric group it was asked for")
    return dict(group.to_dict())


def false_tracks(pred: Results, gt: Results, iou: float = 0.5) -> dict[tuple[str, int], float]:
    """Share of each predicted track's boxes that pair with ground truth.

    Returns:
        ``{(sequence, track_id): paired share in [0, 1]}``; a share below 0.5 is a false track.
    """
    m = match(pred, gt, conf=None, iou_accept=max(iou, 0.5), iou_min=iou, relabel=False)
    hits: dict[tuple[str, int], list[int]] = {}
    for img, box, edit in zip(m.pred_image, m.pred_box, m.pred_edit):
        d = m.pred.detections[int(img)]
        if d.track_id is None or edit == IGNORE:
            continue
        key = (d.info.sequence, int(d.track_id[int(box)]))
        hits.setdefault(key, [0, 0])
        hits[key][0] += int(edit != DELETE)
        hits[key][1] += 1
    return {k: a / b for k, (a, b) in sorted(hits.items())}


def evaluate_tracks(pred: Results, gt: Results, iou: float = 0.5, workdir: str | os.PathLike | None = None) -> Any:
    """Evaluate tracked pre-labels against tracked ground truth, sequence by sequence.

    Args:
        pred: per-frame predictions with ``track_id`` (one class).
        gt: per-frame ground truth with ``track_id``, same sequences and frames.
        iou: IoU threshold of CLEAR, identity and false-track matching.
        workdir: where the MOT files are written (default: a temporary folder, removed).

    Returns:
        A DataFrame, one row per sequence: ``sequence``, the metrics of
        :func:`evaluate_mot_files`, ``gt_tracks``, ``pred_tracks``, ``false_tracks``,
        ``missed_tracks``.

    Raises:
        ValueError: more than one class, or frames without ``frame_index``.
    """
    import pandas as pd

    from autolabel.formats.mot import write_mot

    if len(gt.class_names) != 1:
        raise ValueError(f"evaluate one class at a time; the ground truth has {list(gt.class_names)}")
    shares = false_tracks(pred, gt, iou)
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        g_seq, p_seq = sequences(gt), sequences(pred)
        for i, (name, frames) in enumerate(g_seq.items()):
            pred_name = _paired(name, p_seq)
            gdir, pdir = os.path.join(tmp, "gt", str(i)), os.path.join(tmp, "pred", str(i))
            gfile = write_mot(Results(frames, gt.class_names), gdir, ground_truth=True)[0]
            pfile = write_mot(Results(p_seq[pred_name], pred.class_names, pred.model_id), pdir)[0]
            metrics = evaluate_mot_files(gfile, pfile, iou)
            n_gt = len({int(t) for d in frames for t in (d.track_id if d.track_id is not None else [])})
            mine = {k: v for k, v in shares.items() if k[0] == pred_name}
            rows.append({"sequence": name, **metrics, "gt_tracks": n_gt, "pred_tracks": len(mine),
                         "false_tracks": int(sum(v < 0.5 for v in mine.values())),
                         "missed_tracks": int(metrics["ML"])})
    return pd.DataFrame(rows)


def _paired(name: str, pred: dict[str, list]) -> str:
    """The predicted sequence for ground-truth sequence ``name``: the same name, or for
    ground truth read from a file (which knows the video's name, not its folder) the one
    decoded video of that file name."""
    if name in pred:
        return name
    same = [p for p in pred if os.path.basename(p) == os.path.basename(name)]
    if len(same) != 1:
        raise ValueError(f"sequence {name!r} has ground truth but no predictions"
                         + (f" (or several: {same})" if same else ""))
    return same[0]

