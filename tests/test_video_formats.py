"""Tracks through the four track formats (MOT, CVAT for video, Label Studio video, COCO
with track_id), round trips on real tracks, and a CVAT file written by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autolabel import formats
from autolabel.sources.sequences import open_sequence
from autolabel.video.tracks import sequences, tracks_of
from tests.conftest import DATA


@pytest.fixture(scope="module")
def gt():
    return open_sequence(DATA / "tud-campus").ground_truth


def iou_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU written out here, independent of autolabel.boxes."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return ix * iy / (area(a) + area(b) - ix * iy)


@pytest.mark.parametrize("fmt,tol", [("mot", 0.005), ("coco", 0.0), ("cvat-video", None), ("labelstudio-video", None)])
def test_real_tracks_round_trip(gt, tmp_path, fmt, tol):
    written = formats.write(gt, tmp_path, fmt)
    assert written and not list(tmp_path.rglob("*.tmp"))
    back = formats.read(tmp_path, fmt)
    assert [d.image.key for d in back] == [d.image.key for d in gt]
    assert [d.image.frame_index for d in back] == list(range(71))
    for a, b in zip(gt, back):
        assert b.track_id.tolist() == a.track_id.tolist() and b.labels == a.labels
        if tol is None:  # keyframe formats: every frame within IoU 0.7 of the box, as promised
            assert len(a) == 0 or iou_rows(a.xyxy, b.xyxy).min() >= 0.7 - 1e-9
        else:
            np.testing.assert_allclose(b.xyxy, a.xyxy, atol=tol)


@pytest.mark.parametrize("fmt", ["cvat-video", "labelstudio-video"])
def test_every_frame_a_keyframe_is_exact(gt, tmp_path, fmt):
    formats.write(gt, tmp_path, fmt, tau=None)
    back = formats.read(tmp_path, fmt)
    for a, b in zip(gt, back):
        np.testing.assert_allclose(b.xyxy, a.xyxy, atol=0.006)


def test_keyframe_formats_store_a_few_boxes_per_track(gt, tmp_path):
    formats.write(gt, tmp_path, "cvat-video")
    xml = (tmp_path / "TUD-Campus.xml").read_text()
    assert xml.count("<track ") == 8 and xml.count("<box ") < 60  # 359 boxes as per-frame shapes
    formats.write(gt, tmp_path, "labelstudio-video")
    tasks = json.loads((tmp_path / "video_tasks.json").read_text())
    regions = tasks[0]["predictions"][0]["result"]
    assert len(regions) == 8 and all(r["type"] == "videorectangle" for r in regions)
    seq = regions[0]["value"]["sequence"]
    assert seq[0]["frame"] == 1 and seq[0]["enabled"] and not seq[-1]["enabled"]
    config = (tmp_path / "video_label_config.xml").read_text()
    assert '<VideoRectangle name="box" toName="video"/>' in config and '<Label value="person"/>' in config


# CVAT for video 1.1, written by hand from CVAT's documented schema: one track with three
# keyframes, out of view on frames 15-19 (an `outside` keyframe), back from frame 20 and
# held to the stop frame; a second, occluded track that starts late.
CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id><name>street</name><size>30</size><mode>interpolation</mode><overlap>0</overlap>
      <start_frame>0</start_frame><stop_frame>29</stop_frame><frame_filter></frame_filter>
      <labels>
        <label><name>person</name><color>#ff0000</color><type>rectangle</type><attributes></attributes></label>
        <label><name>car</name><color>#00ff00</color><type>rectangle</type><attributes></attributes></label>
      </labels>
      <original_size><width>320</width><height>240</height></original_size>
    </task>
    <dumped>2024-05-01 10:00:00.000000+00:00</dumped>
  </meta>
  <track id="0" label="person" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="10.00" ytl="20.00" xbr="50.00" ybr="100.00" z_order="0"></box>
    <box frame="5" keyframe="0" outside="0" occluded="0" xtl="20.00" ytl="20.00" xbr="60.00" ybr="100.00" z_order="0"></box>
    <box frame="10" keyframe="1" outside="0" occluded="0" xtl="30.00" ytl="20.00" xbr="70.00" ybr="100.00" z_order="0"></box>
    <box frame="15" keyframe="1" outside="1" occluded="0" xtl="30.00" ytl="20.00" xbr="70.00" ybr="100.00" z_order="0"></box>
    <box frame="20" keyframe="1" outside="0" occluded="0" xtl="200.00" ytl="40.00" xbr="240.00" ybr="120.00" z_order="0"></box>
  </track>
  <track id="1" label="car" source="manual">
    <box frame="25" keyframe="1" outside="0" occluded="1" xtl="0.00" ytl="100.00" xbr="80.00" ybr="140.00" z_order="0"></box>
    <box frame="29" keyframe="1" outside="0" occluded="1" xtl="40.00" ytl="100.00" xbr="120.00" ybr="140.00" z_order="0"></box>
  </track>
</annotations>
"""


