"""Annotation formats: round trips on real detections, real datasets, safe paths, bad input."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import autolabel as al
from autolabel import formats, sources
from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.io.files import atomic_write, safe_join

ODD = 'person <&"> \'q\''  # a class name XML and JSON must escape


@pytest.fixture(scope="module")
def preds(coco150, yolov5n) -> Results:
    """Real detections on 10 COCO images, plus an image with no boxes and a video frame;
    class 0 renamed to a name with XML special characters."""
    paths = sorted((coco150 / "images").glob("*.jpg"))[:11]
    res = al.prelabel([str(p) for p in paths], yolov5n, conf=0.25, progress=False)
    names = (ODD, *res.class_names[1:])
    dets = [Detections(d.xyxy, d.scores, d.class_ids, names, d.image) for d in res]
    dets[-1] = dets[-1][np.zeros(len(dets[-1]), bool)]  # zero boxes
    frame = ImageInfo("clip.mp4#12", 320, 240, frame_index=12, timestamp=0.48)
    dets.append(Detections(dets[0].xyxy / 2, dets[0].scores, dets[0].class_ids, names, frame))
    out = Results(dets, names, res.model_id)
    assert out.num_boxes > 30 and ODD in {n for d in out for n in d.labels}
    return out


def _sizes(res: Results) -> dict[str, tuple[int, int]]:
    return {d.image.file_name: (d.image.width, d.image.height) for d in res}


def _tolerance(fmt: str, info: ImageInfo) -> float:
    ulp = 1e-4  # float32 rounding of pixel coordinates
    return {"coco": 0.0, "yolo": 1e-6 * max(info.width, info.height) + ulp, "voc": 0.5 + ulp,
            "labelstudio": ulp, "cvat": 0.005 + ulp}[fmt]


def _assert_same(written: Results, read: Results, fmt: str) -> None:
    assert read.class_names == written.class_names and read.model_id == written.model_id
    assert len(read) == len(written)
    keeps_frames = fmt in ("coco", "labelstudio")  # the others name frames by file name
    for a, b in zip(written, read):
        key = a.image.key if keeps_frames else a.image.file_name
        assert (b.image.key, b.image.width, b.image.height) == (key, a.image.width, a.image.height)
        if keeps_frames:
            assert (b.image.frame_index, b.image.timestamp) == (a.image.frame_index, a.image.timestamp)
        assert b.labels == a.labels and np.array_equal(b.scores, a.scores)
        np.testing.assert_allclose(b.xyxy, a.xyxy, rtol=0, atol=_tolerance(fmt, a.image))


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_round_trip_on_real_detections(preds, tmp_path, fmt):
    out = tmp_path / fmt
    written = preds.save(str(out), format=fmt)
    assert written and all(Path(p).is_file() and Path(p).resolve().is_relative_to(out.resolve()) for p in written)
    kw = {"image_sizes": _sizes(preds)} if fmt == "yolo" else {}
    _assert_same(preds, formats.read(str(out), fmt, **kw), fmt)
    assert not list(out.rglob("*.tmp"))


def test_yolo_without_confidence_reads_scores_as_one(preds, tmp_path):
    formats.write_yolo(preds, tmp_path, confidence=False)
    back = formats.read_yolo(tmp_path, image_sizes=_sizes(preds))
    assert all((d.scores == 1).all() for d in back) and back.num_boxes == preds.num_boxes
    assert yaml.safe_load((tmp_path / "data.yaml").read_text())["nc"] == len(preds.class_names)


def test_unknown_format_lists_the_formats(preds, tmp_path):
    with pytest.raises(ValueError, match="unknown format 'pdf'; choose from coco, yolo, voc, labelstudio, cvat"):
        formats.write(preds, tmp_path, "pdf")
    with pytest.raises(ValueError, match="unknown format"):
        formats.read(tmp_path, "xml")


# -- output paths ---------------------------------------------------------------------------
HOSTILE = ["../../evil.jpg", "/etc/passwd.jpg", "C:\\Users\\x\\win.jpg", "..\\..\\back.jpg", "ok/./a.jpg"]


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_file_names_never_escape_the_output_dir(preds, tmp_path, fmt):
    dets = [preds[i].with_image(ImageInfo(k, 1000, 1000)) for i, k in enumerate(HOSTILE)]  # holds every box
    res = Results(dets, preds.class_names, preds.model_id)
    before = set(Path("/etc").iterdir())
    out = tmp_path / "a" / "out"
    written = formats.write(res, out, fmt)
    root = out.resolve()
    everything = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert everything and all(p.resolve().is_relative_to(root) for p in everything)
    assert all(Path(p).resolve().is_relative_to(root) for p in written)
    assert set(Path("/etc").iterdir()) == before
    if fmt in ("yolo", "voc"):  # one file per image: the names come back cleaned
        clean = {"evil.jpg", "etc/passwd.jpg", "Users/x/win.jpg", "back.jpg", "ok/a.jpg"}
        kw = {"image_sizes": dict.fromkeys(clean, (1000, 1000))} if fmt == "yolo" else {}
        assert {d.image.key for d in formats.read(out, fmt, **kw)} == clean


@given(st.text(alphabet="./\\:Cc_ \x00", max_size=24))
def test_any_name_lands_inside_the_output_dir_or_is_refused(name):
    out = os.path.realpath("/nonexistent-autolabel-out")
    try:
        path = safe_join(out, name)
    except ValueError:
        return
    assert os.path.realpath(path).startswith(out + os.sep)


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_names_that_collide_after_cleaning_are_refused(preds, tmp_path, fmt):
    res = Results([preds[0].with_image(ImageInfo(k, 64, 48)) for k in ("a.jpg", "../a.png")], preds.class_names)
    with pytest.raises(ValueError, match="would both be written"):
        formats.write(res, tmp_path, fmt)


def test_a_link_inside_the_output_dir_cannot_lead_outside(preds, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        formats.write_yolo(preds, out)
    assert not list(outside.iterdir())


def test_a_failed_write_leaves_the_old_file_whole(preds, tmp_path):
    path = tmp_path / "annotations.json"
    formats.write_coco(preds, path)
    before = path.read_bytes()
    with pytest.raises(UnicodeEncodeError):
        atomic_write(path, '{"half": "written' + "\ud800")  # cannot be encoded: fails mid-write
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["annotations.json"]


# -- COCO -----------------------------------------------------------------------------------
def test_coco_output_loads_in_pycocotools_and_scores_itself_perfectly(preds, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = tmp_path / "annotations.json"
    failures = [Failure("gone.jpg", "file not found")]
    formats.write_coco(replace(preds, failures=failures), path)
    assert formats.read_coco(path).failures == failures
    data = json.loads(path.read_text())
    assert data["info"]["model_id"] == preds.model_id and data["info"]["tool"] == "autolabel"
    assert [c["name"] for c in data["categories"]] == list(preds.class_names)
    assert data["images"][-1]["frame_index"] == 12 and data["images"][-1]["video"] == "clip.mp4"
    gt = COCO(str(path))
    assert gt.getCatIds() == list(range(1, len(preds.class_names) + 1))
    assert len(gt.getAnnIds()) == preds.num_boxes
    dt = gt.loadRes(data["annotations"])
    ev = COCOeval(gt, dt, "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)  # every prediction is its own ground truth


def test_reads_original_coco_with_category_gaps_and_crowds(coco150):
    raw = json.loads((coco150 / "instances.json").read_text())
    res = formats.read_coco(coco150 / "instances.json")
    cats = sorted(raw["categories"], key=lambda c: c["id"])
    assert res.class_names == tuple(c["name"] for c in cats) and len(res) == len(raw["images"]) == 150
    name_of = {c["id"]: c["name"] for c in cats}
    by_image: dict[int, list] = {}
    for a in raw["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for im, d in zip(raw["images"], res):
        anns = by_image.get(im["id"], [])
        assert (d.image.key, d.image.width, d.image.height) == (im["file_name"], im["width"], im["height"])
        assert d.labels == [name_of[a["category_id"]] for a in anns]
        assert d.iscrowd.tolist() == [bool(a["iscrowd"]) for a in anns]
        assert (d.scores == 1).all()
        xywh = np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4)
        assert np.array_equal(d.xyxy, np.hstack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]).astype(np.float32))
    assert res.num_boxes == len(raw["annotations"]) and any(d.iscrowd.any() for d in res)


def _bad_coco(tmp_path: Path, mutate) -> Path:
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
            "categories": [{"id": 3, "name": "cat"}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2]}]}
    mutate(data)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(data))
    return p


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["annotations"][0].update(bbox=[1, float("nan"), 2, 2]), "annotation id 7: bbox must be a finite"),
        (lambda d: d["annotations"][0].update(bbox=[1, 1, -2, 2]), "annotation id 7: invalid box: negative width or height"),
        (lambda d: d["annotations"][0].update(category_id=99), "annotation id 7: unknown category_id 99"),
        (lambda d: d["annotations"][0].update(image_id=5), "annotation id 7: unknown image_id 5"),
        (lambda d: d.pop("categories"), "missing or non-list categories"),
        (lambda d: d["images"][0].pop("width"), "image id 1"),
        (lambda d: d["images"].append(dict(d["images"][0], id=2)), "'a.jpg' appears more than once"),
    ],
)
def test_bad_coco_names_file_and_record(tmp_path, mutate, message):
    p = _bad_coco(tmp_path, mutate)
    with pytest.raises(ValueError, match=message) as e:
        formats.read_coco(p)
    assert str(p) in str(e.value)


@pytest.mark.parametrize("fmt", ["coco", "labelstudio"])
def test_corrupt_or_wrong_json_is_reported_with_the_file(tmp_path, fmt):
    p = tmp_path / "broken.json"
    p.write_text('{"images": [')
    with pytest.raises(ValueError, match="not valid JSON") as e:
        formats.read(p, fmt)
    assert str(p) in str(e.value)
    p.write_text("42")
    with pytest.raises(ValueError, match=str(p)):
        formats.read(p, fmt)


# -- Pascal VOC ---------------------------------------------------------------------------------
def test_voc_bccd_matches_its_coco_conversion(bccd):
    # bccd has two boxes of zero size: refused by default, naming the file and record; dropped on request
    with pytest.raises(ValueError, match=r"BloodImage_00338.xml object 12 \(RBC\): invalid box: zero width or height"):
        formats.read_voc(bccd)
    with pytest.raises(ValueError, match=r"instances.json: image 'BloodImage_00338.jpg', annotation id 3951: invalid"):
        formats.read_coco(bccd / "instances.json")
    with pytest.warns(UserWarning, match="dropped 2 invalid boxes"):
        voc = formats.read_voc(bccd, invalid_boxes="drop")
    coco = formats.read_coco(bccd / "instances.json", invalid_boxes="drop")
    assert voc.class_names == tuple(sorted(coco.class_names))
    assert [d.image.key for d in voc] == [d.image.key for d in coco] and len(voc) == 292
    for v, c in zip(voc, coco):
        assert (v.image.width, v.image.height) == (c.image.width, c.image.height)
        assert v.labels == c.labels and np.array_equal(v.xyxy, c.xyxy)
    # every valid box is kept as it is (none clipped); the two of zero size are the only ones dropped
    objects = sum(p.read_text().count("<object>") for p in (bccd / "Annotations").glob("*.xml"))
    assert voc.num_boxes == objects - 2 and sum(int((d.area == 0).sum()) for d in voc) == 0


def test_voc_split_and_dataset_sources(bccd, coco150, yolov5n):
    ids = (bccd / "ImageSets" / "Main" / "val.txt").read_text().split()
    val = formats.read_voc(bccd, split="val", invalid_boxes="drop")
    assert [d.image.key for d in val] == [i + ".jpg" for i in ids]
    res = al.prelabel(sources.from_voc(bccd, split="val", invalid_boxes="drop"), yolov5n, progress=False)
    assert len(res) == 87 and not res.failures
    src = sources.from_coco(coco150 / "instances.json")
    assert len(src) == 150 and all(os.path.isfile(i.path) for i in src)
    raw = json.loads((coco150 / "instances.json").read_text())
    assert [i.key for i in src] == [im["file_name"] for im in raw["images"]]


def _voc_xml(tmp_path: Path, body: str) -> Path:
    (tmp_path / "Annotations").mkdir(exist_ok=True)
    p = tmp_path / "Annotations" / "img1.xml"
    p.write_text(f"<annotation><filename>img1.jpg</filename>{body}</annotation>")
    return p


SIZE = "<size><width>10</width><height>10</height></size>"


@pytest.mark.parametrize(
    "body,message",
    [
        ("<object><name>cat</name><bndbox><xmin>1</xmin></bndbox></object>", "size/width"),
        (SIZE + "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax></bndbox></object>",
         r"object 0 \(cat\): <bndbox/ymax>"),
        (SIZE + "<object><name>cat</name></object>", r"object 0 \(cat\): <bndbox/xmin>"),
        (SIZE + "<object><bndbox/></object>", r"object 0 \(no name\): missing <name>"),
        (SIZE + "<object><name>cat</name><bndbox><xmin>a</xmin></bndbox></object>", "got 'a'"),
        (SIZE + "<object", "not valid XML"),
    ],
)
def test_bad_voc_names_file_and_object(tmp_path, body, message):
    p = _voc_xml(tmp_path, body)
    with pytest.raises(ValueError, match=message) as e:
        formats.read_voc(tmp_path)
    assert str(p) in str(e.value)


def test_voc_unknown_class_with_given_names(tmp_path):
    box = "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox>"
    _voc_xml(tmp_path, f"{SIZE}<object><name>dog</name>{box}</object>")
    assert formats.read_voc(tmp_path).class_names == ("dog",)
    with pytest.raises(ValueError, match="unknown class 'dog'"):
        formats.read_voc(tmp_path, class_names=["cat"])


# -- YOLO -----------------------------------------------------------------------------------
def test_yolo_dataset_with_split_folders_and_lists(bccd, tmp_path):
    gt = formats.read_voc(bccd, split="val", invalid_boxes="drop")
    few = Results([d.with_image(replace(d.image, key="val/" + d.image.key)) for d in gt.detections[:4]], gt.class_names)
    formats.write_yolo(few, tmp_path, confidence=False)
    (tmp_path / "images" / "val").mkdir(parents=True)
    for d in gt.detections[:4]:
        (tmp_path / "images" / "val" / d.image.key).symlink_to(bccd / "JPEGImages" / d.image.key)
    (tmp_path / "val.txt").write_text("".join(f"./images/{d.image.key}\n" for d in few))
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(
        {"path": ".", "train": "images/train", "val": "images/val", "test": "val.txt", "names": list(gt.class_names)}))
    for split in ("val", "test"):
        back = formats.read_yolo(tmp_path, split=split)
        _assert_same(few, back, "yolo")
        assert all(Path(d.image.path).is_file() for d in back)
    assert [d.image.key for d in formats.read_yolo(tmp_path / "data.yaml")] == [d.image.key for d in few]
    with pytest.raises(ValueError, match="no split 'train2'"):
        formats.read_yolo(tmp_path, split="train2")


def test_yolo_sizes_follow_exif_orientation(coco150, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    (tmp_path / "images").mkdir()
    img = tmp_path / "images" / "turned.jpg"
    Image.open(coco150 / "images" / "000000000139.jpg").save(img, exif=exif)
    (tmp_path / "data.yaml").write_text("names: [a]\n")
    info = formats.read_yolo(tmp_path)[0].image
    assert (info.height, info.width, 3) == sources.load_image(img).shape and info.width < info.height


@pytest.mark.parametrize(
    "line,message",
    [
        ("0 0.5 0.5 0.1\n", "line 1: expected 'class cx cy w h"),
        ("\n3 0.5 0.5 0.1 0.1\n", r"line 2: class '3' is not an id in 0..1"),
        ("0 0.5 nan 0.1 0.1\n", "line 1: box must be a finite"),
        ("1 0.5 0.5 -0.1 0.1\n", "line 1: negative"),
    ],
)
def test_bad_yolo_label_names_file_and_line(tmp_path, line, message):
    (tmp_path / "labels").mkdir()
    label = tmp_path / "labels" / "a.txt"
    label.write_text(line)
    (tmp_path / "data.yaml").write_text("names: {0: a, 1: b}\n")
    with pytest.raises(ValueError, match=message) as e:
        formats.read_yolo(tmp_path, image_sizes={"a.jpg": (10, 10)})
    assert str(label) in str(e.value)


# -- Label Studio -------------------------------------------------------------------------------
def test_labelstudio_tasks_reference_images_by_url_and_carry_extra_data(preds, tmp_path):
    url = "/data/local-files/?d=photos/"
    info = ImageInfo("my dir/a #1.jpg", 1000, 1000)  # holds every box
    empty = preds[-2].with_image(ImageInfo("b.jpg", 100, 50))
    res = Results([preds[0].with_image(info), empty], preds.class_names, "m1")
    path = tmp_path / "tasks.json"
    extra = {info.key: {"queue": "review", "uncertainty": 0.3}}
    formats.write_labelstudio(res, path, image_root_url=url, extra_data=extra)
    tasks = json.loads(path.read_text())
    assert tasks[0]["data"]["image"] == url + "my%20dir/a%20%231.jpg" and tasks[0]["data"]["queue"] == "review"
    pred = tasks[0]["predictions"][0]
    assert pred["model_version"] == "m1" and pred["score"] == pytest.approx(float(preds[0].scores.mean()))
    assert tasks[1]["predictions"][0] == {"model_version": "m1", "score": 0.0, "result": []}
    region = pred["result"][0]
    assert region["type"] == "rectanglelabels" and 0 <= region["value"]["x"] <= 100 and "image_rotation" in region
    for t in tasks:
        del t["data"]["key"]  # an export that lost our key: the URL still names the image
    back = formats.read_labelstudio(tasks, class_names=res.class_names, image_root_url=url)
    assert [d.image.key for d in back] == ["my dir/a #1.jpg", "b.jpg"]
    with pytest.raises(ValueError, match="may not set image"):
        formats.write_labelstudio(res, path, extra_data={"b.jpg": {"image": "x"}})


def test_labelstudio_export_with_annotations(tmp_path):
    def region(x, label, **extra):
        value = {"x": x, "y": 10, "width": 20, "height": 10, "rectanglelabels": [label], **extra}
        return {"id": "r", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                "original_width": 200, "original_height": 100, "value": value}

    export = [
        {"id": 1, "data": {"image": "/data/upload/1/a.jpg"},
         "annotations": [{"was_cancelled": True, "result": [region(1, "cat")]},
                         {"was_cancelled": False, "result": [region(50, "dog"), region(10, "cat", rotation=90)]}],
         "predictions": [{"model_version": "v2", "score": 0.5, "result": [dict(region(5, "cat"), score=0.25)]}]},
        {"id": 2, "data": {"image": "/data/upload/1/b.jpg", "width": 30, "height": 40}, "annotations": [],
         "predictions": [{"model_version": "v2", "result": []}]},
    ]
    p = tmp_path / "export.json"
    p.write_text(json.dumps(export))
    auto = formats.read_labelstudio(p)
    assert auto.class_names == ("cat", "dog") and auto[0].labels == ["dog", "cat"] and (auto[0].scores == 1).all()
    np.testing.assert_allclose(auto[0].xyxy[0], [100, 10, 140, 20])
    # 90 degrees clockwise about the top-left corner (20, 10): 40x10 becomes 10x40 left of it
    np.testing.assert_allclose(auto[0].xyxy[1], [10, 10, 20, 50], atol=1e-4)
    assert (auto[1].image.width, auto[1].image.height, len(auto[1])) == (30, 40, 0) and auto.model_id == "v2"
    preds = formats.read_labelstudio(p, use="predictions")
    assert preds[0].labels == ["cat"] and preds[0].scores.tolist() == [0.25]
    only = formats.read_labelstudio(p, use="annotations")
    assert len(only) == 1 and [(f.key, f.reason) for f in only.failures] == [("/data/upload/1/b.jpg", "no annotations")]
    export[0]["annotations"][1]["result"][0]["value"]["rectanglelabels"] = []
    with pytest.raises(ValueError, match="task 1: region r: no rectanglelabels"):
        formats.read_labelstudio(export)


def test_labelstudio_config_escapes_names():
    names = [ODD, "a&b", "<tag>"]
    view = ET.fromstring(formats.labelstudio_config(names))
    assert view.find("Image").attrib == {"name": "image", "value": "$image"}
    labels = view.find("RectangleLabels")
    assert labels.get("toName") == "image" and [el.get("value") for el in labels] == names


# -- CVAT -----------------------------------------------------------------------------------
def test_cvat_xml_layout(preds, tmp_path):
    path = tmp_path / "annotations.xml"
    formats.write_cvat(preds, path)
    root = ET.parse(path).getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/model_id") == preds.model_id
    assert [el.text for el in root.findall("meta/task/labels/label/name")] == list(preds.class_names)
    box = root.find("image/box")
    assert box.get("source") == "auto" and box.find("attribute").get("name") == "score"
    assert [im.get("name") for im in root.iter("image")] == [d.image.file_name for d in preds]


@pytest.mark.parametrize(
    "xml,message",
    [
        ("<annotations><image id='0' name='a.jpg' width='9'", "not valid XML"),
        ("<annotations><image id='0' name='a.jpg' width='9' height='9'>"
         "<box label='x' xtl='1' ytl='1' xbr='2'/></image></annotations>", r"image 0 \(a.jpg\): box 0: ybr must be a finite"),
        ("<annotations><meta><task><labels><label><name>cat</name></label></labels></task></meta>"
         "<image id='0' name='a.jpg' width='9' height='9'><box label='dog' xtl='1' ytl='1' xbr='2' ybr='2'/></image>"
         "</annotations>", "unknown class 'dog'"),
        ("<coco/>", "not <annotations>"),
    ],
)
def test_bad_cvat_names_file_and_record(tmp_path, xml, message):
    p = tmp_path / "bad.xml"
    p.write_text(xml)
    with pytest.raises(ValueError, match=message) as e:
        formats.read_cvat(p)
    assert str(p) in str(e.value)


def test_duplicate_class_names_cannot_be_written(preds, tmp_path):
    names = preds.class_names[:-1] + (preds.class_names[0],)
    res = Results([replace(preds[0], class_names=names)], names)
    for fmt in formats.FORMATS:
        with pytest.raises(ValueError, match="unique"):
            formats.write(res, tmp_path / fmt, fmt)


def test_voc_ground_truth_written_again_reads_the_same(bccd, tmp_path):
    gt = formats.read_voc(bccd, split="val", invalid_boxes="drop")
    formats.write_voc(gt, tmp_path, split="val")
    _assert_same(gt, formats.read_voc(tmp_path, split="val"), "voc")


# -- against the tools' own readers and documented examples ------------------------------------
def test_ultralytics_dataset_loader_reads_our_yolo_labels(bccd, tmp_path):
    """Ultralytics' own training loader (check_det_dataset + YOLODataset) reads a YOLO
    dataset we write (``confidence=False``: Ultralytics' training labels have 5 columns)
    and gets every box back, against the VOC ground truth's pixel corners."""
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    gt = formats.read_voc(bccd, split="val", invalid_boxes="drop")
    gt = replace(gt, detections=gt.detections[:12])
    formats.write_yolo(gt, tmp_path, confidence=False)
    (tmp_path / "images").mkdir()
    for d in gt:
        (tmp_path / "images" / d.image.file_name).symlink_to(bccd / "JPEGImages" / d.image.file_name)
    data = check_det_dataset(str(tmp_path / "data.yaml"))
    assert data["nc"] == 3 and list(data["names"].values()) == list(gt.class_names)
    ds = YOLODataset(img_path=str(tmp_path / "images"), data=data, task="detect", augment=False, imgsz=640)
    labels = {Path(lb["im_file"]).name: lb for lb in ds.labels}
    assert set(labels) == {d.image.file_name for d in gt}
    for d in gt:
        lb = labels[d.image.file_name]
        w, h = d.image.width, d.image.height
        assert lb["shape"] == (h, w) and lb["normalized"] and lb["bbox_format"] == "xywh"
        x1, y1, x2, y2 = np.clip(d.xyxy.astype(np.float64), 0, [w, h, w, h]).T  # Ultralytics clips to the image
        want = np.stack([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h], 1)
        np.testing.assert_array_equal(lb["cls"].ravel().astype(int), d.class_ids)
        np.testing.assert_allclose(lb["bboxes"], want, atol=2e-6)


# A CVAT for images 1.1 export written by hand from CVAT's documented layout
# (docs.cvat.ai, "CVAT for images 1.1"): <meta><job> with labels and their attributes,
# boxes with occluded / z_order / group_id, a rotated box, a non-score attribute, and
# shapes that are not boxes (polygon, points, tag), which the reader skips.
CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <job>
      <id>7</id>
      <size>2</size>
      <mode>annotation</mode>
      <overlap>0</overlap>
      <start_frame>0</start_frame>
      <stop_frame>1</stop_frame>
      <labels>
        <label>
          <name>car</name>
          <color>#fa3253</color>
          <type>rectangle</type>
          <attributes>
            <attribute>
              <name>color</name>
              <mutable>False</mutable>
              <input_type>select</input_type>
              <default_value>red</default_value>
              <values>red
blue</values>
            </attribute>
          </attributes>
        </label>
        <label>
          <name>person</name>
          <color>#33ddff</color>
          <type>any</type>
          <attributes>
          </attributes>
        </label>
      </labels>
    </job>
    <dumped>2024-05-02 10:11:12.123456+00:00</dumped>
  </meta>
  <image id="0" name="street/a.jpg" subset="default" task_id="3" width="640" height="480">
    <box label="car" source="manual" occluded="0" xtl="10.50" ytl="20.00" xbr="110.25" ybr="95.00" z_order="0">
      <attribute name="color">blue</attribute>
    </box>
    <box label="person" source="manual" occluded="1" xtl="200.00" ytl="100.00" xbr="300.00" ybr="220.00" rotation="90.0" z_order="1" group_id="2">
    </box>
    <polygon label="person" source="manual" occluded="0" points="1.00,1.00;20.00,1.00;20.00,30.00" z_order="0">
    </polygon>
    <points label="car" source="manual" occluded="0" points="5.00,5.00" z_order="0">
    </points>
    <tag label="car" source="manual">
    </tag>
  </image>
  <image id="1" name="street/b.jpg" subset="default" task_id="3" width="320" height="240">
  </image>
</annotations>
"""


def test_a_hand_written_cvat_export_reads_as_documented(tmp_path):
    path = tmp_path / "annotations.xml"
    path.write_text(CVAT_XML)
    res = formats.read_cvat(path)
    assert res.class_names == ("car", "person") and res.model_id == ""
    a, b = res
    assert (a.image.key, a.image.width, a.image.height) == ("street/a.jpg", 640, 480)
    assert (b.image.key, b.image.width, b.image.height, len(b)) == ("street/b.jpg", 320, 240, 0)
    assert a.labels == ["car", "person"] and a.scores.tolist() == [1.0, 1.0]  # no score attribute: 1
    # the rotated box (100 x 120 about its centre (250, 160), turned 90 degrees) is enclosed as 120 x 100
    np.testing.assert_allclose(a.xyxy, [[10.5, 20.0, 110.25, 95.0], [190.0, 110.0, 310.0, 210.0]], atol=1e-4)


def test_a_write_that_cannot_start_raises_its_own_error(tmp_path, monkeypatch):
    """The temporary file cannot be made (a full disk): the error is that one, not a
    FileNotFoundError about removing a temp file that never existed."""
    import errno

    from autolabel.io import files as _common

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_common, "open", full_disk, raising=False)  # the module's open, not the builtin
    with pytest.raises(OSError) as e:
        atomic_write(tmp_path / "a.json", "{}")
    assert e.value.errno == errno.ENOSPC and e.value.__context__ is None
    assert list(tmp_path.iterdir()) == []
