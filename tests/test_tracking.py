"""Tracking pre-labels on a real pedestrian sequence (TUD-Campus), evaluated two ways.

The project's evaluation (``trackers.eval`` through :mod:`autolabel.video.eval`) is
checked against TrackEval, an independent implementation (the MOTChallenge reference
code), on the very files the CLI wrote. The CLI runs on a copy of the sequence laid out
as an unseen one would be (``img/frame_%04d.jpg``, ``imDir=img``), so nothing depends on
TUD-Campus's own names.
"""

from __future__ import annotations

import configparser
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from autolabel.config import ConfigError
from autolabel.sources.sequences import SequenceSource, open_sequence
from autolabel.sources import open_source
from autolabel.video.eval import evaluate_mot_files, evaluate_tracks
from autolabel.video.tracking import track
from tests.conftest import DATA

TUD = DATA / "tud-campus"


@pytest.fixture(scope="module")
def tud() -> SequenceSource:
    if not (TUD / "seqinfo.ini").is_file():
        pytest.fail(f"shared data missing: {TUD} (set AUTOLABEL_SHARED)")
    return open_sequence(TUD)


@pytest.fixture(scope="module")
def relaid(tmp_path_factory, tud) -> Path:
    """TUD-Campus re-laid as ``img/frame_0000.jpg``... with ``imDir=img`` (frames linked, not copied)."""
    root = tmp_path_factory.mktemp("seq") / "walkers"
    (root / "img").mkdir(parents=True)
    for item in tud:
        os.symlink(item.path, root / "img" / f"frame_{item.frame_index:04d}.jpg")
    ini = configparser.ConfigParser()
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini["Sequence"] = {"name": "walkers", "imDir": "img", "frameRate": "25", "seqLength": str(len(tud)),
                       "imWidth": "640", "imHeight": "480", "imExt": ".jpg"}
    with open(root / "seqinfo.ini", "w") as f:
        ini.write(f)
    (root / "gt").mkdir()
    shutil.copy(TUD / "gt" / "gt.txt", root / "gt" / "gt.txt")
    return root


