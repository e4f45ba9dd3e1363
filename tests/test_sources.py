"""Sources: folders, globs, lists, datasets, video, and the EXIF orientation rule."""
from __future__ import annotations


import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import autolabel as al
from autolabel import sources

FIRST = "000000000139.jpg"


def test_folder_is_recursive_sorted_and_keyed_relative(tmp_path, coco150):
    imgs = sorted((coco150 / "images").glob("*.jpg"))[:3]
    (tmp_path / "sub").mkdir()
    shutil.copy(imgs[0], tmp_path / "b.JPG")
    shutil.copy(imgs[1], tmp_path / "sub" / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    keys = [i.key for i in sources.from_folder(tmp_path)]
    assert keys == ["b.JPG", "sub/a.png"]
    assert [i.key for i in sources.from_folder(tmp_path, recursive=False)] == ["b.JPG"]
    assert [i.key for i in sources.from_glob(str(tmp_path / "**" / "*.png"))] == ["sub/a.png"]
    assert len(sources.open_source([str(p) for p in imgs])) == 3
    with pytest.raises(FileNotFoundError, match="no such"):
        sources.open_source(tmp_path / "missing")


def test_exif_orientation_is_applied(tmp_path, coco150, yolov5n):
    """A JPEG tagged 'rotate 90 CW' (Orientation=6) is read and detected as displayed."""
    src = Image.open(coco150 / "images" / FIRST)
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = tmp_path / "tagged.jpg"
    src.save(tagged, exif=exif, quality=95)
    raw = np.asarray(Image.open(tagged).convert("RGB"))  # stored pixels, EXIF ignored
    shown = sources.load_image(tagged)
    assert shown.shape == (src.width, src.height, 3)
    assert np.array_equal(shown, np.rot90(raw, k=-1))  # exactly the displayed (rotated) image
    det = yolov5n(str(tagged), conf=0.05)
    assert (det.image.width, det.image.height) == (src.height, src.width) and len(det) > 0
    assert det == yolov5n.predict([np.ascontiguousarray(np.rot90(raw, k=-1))], conf=0.05)[0].with_image(det.image)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, not an image"), "not an image"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_load_image_errors_name_file_and_reason(tmp_path, make, reason):
    p = tmp_path / "bad.jpg"
    make(p)
    with pytest.raises(sources.ImageReadError, match=reason) as e:
        sources.load_image(p)
    assert str(p) in str(e.value)


def test_truncated_jpeg_is_an_error(tmp_path, coco150):
    data = (coco150 / "images" / FIRST).read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(sources.ImageReadError, match="cannot decode"):
        sources.load_image(p)


def test_video_every_k_frames_and_seconds(tmp_path, coco150):
    import cv2

    path = tmp_path / "clip.avi"
    frame = cv2.resize(cv2.imread(str(coco150 / "images" / FIRST)), (320, 240))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for i in range(25):
        w.write(np.roll(frame, i * 4, axis=1))
    w.release()
    every5 = list(sources.from_video(path, every=5))
    assert [i.frame_index for i in every5] == [0, 5, 10, 15, 20]
    assert [i.timestamp for i in every5] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert every5[1].key == "clip.avi#5" and every5[1].array.shape == (240, 320, 3)
    per_sec = sources.from_video(path, every_seconds=1.0)
    assert len(per_sec) == 3 and [i.frame_index for i in per_sec] == [0, 10, 20]
    res = al.prelabel(sources.from_video(path, every=10), "yolov5n.onnx", progress=False)
    assert [d.image.frame_index for d in res] == [0, 10, 20]
    assert res[0].image.file_name == "clip/frame_000000.jpg"
    with pytest.raises(sources.ImageReadError, match="cannot open video"):
        sources.from_video(tmp_path / "nope.mp4")


def test_dataset_sources_voc_yolo_coco(tmp_path, bccd, coco150):
    voc = sources.from_voc(bccd, split="val", invalid_boxes="drop")  # two zero-size boxes
    assert len(voc) == 87 and set(voc.class_names) == {"RBC", "WBC", "Platelets"}
    assert voc.ground_truth is not None and len(voc.ground_truth) == 87
    # the same images as a YOLO dataset (written by our YOLO sink, images linked in)
    root = tmp_path / "yolo"
    voc.ground_truth.save(str(root), format="yolo")
    (root / "images").mkdir()
    for item in voc:
        (root / "images" / item.key).symlink_to(item.path)
    yolo = sources.from_yolo(root)
    res = al.prelabel(yolo, "yolov8n-bccd.pt", progress=False)
    assert len(res) == 87 and not res.failures and res.num_boxes > 87
    coco = sources.open_source(coco150 / "instances.json")
    assert len(coco) == 150 and all(Path(i.path).is_file() for i in coco)


def test_ultralytics_pil_patch_does_not_change_errors(tmp_path):
    """Importing ultralytics patches PIL.Image.open to pip-install a HEIF plugin on unknown
    files; our decoder must still say 'not an image' and never try to install anything."""
    import ultralytics  # noqa: F401  (applies the patch)

    p = tmp_path / "text.png"
    p.write_text("not an image")
    with pytest.raises(sources.ImageReadError, match="not an image"):
        sources.load_image(p)
