"""Offline track refinement, sliced inference and the MOT readers, on real frames of TUD-Campus."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel.boxes import paired_iou
from autolabel.matching import ACCEPT, match
from autolabel.pipeline import prelabel
from autolabel.sources import Source
from autolabel.sources.sequences import open_sequence
from autolabel.video.refine import RefineOptions, refine_tracks
from autolabel.video.tracking import track
from autolabel.video.tracks import Track, sequences, tracks_of
from tests.conftest import DATA, MODELS

TUD = DATA / "tud-campus"
FRAMES = 30


@pytest.fixture(scope="module")
def clip():
    """The first 30 frames of TUD-Campus, detected by yolo11n-int8 (person), and their ground truth."""
    seq = open_sequence(TUD)
    items = [i for i in seq if i.frame_index < FRAMES]
    raw = prelabel(Source(items, "first frames", len(items)), str(MODELS / "yolo11n-int8.onnx"), conf=0.05, class_map="person", progress=False)
    gt = [d for d in seq.ground_truth if d.image.frame_index < FRAMES]
    from autolabel.core import Results

    return raw, Results(gt, seq.ground_truth.class_names), seq.fps


def _tight_share(t, gt) -> float:
    m = match(t, gt, conf=None, iou_accept=0.7, iou_min=0.5)
    return float((m.pred_edit == ACCEPT).sum() / (~m.gt_crowd).sum())


def test_refinement_makes_boxes_tighter_and_steadier(clip):
    raw, gt, fps = clip
    plain, refined = track(raw, fps=fps, refine=False), track(raw, fps=fps)
    assert _tight_share(refined, gt) > _tight_share(plain, gt)

    def jitter(r):  # mean change of box height from frame to frame, relative
        out = []
        for t in tracks_of(sequences(r)["TUD-Campus"]):
            h = t.xyxy[:, 3] - t.xyxy[:, 1]
            out += list(np.abs(np.diff(h)) / h[1:])
        return np.mean(out)

    assert jitter(refined) < 0.7 * jitter(plain)
    d = refined.detections[5]
    assert set(d.data) >= {"detected", "raw_iou", "joined"}

    from autolabel.video.keyframes import track_keyframes

    def stored(r):  # keyframes the CVAT / Label Studio video formats write (tau 0.7)
        return sum(len(track_keyframes(t.frames, t.xyxy, t.scores).frames) for t in tracks_of(sequences(r)["TUD-Campus"]))

    assert stored(refined) < 0.7 * stored(plain)


def _longest(raw, fps) -> Track:
    tracks = tracks_of(sequences(track(raw, fps=fps, refine=False))["TUD-Campus"], ["detected"])
    return max(tracks, key=len)


def test_a_track_cut_in_two_across_a_gap_is_stitched_and_the_gap_filled(clip):
    raw, _, fps = clip
    t = _longest(raw, fps)
    keep = np.ones(len(t), bool)
    keep[10:16] = False  # a 6-frame gap
    a = Track(1, t.label, t.frames[:10], t.xyxy[:10], t.scores[:10], {"detected": np.ones(10, bool)})
    b = Track(2, t.label, t.frames[16:], t.xyxy[16:], t.scores[16:], {"detected": np.ones(len(t) - 16, bool)})
    out = refine_tracks([a, b], fps)
    assert len(out) == 1 and out[0].track_id == 1
    r = out[0]
    assert np.array_equal(r.frames, t.frames)
    filled = ~r.data["detected"]
    assert np.array_equal(np.flatnonzero(filled), np.arange(10, 16))
    assert paired_iou(r.xyxy[filled], t.xyxy[10:16]).min() > 0.6  # the spline follows the person through the gap
    assert r.data["joined"][8:18].all()
    # far apart in time: not joined
    late = Track(2, t.label, t.frames[16:] + 200, t.xyxy[16:], t.scores[16:], {"detected": np.ones(len(t) - 16, bool)})
    assert len(refine_tracks([a, late], fps)) == 2


def test_short_unsure_tracks_are_dropped(clip):
    raw, _, fps = clip
    t = _longest(raw, fps)
    short = Track(9, t.label, t.frames[:4], t.xyxy[:4] + 300, np.full(4, 0.2), {"detected": np.ones(4, bool)})
    sure = Track(8, t.label, t.frames[:4], t.xyxy[:4] + 100, np.full(4, 0.9), {"detected": np.ones(4, bool)})
    ids = {x.track_id for x in refine_tracks([t, short, sure], fps, RefineOptions(stitch_distance=0.0))}
    assert ids == {t.track_id, 8}


def test_mot15_and_mot16_ground_truth_read_alike(tmp_path):
    from autolabel.formats.mot import read_mot
    from autolabel.video.eval import evaluate_mot_files

    stadt = DATA / "tud-stadtmitte" / "gt"
    a = read_mot(stadt / "gt.orig.txt", image_size=(640, 480), ground_truth=True)  # MOT15: world x, y, z in 8-10
    b = read_mot(stadt / "gt.txt", image_size=(640, 480), ground_truth=True)  # MOT16: flag, class, visibility
    assert a.num_boxes == b.num_boxes == 1156
    mot17 = tmp_path / "gt.txt"  # class 7 (static person) and flag 0 rows are not pedestrians to find
    mot17.write_text("1,1,10,10,50,100,1,1,1\n1,2,100,10,50,100,1,7,1\n1,3,200,10,50,100,0,1,1\n")
    assert read_mot(mot17, image_size=(640, 480), ground_truth=True).num_boxes == 1
    # the original 7-column TUD-Campus file (-1 flags) evaluates against itself perfectly, not "empty"
    m = evaluate_mot_files(TUD / "gt" / "gt.txt", TUD / "gt" / "gt_mot.txt")
    assert m["MOTA"] == pytest.approx(1.0) and m["IDF1"] == pytest.approx(1.0)
    empty = tmp_path / "nothing.txt"  # a tracker that found nobody scores 0, it does not crash
    empty.write_text("")
    m = evaluate_mot_files(TUD / "gt" / "gt.txt", empty)
    assert m["MOTA"] == 0 and m["CLR_FN"] == 359 and m["ML"] == 8


def test_sliced_inference_finds_small_people_the_full_frame_misses():
    from PIL import Image

    from autolabel.detectors import load_detector
    from autolabel.detectors.slicing import SlicedDetector, tiles, with_slicing

    win = tiles(1080, 1920, (640, 640), 0.2)
    cover = np.zeros((1080, 1920), bool)
    for x0, y0, x1, y1 in win:
        cover[y0:y1, x0:x1] = True
        assert x1 - x0 == 640 and y1 - y0 == 640
    assert cover.all()
    det = load_detector(str(MODELS / "yolo11n-int8.onnx"))
    im = np.asarray(Image.open(TUD / "img1" / "000001.jpg").convert("RGB"))
    auto = with_slicing(det)
    assert isinstance(auto, SlicedDetector) and auto.slices(480, 640) == []  # small frame: unchanged
    a, b = det.predict([im], conf=0.3)[0], auto.predict([im], conf=0.3)[0]
    assert np.allclose(a.xyxy, b.xyxy)
    big = np.full((1080, 1920, 3), 114, np.uint8)  # the scene shrunk to 1/4 in a 1080p frame: people ~40 px tall
    big[400:520, 700:860] = np.asarray(Image.fromarray(im).resize((160, 120)))
    plain = (det.predict([big], conf=0.3)[0].class_ids == 0).sum()
    sliced = (auto.predict([big], conf=0.3)[0].class_ids == 0).sum()
    assert sliced > plain
