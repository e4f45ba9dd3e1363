"""The video cost model on TUD-Campus's real tracks, with pre-labels made from them by
known edits (a split track, a false track, a missed one), priced by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autolabel.config import VideoCostProfile
from autolabel.core import Detections, Results
from autolabel.sources.sequences import open_sequence
from autolabel.video.savings import video_savings
from tests.conftest import DATA

P = VideoCostProfile.load("video-keyframes")


@pytest.fixture(scope="module")
def gt() -> Results:
    return open_sequence(DATA / "tud-campus").ground_truth


def edited(gt: Results, fn) -> Results:
    return Results([fn(d) for d in gt], gt.class_names, "edited")


def test_perfect_tracks_cost_one_look_each(gt):
    v = video_savings(gt, gt)
    s = v.seconds
    assert s["scratch_per_frame"] == pytest.approx(359 * 7.0 + 71 * 1.0)  # draw every box, open every frame
    assert s["assisted_per_frame"] == pytest.approx(359 * 1.8 + 71 * 1.0)  # verify every box
    assert s["assisted_per_track"] == pytest.approx(8 * P.verify_track_s + 71 * P.frame_view_s)
    keyframes = int(v.tracks["keyframes"].sum())
    assert 8 * 2 <= keyframes < 359 / 10  # at least both ends of every track, far fewer than the boxes
    assert s["scratch_keyframes"] == pytest.approx(keyframes * 7.0 + 8 * P.track_s + 71 * P.frame_view_s)
    summary = v.summary()
    assert summary["saved_by_interpolation_share"] + summary["saved_by_model_share"] == pytest.approx(1.0)
    assert (v.tracks["status"] == "fixed").all() and v.false_tracks == 0


def test_a_split_track_costs_one_merge(gt):
    def split(d: Detections) -> Detections:
        ids = d.track_id.copy()
        ids[(ids == 4) & (d.image.frame_index >= 35)] = 40  # track 4 changes id halfway
        return replace(d, track_id=ids)

    v = video_savings(edited(gt, split), gt, {**P.model_dump(), "replace_if_cheaper": False})
    row = v.tracks.set_index("track_id").loc[4]
    assert (row["pred_tracks"], row["merges"], row["correction_keyframes"]) == (2, 1, 0)
    perfect = video_savings(gt, gt).seconds["assisted_per_track"]
    assert v.seconds["assisted_per_track"] == pytest.approx(perfect + P.merge_s)


def test_a_false_track_is_deleted_and_a_missing_one_drawn(gt):
    def ghost_and_drop(d: Detections) -> Detections:
        keep = d[d.track_id != 6]  # track 6 (frames 0-8) is never pre-labeled
        ghost = Detections([[600, 10, 630, 40]], [0.9], [0], d.class_names, d.image, track_id=[99])
        return Detections.concat([keep, ghost]) if d.image.frame_index < 10 else keep

    v = video_savings(edited(gt, ghost_and_drop), gt)
    row = v.tracks.set_index("track_id").loc[6]
    assert row["status"] == "missed" and row["seconds"] == row["scratch_seconds"]
    assert v.false_tracks == 1
    perfect = video_savings(gt, gt)
    expected = perfect.seconds["assisted_per_track"] - P.verify_track_s + row["scratch_seconds"] + P.delete_track_s
    assert v.seconds["assisted_per_track"] == pytest.approx(expected)


def test_a_shifted_track_needs_corrections_or_a_redraw_whichever_is_cheaper(gt):
    def shift(d: Detections) -> Detections:
        xy = d.xyxy.copy()
        xy[d.track_id == 5] += np.array([15, 0, 15, 0], np.float32)  # 64 px wide: IoU 49/79 = 0.62
        return replace(d, xyxy=xy)

    fix = video_savings(edited(gt, shift), gt, {**P.model_dump(), "replace_if_cheaper": False})
    row = fix.tracks.set_index("track_id").loc[5]
    assert row["correction_keyframes"] >= 2 and row["status"] == "fixed"
    best = video_savings(edited(gt, shift), gt).tracks.set_index("track_id").loc[5]
    assert best["seconds"] == pytest.approx(min(row["fix_seconds"], P.delete_track_s + row["scratch_seconds"]))


def test_pre_labels_without_track_ids_are_refused(gt):
    plain = Results([replace(d, track_id=None) for d in gt], gt.class_names)
    with pytest.raises(ValueError, match="track_id"):
        video_savings(plain, gt)