def trackeval_mota_idf1(gt_file: Path, pred_file: Path, n_frames: int, work: Path) -> tuple[float, float]:
    """MOTA and IDF1 computed by TrackEval (the MOTChallenge reference code) from the two files."""
    import trackeval

    seq = "seq"
    (work / "gt" / seq / "gt").mkdir(parents=True)
    (work / "tr" / "ours" / "data").mkdir(parents=True)
    shutil.copy(gt_file, work / "gt" / seq / "gt" / "gt.txt")
    shutil.copy(pred_file, work / "tr" / "ours" / "data" / f"{seq}.txt")
    quiet = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
             "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True}
    ds = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(work / "gt"), "TRACKERS_FOLDER": str(work / "tr"), "SKIP_SPLIT_FOL": True,
        "SEQ_INFO": {seq: n_frames}, "BENCHMARK": "MOT17", "PRINT_CONFIG": False, "TRACKERS_TO_EVAL": ["ours"]})
    metrics = [trackeval.metrics.CLEAR({"PRINT_CONFIG": False}), trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    res, msg = trackeval.Evaluator(quiet).evaluate([ds], metrics)
    assert msg["MotChallenge2DBox"]["ours"] == "Success", msg
    r = res["MotChallenge2DBox"]["ours"][seq]["pedestrian"]
    return float(r["CLEAR"]["MOTA"]), float(r["Identity"]["IDF1"])


def test_unseen_layout_is_a_sequence_with_frame_identity_and_ground_truth(relaid):
    src = open_source(str(relaid))
    assert isinstance(src, SequenceSource) and (src.name, src.fps, len(src)) == ("walkers", 25.0, 71)
    items = list(src)
    assert [i.frame_index for i in items] == list(range(71))
    assert items[10].key == "walkers#10" and items[10].timestamp == pytest.approx(0.4)
    assert items[10].path.endswith("img/frame_0010.jpg")
    gt = src.ground_truth
    assert gt.num_boxes == 359 and len({int(t) for d in gt for t in d.track_id}) == 8


def test_seqinfo_that_disagrees_with_the_folder_is_an_error_naming_it(relaid, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(relaid, bad, symlinks=True)
    text = (bad / "seqinfo.ini").read_text().replace("seqLength = 71", "seqLength = 70")
    (bad / "seqinfo.ini").write_text(text)
    with pytest.raises(ValueError, match=r"seqinfo.ini: seqLength=70 but .* holds 71 frames"):
        open_sequence(bad)


def test_prelabel_track_writes_mot_whose_scores_trackeval_confirms(relaid, tmp_path, tud):
    from autolabel.cli import main

    out = tmp_path / "out"
    code = main(["prelabel", str(relaid), "--track", "--class-map", "person", "--format", "mot",
                 "--out", str(out), "--model", "yolov5n.onnx", "--quiet"])
    assert code == 0
    pred_file = out / "walkers.txt"
    rows = np.loadtxt(pred_file, delimiter=",")
    assert rows.shape[1] == 10 and rows[:, 0].min() >= 1 and rows[:, 0].max() <= 71 and (rows[:, 1] > 0).all()

    from autolabel.formats.mot import read_mot, write_mot

    gt_file = write_mot(tud.ground_truth, tmp_path / "gt", ground_truth=True)[0]
    ours = evaluate_mot_files(gt_file, pred_file)
    mota, idf1 = trackeval_mota_idf1(Path(gt_file), pred_file, 71, tmp_path / "te")
    assert abs(ours["MOTA"] - mota) <= 0.005 and abs(ours["IDF1"] - idf1) <= 0.005
    assert mota > 0.5 and idf1 > 0.6  # a plain ByteTrack on yolov5n scores 0.59 / 0.72 here

    # the in-memory path (Results -> files -> trackers.eval) scores the same tracks the same
    pred = read_mot(pred_file)
    gt = open_sequence(relaid).ground_truth
    table = evaluate_tracks(pred, gt)
    assert table.loc[0, "MOTA"] == pytest.approx(ours["MOTA"]) and table.loc[0, "gt_tracks"] == 8
    assert 0 <= table.loc[0, "false_tracks"] <= table.loc[0, "pred_tracks"]


@pytest.fixture(scope="module")
def detections(tud):
    from autolabel.pipeline import prelabel

    return prelabel(tud, "yolov5n.onnx", conf=0.1, class_map="person", progress=False)


def test_tracks_are_consistent_and_gap_filled_boxes_are_marked(detections):
    tracked = track(detections, {"tracker": "bytetrack", "fill_gaps": 10}, refine=False)
    assert [d.image.key for d in tracked] == [d.image.key for d in detections]
    ids = np.concatenate([d.track_id for d in tracked])
    assert ids.min() == 1 and len(np.unique(ids)) == ids.max()  # numbered 1..n
    assert all(len(set(d.track_id.tolist())) == len(d) for d in tracked)  # an id once per frame
    filled = [(d, i) for d in tracked for i in np.flatnonzero(~d.data["detected"])]
    assert filled  # yolov5n loses people for a few frames here: 14 boxes are filled in
    for d, i in filled:  # a filled box supports no detection: none of the frame's raw boxes is it
        raw = detections[d.image.key]
        assert not np.any(np.all(np.isclose(raw.xyxy, d.xyxy[i]), axis=1))
    plain = track(detections, {"tracker": "bytetrack"}, refine=False)
    assert all(d.data["detected"].all() for d in plain) and plain.num_boxes <= tracked.num_boxes


def test_a_setting_the_tracker_does_not_take_is_a_config_error(detections):
    with pytest.raises(ConfigError, match="takes no setting.*'max_age_frames'"):
        track(detections, {"tracker": "bytetrack", "settings": {"max_age_frames": 3}})
    with pytest.raises(ConfigError, match="invalid TrackerConfig"):
        track(detections, {"tracker": "deepsort"})


def test_tracking_needs_video_frames(detections):
    from autolabel.core import Results

    still = Results([d.with_image(d.image.__class__(d.image.key, 640, 480)) for d in detections.detections[:2]],
                    detections.class_names)
    with pytest.raises(ValueError, match="not a video frame"):
        track(still)


def test_backfill_gives_new_tracks_their_first_frames_from_real_detections(detections):
    plain = track(detections, {"tracker": "bytetrack"}, refine=False)  # the online tracker's own boxes
    back = track(detections, {"tracker": "bytetrack", "backfill": 10}, refine=False)
    assert len(plain[0]) == 0 < len(back[0])  # ByteTrack names no track on the first frame it sees
    assert back.num_boxes > plain.num_boxes
    for d in back:  # every box is one of the detector's boxes on that frame
        raw = detections[d.image.key]
        assert all(np.any(np.all(np.isclose(raw.xyxy, b), axis=1)) for b in d.xyxy)
