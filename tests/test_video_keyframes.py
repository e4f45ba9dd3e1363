"""Keyframes: fewest boxes whose interpolation stays within IoU >= tau, and the reverse."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from autolabel.video.keyframes import expand, keyframes, residual_keyframes, track_from_keyframes, track_keyframes
from autolabel.sources.sequences import open_sequence
from autolabel.video.tracks import sequences, tracks_of
from tests.conftest import DATA


def iou(a, b) -> float:
    """Scalar IoU written out here, independent of autolabel.boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def feasible(frames, boxes, chosen, tau) -> bool:
    """Does linear interpolation between the chosen keyframes keep every frame within tau?"""
    for a, b in zip(chosen[:-1], chosen[1:]):
        for k in range(a + 1, b):
            t = (frames[k] - frames[a]) / (frames[b] - frames[a])
            box = [boxes[a][j] * (1 - t) + boxes[b][j] * t for j in range(4)]
            if iou(box, boxes[k]) < tau:
                return False
    return True


def test_constant_velocity_needs_only_its_two_ends():
    f = np.arange(50)
    boxes = np.stack([10 + 3 * f, 20 + f, 60 + 3 * f, 120 + f], 1).astype(float)
    assert keyframes(f, boxes).tolist() == [0, 49]


def test_a_turn_needs_a_keyframe_at_the_turn():
    f = np.arange(41)
    x = np.where(f <= 20, 8 * f, 8 * (40 - f)).astype(float)  # right for 20 frames, then back
    boxes = np.stack([x, 0 * x, x + 40, 0 * x + 80], 1)
    assert keyframes(f, boxes).tolist() == [0, 20, 40]


@pytest.mark.parametrize("seed", range(6))
def test_keyframes_are_as_few_as_a_brute_force_search_finds(seed):
    rng = np.random.default_rng(seed)
    n = 9
    centre = np.cumsum(rng.normal(0, 6, (n, 2)), 0) + 100
    size = 40 + rng.normal(0, 4, (n, 2))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    frames = np.arange(n)
    ours = keyframes(frames, boxes, tau=0.7)
    assert ours[0] == 0 and ours[-1] == n - 1 and feasible(frames, boxes.tolist(), ours.tolist(), 0.7)
    fewest = next(k for k in range(2, n + 1)
                  for inner in itertools.combinations(range(1, n - 1), k - 2)
                  if feasible(frames, boxes.tolist(), [0, *inner, n - 1], 0.7))
    assert len(ours) == fewest


def test_ground_truth_tracks_expand_back_within_tau_on_every_frame():
    gt = open_sequence(DATA / "tud-campus").ground_truth
    tracks = tracks_of(sequences(gt)["TUD-Campus"])
    total_boxes = total_keys = 0
    for t in tracks:
        k = keyframes(t.frames, t.xyxy)
        f, b = expand(t.frames[k], t.xyxy[k])
        assert f.tolist() == t.frames.tolist()
        assert min(iou(p, q) for p, q in zip(b, t.xyxy)) >= 0.7
        total_boxes, total_keys = total_boxes + len(t), total_keys + len(k)
    assert total_boxes == 359 and total_keys < total_boxes / 10  # walking people: a few keyframes per track


def test_gaps_split_a_track_and_come_back_as_outside_spans():
    frames = np.array([0, 1, 2, 3, 8, 9, 10])
    boxes = np.array([[i * 2, 0, i * 2 + 30, 60] for i in frames], float)
    kt = track_keyframes(frames, boxes, np.ones(len(frames)), last_frame=12)
    assert kt.frames.tolist() == [0, 3, 4, 8, 10, 11] and kt.outside.tolist() == [0, 0, 1, 0, 0, 1]
    f, b, s, occ = track_from_keyframes(kt, last_frame=12)
    assert f.tolist() == frames.tolist() and np.allclose(b, boxes) and not occ.any()


def test_an_occlusion_change_is_a_keyframe_and_is_held_between_keyframes():
    frames = np.arange(20)
    boxes = np.array([[i, 0, i + 50, 100] for i in frames], float)
    occluded = frames >= 12
    kt = track_keyframes(frames, boxes, np.ones(20), occluded)
    assert {11, 12} <= set(kt.frames.tolist())
    assert track_from_keyframes(kt)[3].tolist() == occluded.tolist()


def test_residual_keyframes_of_a_good_pre_label_are_none_and_of_a_shifted_one_two():
    frames = np.arange(30)
    truth = np.array([[100 + 2 * i, 50, 160 + 2 * i, 170] for i in frames], float)
    assert len(residual_keyframes(frames, truth, truth + 2)) == 0  # IoU > 0.7 everywhere: nothing to fix
    shifted = truth + np.array([25, 0, 25, 0])  # IoU 0.41 on every frame: one constant correction
    assert len(residual_keyframes(frames, truth, shifted)) == 2


def test_bad_tau_and_unsorted_frames_are_errors():
    with pytest.raises(ValueError, match="tau must be in"):
        keyframes(np.arange(3), np.zeros((3, 4)), tau=0)
    with pytest.raises(ValueError, match="strictly increasing"):
        keyframes(np.array([0, 2, 1]), np.zeros((3, 4)))
