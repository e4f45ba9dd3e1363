"""Segment routing on TUD-Campus's real tracks: breaks, errors, and the bound over units."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autolabel.core import Results
from autolabel.sources.sequences import open_sequence
from autolabel.video.routing import SegmentPolicy, certify, check_frames, route_segments, segment_errors, segments
from tests.conftest import DATA


@pytest.fixture(scope="module")
def gt() -> Results:
    return open_sequence(DATA / "tud-campus").ground_truth


def test_perfect_tracks_are_accepted_except_where_they_break(gt):
    segs = route_segments(segments(gt, max_frames=25))
    assert segs["frames"].sum() == 359 and (segs["frames"] <= 25).all()
    # tracks 7 and 8 start inside the sequence (frames 23, 46); 1, 2, 3 and 6 end inside it
    assert set(segs.loc[segs["break_start"], "track_id"]) == {7, 8}
    assert set(segs.loc[segs["break_end"], "track_id"]) == {1, 2, 3, 6}
    crossing = segs["overlap"] >= 0.3
    breaks = segs["break_start"] | segs["break_end"]
    assert (segs.loc[~breaks & ~crossing & (segs["frames"] >= 5), "route"] == "accept").all()
    assert (segs.loc[breaks, "route"] == "review").all()
    marks = check_frames(segs)
    assert {(7, 23, "track starts"), (1, 23, "track ends")} <= set(zip(marks.track_id, marks.frame, marks.reason))

    errs = segment_errors(segs, gt, gt)
    assert not errs["error"].any()
    c = certify(errs, delta=0.1)
    assert (c.units, c.failed_units) == (1, 0)
    assert c.bound == pytest.approx(0.9)  # Clopper-Pearson, no failure in 1 unit: 1 - delta ** (1 / n)
    chunks = certify(errs, delta=0.1, unit_frames=10)
    assert chunks.units == 8 and chunks.bound == pytest.approx(1 - 0.1 ** (1 / 8))
    assert list(chunks.to_dict()) == ["units", "failed_units", "bound", "accepted_segments", "accepted_frames",
                                      "delta", "unit"] and "units=8" in repr(chunks)


def test_a_shifted_segment_and_an_id_switch_are_errors_and_nothing_else(gt):
    def edit(d):
        xy, ids = d.xyxy.copy(), d.track_id.copy()
        f = d.image.frame_index
        if 30 <= f <= 40:
            xy[ids == 5] += np.array([20, 0, 20, 0], np.float32)  # IoU < 0.7 on frames 30-40
        if f >= 60:  # tracks 4 and 7 swap ids from frame 60 on (inside their segments 50-70 and 57-70)
            ids = np.where(ids == 4, 7, np.where(ids == 7, 4, ids))
        return replace(d, xyxy=xy, track_id=ids)

    pred = Results([edit(d) for d in gt], gt.class_names)
    errs = segment_errors(route_segments(segments(pred)), pred, gt)
    bad = set(zip(errs.loc[errs["error"], "track_id"], errs.loc[errs["error"], "start"]))
    # track 7 starts at frame 23; segments are also cut where its box touches the border (frames 30-32, 57-70)
    assert bad == {(5, 25), (4, 50), (7, 57)}
    assert errs[errs["track_id"] == 7]["start"].tolist() == [23, 30, 31, 32, 57]


def test_low_scores_and_filled_gaps_send_a_segment_to_review(gt):
    def low(d):
        s = d.scores.copy()
        s[(d.track_id == 5) & (d.image.frame_index < 25)] = 0.3
        return replace(d, scores=s, data={"detected": ~((d.track_id == 4) & (d.image.frame_index == 40))})

    segs = route_segments(segments(Results([low(d) for d in gt], gt.class_names)), SegmentPolicy(max_overlap=1.0))
    by = segs.set_index(["track_id", "start"])
    assert by.loc[(5, 0), "route"] == "review" and by.loc[(5, 25), "route"] == "accept"
    assert by.loc[(4, 40), "agreement"] == 0 and by.loc[(4, 40), "frames"] == 1
    assert "gap filled" in set(check_frames(segs)["reason"])