def test_hand_written_cvat_video_reads_as_cvat_expands_it(tmp_path):
    p = tmp_path / "street.xml"
    p.write_text(CVAT_XML)
    r = formats.read_cvat_video(p)
    assert r.class_names == ("person", "car") and len(r) == 30
    assert r[0].image.key == "street#0" and (r[0].image.width, r[0].image.height) == (320, 240)
    person = {d.image.frame_index: d.xyxy[0].tolist() for d in r for i in range(len(d)) if d.track_id[i] == 0}
    assert sorted(person) == list(range(0, 15)) + list(range(20, 30))  # hidden on 15-19
    assert person[5] == [20, 20, 60, 100]  # halfway between the keyframes at 0 and 10
    assert person[13] == [30, 20, 70, 100]  # towards the outside keyframe, which repeats the box
    assert person[29] == [200, 40, 240, 120]  # the last keyframe holds to the stop frame
    car = {d.image.frame_index: (d.xyxy[list(d.track_id).index(1)].tolist(), bool(d.data["occluded"][list(d.track_id).index(1)]))
           for d in r if 1 in d.track_id}
    assert sorted(car) == [25, 26, 27, 28, 29] and car[27] == ([20, 100, 100, 140], True)
    assert r[27].labels == ["person", "car"]

    # written again and read back: the same boxes on every frame (within IoU 0.7 from keyframes)
    for tau in (None, 0.7):
        out = tmp_path / f"out{tau}"
        formats.write(r, out, "cvat-video", tau=tau)
        again = formats.read(out, "cvat-video")
        for a, b in zip(r, again):
            assert a.track_id.tolist() == b.track_id.tolist()
            assert a.data["occluded"].tolist() == b.data["occluded"].tolist()
            if tau is None:
                np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.01)
            elif len(a):
                assert iou_rows(a.xyxy, b.xyxy).min() >= 0.7


def test_bad_video_files_name_the_file_and_the_record(tmp_path):
    p = tmp_path / "bad.xml"
    p.write_text(CVAT_XML.replace('label="car"', 'label="bus"'))
    with pytest.raises(ValueError, match=r"bad.xml: track 1: unknown label 'bus'"):
        formats.read_cvat_video(p)
    m = tmp_path / "bad.txt"
    m.write_text("1,1,10,10,20,20,0.9,-1,-1,-1\n2,1,10,x,20,20,0.9,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: not a number"):
        formats.read_mot(m, image_size=(64, 64))
    tasks = [{"meta": {"sequence": "s", "width": 64, "height": 48, "frames": 5},
              "predictions": [{"result": [{"type": "videorectangle", "id": "s-1", "value": {
                  "labels": ["person"], "sequence": [{"frame": 2, "x": 1, "y": 1, "width": 5, "height": 5},
                                                     {"frame": 2, "x": 1, "y": 1, "width": 5, "height": 5}]}}]}]}]
    with pytest.raises(ValueError, match=r"task 0, region s-1, keyframe 1: frame 2 repeats"):
        formats.read_labelstudio_video(tasks)


def test_tracks_view_matches_the_ground_truth_file(gt):
    rows = np.loadtxt(DATA / "tud-campus" / "gt" / "gt.txt", delimiter=",")
    tracks = tracks_of(sequences(gt)["TUD-Campus"])
    assert sorted(t.track_id for t in tracks) == sorted(set(rows[:, 1].astype(int).tolist()))
    for t in tracks:
        mine = rows[rows[:, 1] == t.track_id]
        assert (t.frames + 1).tolist() == mine[:, 0].astype(int).tolist()
        np.testing.assert_allclose(t.xyxy[:, 2:] - t.xyxy[:, :2], mine[:, 4:6], atol=1e-3)  # float32 boxes
