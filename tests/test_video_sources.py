"""Sequence sources: numbered frames at an fps, sampling, and a real video file."""

from __future__ import annotations

import numpy as np
import pytest

from autolabel.sources.sequences import SequenceSource, from_frames, open_sequence, read_seqinfo
from autolabel.sources import open_source
from tests.conftest import DATA

TUD = DATA / "tud-campus"


def test_numbered_frames_need_an_fps_and_keep_their_numbering(tmp_path):
    for n in (0, 2, 3, 10):  # a gap in the numbering stays a gap in time
        (tmp_path / f"frame_{n:04d}.jpg").symlink_to(TUD / "img1" / f"{n + 1:06d}.jpg")
    (tmp_path / "notes.txt").write_text("not a frame")
    with pytest.raises(ValueError, match="needs fps="):
        open_sequence(tmp_path)
    src = open_source(str(tmp_path), fps=10)
    assert isinstance(src, SequenceSource)
    assert [(i.frame_index, i.timestamp) for i in src] == [(0, 0.0), (2, 0.2), (3, 0.3), (10, 1.0)]
    assert [i.key for i in from_frames(tmp_path, 10, name="cam", every=2)] == ["cam#0", "cam#3"]


def test_sampling_a_mot_sequence_keeps_its_ground_truth_frames():
    src = open_source(str(TUD), every=10)
    assert [i.frame_index for i in src] == list(range(0, 71, 10))
    assert [d.image.frame_index for d in src.ground_truth] == list(range(0, 71, 10))
    assert read_seqinfo(TUD / "seqinfo.ini").im_dir == "img1"


def test_a_video_file_is_a_sequence_with_its_frame_rate(tmp_path):
    import cv2

    from autolabel.io.images import load_image

    path = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (640, 480))
    for n in range(1, 7):
        writer.write(np.ascontiguousarray(load_image(TUD / "img1" / f"{n:06d}.jpg")[..., ::-1]))
    writer.release()
    src = open_sequence(path)
    assert (src.name, src.fps, len(src)) == ("walk.avi", 12.5, 6)
    items = list(src)
    assert [i.frame_index for i in items] == list(range(6)) and items[5].timestamp == pytest.approx(0.4)
    arr, info = items[2].load()
    assert arr.shape == (480, 640, 3) and info.key == "walk.avi#2"


def test_a_missing_image_folder_in_seqinfo_is_named(tmp_path):
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=x\nimDir=img\nframeRate=25\n")
    with pytest.raises(ValueError, match=r"imDir='img' is not a folder"):
        open_source(str(tmp_path))
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=x\nframeRate=fast\n")
    with pytest.raises(ValueError, match="frameRate='fast' is not a number"):
        open_sequence(tmp_path)


def test_frames_stored_as_images_are_one_video_for_temporal_consistency():
    from autolabel.engine.temporal import frame_table

    gt = open_sequence(TUD).ground_truth
    table = frame_table(gt)
    assert set(table["video"]) == {"TUD-Campus"} and table["frame_index"].tolist() == list(range(71))
    # people walk: neighbouring frames' boxes overlap a lot, and no frame is compared with nothing
    assert table["temporal_consistency"].notna().all() and table["temporal_consistency"].median() > 0.8


def test_without_imdir_the_frames_are_found_in_img(tmp_path):
    (tmp_path / "img").mkdir()
    for n in range(1, 4):
        (tmp_path / "img" / f"frame_{n:04d}.jpg").symlink_to(TUD / "img1" / f"{n:06d}.jpg")
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=walk\nframeRate=30\nseqLength=3\n")
    src = open_source(str(tmp_path))
    assert [i.key for i in src] == ["walk#0", "walk#1", "walk#2"] and src.ground_truth is None


def test_two_videos_of_one_name_in_two_folders_stay_two_sequences(tmp_path, yolov5n):
    import cv2

    import autolabel as al
    from autolabel.core import Detections, ImageInfo, Results
    from autolabel.engine.temporal import frame_table
    from autolabel.io.images import load_image
    from autolabel.video.tracks import sequences

    paths = []
    for folder, first in (("a", 1), ("b", 40)):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "clip.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
        for n in range(first, first + 3):
            writer.write(np.ascontiguousarray(load_image(TUD / "img1" / f"{n:06d}.jpg")[..., ::-1]))
        writer.release()
        paths.append(str(path))
    runs = [al.prelabel(p, yolov5n, progress=False) for p in paths]
    both = Results(runs[0].detections + runs[1].detections, runs[0].class_names)
    assert [d.image.key for d in both][:3] == ["clip.avi#0", "clip.avi#1", "clip.avi#2"]  # the same keys twice
    groups = sequences(both)
    assert sorted(groups) == sorted(paths) and all(len(g) == 3 for g in groups.values())
    assert [d.info.frame for d in groups[paths[1]]] == [0, 1, 2]
    table = frame_table(both)
    assert sorted(set(table["video"])) == sorted(paths) and len(table) == 6
    assert both[0].info.sequence_name == "clip.avi"
    with pytest.raises(ValueError, match="not a video frame"):
        ImageInfo("photo.jpg", 10, 10).frame
    with pytest.raises(ValueError, match="no image info"):
        Detections.empty(("person",)).info
