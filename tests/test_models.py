"""The newer COCO detectors of ../shared/models through ``autolabel prelabel``: quantized,
NMS-free end-to-end and segmentation exports, and a broken export that must be refused.

Reference decodes here are written from the models' documented output layouts
(``../shared/models/SOURCES.md``) with cv2 / torch / pycocotools, not with autolabel's code.
The int8 NMS-free models run at ~3 images/s on 2 cores, so they are measured on the first
16 images of coco-val-150; their reference detections may be cached in
``$AUTOLABEL_TEST_CACHE`` (they are not the code under test).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, coco_stats

from autolabel.cli import main

SUBSET = 16


def _letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float, float, float]:
    """Ultralytics' LetterBox (auto=False, center): resize keeping aspect, pad 114."""
    import cv2

    h, w = img.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (size - nw) / 2, (size - nh) / 2
    im = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else img
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    out = np.full((size, size, 3), 114, np.uint8)
    out[top: top + nh, left: left + nw] = im
    return out, r, left, top


def _run_session(path: Path, img: np.ndarray, size: int) -> tuple[list[np.ndarray], float, float, float]:
    sess = _session(str(path))
    lb, r, left, top = _letterbox(img, size)
    x = (lb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    return sess.run(None, {sess.get_inputs()[0].name: x}), r, left, top


_SESSIONS: dict[str, object] = {}


def _session(path: str):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    if path not in _SESSIONS:
        _SESSIONS[path] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return _SESSIONS[path]


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _subset(coco150: Path, tmp: Path, n: int) -> tuple[Path, dict]:
    """The first ``n`` images (by file name) as a folder of symlinks, and their ground truth."""
    gt = json.loads((coco150 / "instances.json").read_text())
    images = sorted(gt["images"], key=lambda im: im["file_name"])[:n]
    ids = {im["id"] for im in images}
    folder = tmp / f"first{n}"
    folder.mkdir()
    for im in images:
        (folder / im["file_name"]).symlink_to(coco150 / "images" / im["file_name"])
    return folder, {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}


def _prelabel_dets(src: Path, model: str, out: Path, gt: dict, conf: str = "0.001", *extra: str) -> tuple[list[dict], dict]:
    """``autolabel prelabel --format coco`` -> detections with the ground truth's ids."""
    rc = main(["prelabel", str(src), "--model", model, "--format", "coco", "--conf", conf, "--out", str(out), "--quiet",
               *extra])
    assert rc == 0
    pred = json.loads((out / "annotations.json").read_text())
    img_id = {im["file_name"]: im["id"] for im in gt["images"]}
    cat_id = {c["name"]: c["id"] for c in gt["categories"]}
    pi = {im["id"]: img_id[im["file_name"]] for im in pred["images"]}
    pc = {c["id"]: cat_id[c["name"]] for c in pred["categories"]}
    dets = [{**a, "image_id": pi[a["image_id"]], "category_id": pc[a["category_id"]]} for a in pred["annotations"]]
    return dets, pred


def _names(path: Path) -> list[str]:
    import ast

    raw = _session(str(path)).get_modelmeta().custom_metadata_map["names"]
    d = ast.literal_eval(raw)
    return [d[k] for k in sorted(d)]


def _reference_end2end(model: Path, gt: dict, image_dir: Path) -> list[dict]:
    """Plain decode of an NMS-free ``[1, 300, 6]`` output (x1, y1, x2, y2, score, class in
    input pixels): undo the letterbox, keep score > 0.001. Cached when allowed."""
    cache_dir = os.environ.get("AUTOLABEL_TEST_CACHE")
    cache = Path(cache_dir) / f"{model.stem}-ref-coco-val-150-first{SUBSET}-conf0.001.json" if cache_dir else None
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text())
    cat_id = {c["name"]: c["id"] for c in gt["categories"]}
    names = _names(model)
    dets = []
    for im in gt["images"]:
        (out,), r, left, top = _run_session(model, _rgb(image_dir / im["file_name"]), 640)
        for x1, y1, x2, y2, s, c in out[0]:
            if s <= 0.001:
                continue
            bx = np.clip([(x1 - left) / r, (y1 - top) / r, (x2 - left) / r, (y2 - top) / r],
                         0, [im["width"], im["height"]] * 2)
            dets.append({"image_id": im["id"], "category_id": cat_id[names[int(c)]], "score": float(s),
                         "bbox": [float(bx[0]), float(bx[1]), float(bx[2] - bx[0]), float(bx[3] - bx[1])]})
    if cache is not None:
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(dets))
        tmp.replace(cache)
    return dets


# -- quantized YOLO11n: the mAP SOURCES.md records -------------------------------------------------
def test_yolo11n_int8_reaches_its_recorded_map(coco150, tmp_path):
    gt = json.loads((coco150 / "instances.json").read_text())
    dets, _ = _prelabel_dets(coco150 / "images", "yolo11n-int8.onnx", tmp_path / "out", gt)
    m = coco_stats(gt, dets)[0]
    print(f"yolo11n-int8 mAP50-95 on coco-val-150: {m:.4f}")
    assert m >= 0.41


# -- NMS-free end-to-end heads: our decode vs a plain one --------------------------------------------
@pytest.mark.parametrize("model", ["yolo26n-int8.onnx", "yolov10n-int8.onnx"])
def test_nms_free_models_match_a_plain_reference_decode(model, coco150, tmp_path):
    folder, gt = _subset(coco150, tmp_path, SUBSET)
    dets, _ = _prelabel_dets(folder, model, tmp_path / "out", gt)
    ours = coco_stats(gt, dets)[0]
    ref = coco_stats(gt, _reference_end2end(MODELS / model, gt, folder))[0]
    print(f"{model} on the first {SUBSET} coco-val-150 images: mAP50-95 ours {ours:.4f}, reference {ref:.4f}")
    assert ref > 0.3  # the reference decode itself is sane (SOURCES.md: 0.41 / 0.40 on all 150)
    assert abs(ours - ref) <= 0.01


# -- segmentation: boxes and masks ------------------------------------------------------------------
def test_seg_model_gives_boxes_and_masks_that_match_the_prototypes(coco150, tmp_path):
    """Masks decoded by hand as Ultralytics does (sigmoid(coefs @ protos), upsampled to the
    input, cropped to the box, > 0.5, letterbox removed, resized to the image) against the
    polygons ``autolabel prelabel`` wrote into COCO ``segmentation``, rasterised with cv2."""
    import cv2
    import torch
    import torchvision

    model = MODELS / "yolov8n-seg-320-int8.onnx"
    folder, gt = _subset(coco150, tmp_path, 6)
    # --no-draft: the hand decode below sees a full decode (a 640 JPEG is twice this 320 input, which
    # prelabel would otherwise decode at 1/2 scale in the DCT domain: other pixels, boxes off by a pixel or two)
    _, pred = _prelabel_dets(folder, model.name, tmp_path / "out", gt, "0.25", "--no-draft")
    by_image: dict[int, list[dict]] = {}
    for a in pred["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    assert pred["annotations"] and all(a.get("segmentation") for a in pred["annotations"])
    names = _names(model)
    ious = []
    for im in pred["images"]:
        w, h = im["width"], im["height"]
        (out0, protos), r, left, top = _run_session(model, _rgb(folder / im["file_name"]), 320)
        p = torch.from_numpy(out0[0].T)
        scores, cls = p[:, 4:84].max(1)
        keep = scores > 0.25
        p, scores, cls = p[keep], scores[keep], cls[keep]
        xyxy = torch.cat([p[:, :2] - p[:, 2:4] / 2, p[:, :2] + p[:, 2:4] / 2], 1)
        k = torchvision.ops.batched_nms(xyxy, scores, cls, 0.6)
        masks = torch.sigmoid(p[k, 84:] @ torch.from_numpy(protos[0]).reshape(32, -1)).reshape(-1, 1, 80, 80)
        masks = torch.nn.functional.interpolate(masks, (320, 320), mode="bilinear", align_corners=False)[:, 0]
        nh, nw = int(round(h * r)), int(round(w * r))
        ours = by_image.get(im["id"], [])
        for box, c, m in zip(xyxy[k].numpy(), cls[k].numpy(), masks.numpy()):
            x1, y1, x2, y2 = box
            cols, rows = np.arange(320) + 0.5, np.arange(320) + 0.5
            inside = ((rows >= y1) & (rows <= y2))[:, None] & ((cols >= x1) & (cols <= x2))[None]
            ref = ((m > 0.5) & inside)[top: top + nh, left: left + nw].astype(np.uint8)
            ref = cv2.resize(ref, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            if ref.sum() < 400:  # masks of a few prototype cells: resampling decides them
                continue
            ob = np.array([(x1 - left) / r, (y1 - top) / r, (x2 - left) / r, (y2 - top) / r])
            match = [a for a in ours if a["category_id"] - 1 == int(c) and _iou_xywh(a["bbox"], ob.clip(0, [w, h, w, h])) > 0.98]
            assert match, f"{im['file_name']}: no box of ours for the reference {names[int(c)]} box {ob.round(1)}"
            raster = np.zeros((h, w), np.uint8)
            for poly in match[0]["segmentation"]:
                cv2.fillPoly(raster, [np.round(np.array(poly).reshape(-1, 2)).astype(np.int32)], 1)
            raster = raster.astype(bool)
            ious.append((raster & ref).sum() / (raster | ref).sum())
    print(f"mask IoU ours vs hand decode over {len(ious)} masks: mean {np.mean(ious):.3f}, min {np.min(ious):.3f}")
    assert len(ious) >= 10
    assert np.mean(ious) >= 0.9 and np.min(ious) >= 0.7


def _iou_xywh(xywh: list[float], xyxy: np.ndarray) -> float:
    a = np.array([xywh[0], xywh[1], xywh[0] + xywh[2], xywh[1] + xywh[3]])
    iw = max(0.0, min(a[2], xyxy[2]) - max(a[0], xyxy[0]))
    ih = max(0.0, min(a[3], xyxy[3]) - max(a[1], xyxy[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]) - inter)


# -- broken export ------------------------------------------------------------------------------------
def test_broken_export_is_refused_before_any_image_is_labeled(coco150, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["prelabel", str(coco150 / "images"), "--model", "broken-yolo11n-statquant.onnx", "--out", str(out),
               "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "broken-yolo11n-statquant.onnx" in err and "every class score is exactly 0" in err
    assert not (out / "annotations.json").exists()
    assert not list(out.glob(".autolabel/shard-*.jsonl"))  # nothing labeled, not even an empty record


def test_health_check_names_scores_outside_0_1(tmp_path):
    """A real model whose output is rescaled by 100 (an appended Mul node), as a head exported
    without its sigmoid would give: refused with the range named."""
    import onnx
    from onnx import helper, numpy_helper

    from autolabel.detectors import load_detector
    from autolabel.detectors.health import BrokenModelError

    m = onnx.load(str(MODELS / "yolov5n-320.onnx"))
    out = m.graph.output[0]
    m.graph.initializer.append(numpy_helper.from_array(np.array(100, np.float32), "hundred"))
    for node in m.graph.node:
        node.output[:] = [o if o != out.name else "raw_out" for o in node.output]
        node.input[:] = [i if i != out.name else "raw_out" for i in node.input]
    m.graph.node.append(helper.make_node("Mul", ["raw_out", "hundred"], [out.name]))
    bad = tmp_path / "scaled.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(BrokenModelError, match=r"scaled\.onnx.*outside \[0, 1\]"):
        load_detector(bad)
    assert load_detector(bad, check=False).layout.name == "yolov5"  # the check, not the layout, refuses it


def test_models_command_shows_layout_size_and_precision(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.endswith(".onnx") or ".onnx " in line}
    assert "end2end" in rows["yolo26n-int8.onnx"] and "640x640" in rows["yolo26n-int8.onnx"]
    assert "int8 dynamic (s8 weights)" in rows["yolov10n-int8.onnx"]
    assert "int8 QDQ" in rows["yolov8n-int8-qdq.onnx"] and "yolov8" in rows["yolov8n-int8-qdq.onnx"]
    assert "fp32" in rows["yolov5n-320.onnx"] and "320x320" in rows["yolov5n-320.onnx"]
    assert "yolov8-seg" in rows["yolov8n-seg-320-int8.onnx"]
    assert "BROKEN" in rows["broken-yolo11n-statquant.onnx"]


# -- formats: mask polygons ---------------------------------------------------------------------------
def test_seg_polygons_reach_label_studio_and_cvat(coco150, tmp_path):
    """The seg model's polygons in Label Studio (percent points of a polygonlabels region, a
    PolygonLabels control in the config) and CVAT (a <polygon> sharing its box's group_id)."""
    import xml.etree.ElementTree as ET

    import autolabel as al
    from autolabel.formats import write

    images = sorted((coco150 / "images").glob("*.jpg"))[:3]
    res = al.prelabel(images, "yolov8n-seg-320-int8.onnx", conf=0.4, progress=False)
    n_poly = sum(len(p) for d in res for p in d.data["polygons"])
    assert n_poly >= 3
    ls_path = write(res, tmp_path / "ls", "labelstudio")[0]
    tasks = json.loads(Path(ls_path).read_text())
    config = (tmp_path / "ls" / "label_config.xml").read_text()
    assert "<PolygonLabels" in config and 'name="polygon"' in config
    regions = [r for t in tasks for r in t["predictions"][0]["result"] if r["type"] == "polygonlabels"]
    assert len(regions) == n_poly
    d0 = res[0]
    first = next(r for r in regions if r["id"].startswith("0-"))
    j = int(first["id"].split("-")[1])
    flat = d0.data["polygons"][j][0]
    w, h = d0.image.width, d0.image.height
    assert first["value"]["points"][0] == pytest.approx([100 * flat[0] / w, 100 * flat[1] / h])
    assert first["value"]["polygonlabels"] == [d0.labels[j]]
    cvat = write(res, tmp_path / "cvat", "cvat")[0]
    root = ET.parse(cvat).getroot()
    assert {el.text for el in root.iter("type")} == {"any"}
    polys = list(root.iter("polygon"))
    assert len(polys) == n_poly
    image0 = root.find("image")
    boxes = {b.get("group_id"): b for b in image0.iter("box")}
    for p in image0.iter("polygon"):
        box = boxes[p.get("group_id")]
        assert box.get("label") == p.get("label")
        xy = np.array([[float(v) for v in pt.split(",")] for pt in p.get("points").split(";")])
        x1, y1, x2, y2 = (float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
        assert (xy[:, 0] >= x1 - 1).all() and (xy[:, 0] <= x2 + 1).all()  # the mask lies in its box
        assert (xy[:, 1] >= y1 - 1).all() and (xy[:, 1] <= y2 + 1).all()


# -- large frames: JPEG draft decode ------------------------------------------------------------------
def test_draft_decode_maps_boxes_back_to_full_size(coco150, tmp_path):
    """A 3x upscaled JPEG decodes at 1/2 scale (still larger than the letterbox needs) and its
    boxes, in full-size pixels, agree with a full decode's."""
    from PIL import Image

    import autolabel as al
    from autolabel.boxes import box_iou
    from autolabel.io.images import load_image_draft

    src = sorted((coco150 / "images").glob("*.jpg"))[:4]
    paths = []
    for p in src:
        with Image.open(p) as im:
            im.convert("RGB").resize((im.width * 3, im.height * 3), Image.LANCZOS).save(tmp_path / p.name, quality=92)
        paths.append(tmp_path / p.name)
    arr, full = load_image_draft(paths[0], (640, 640))
    with Image.open(paths[0]) as im:
        assert full == im.size and arr.shape[1] == (im.width + 1) // 2  # 1/2: the letterbox keeps 1/3
    det = al.load_detector("yolov5n.onnx")
    drafted = al.prelabel(paths, det, progress=False)
    det.draft = False
    plain = al.prelabel(paths, det, progress=False)
    found = []
    for a, b in zip(drafted, plain):
        assert (a.image.width, a.image.height) == (b.image.width, b.image.height)
        sure = b[np.flatnonzero(b.scores >= 0.4)]  # boxes far from the threshold must all be found again
        iou = box_iou(sure.xyxy, a.xyxy) * (sure.class_ids[:, None] == a.class_ids[None, :])
        found += list(iou.max(1) if len(a) else np.zeros(len(sure)))
    assert len(found) >= 10 and np.mean(np.array(found) > 0.85) >= 0.9


def test_engine_defaults_from_cores():
    from autolabel.detectors.tuning import cpu_streams, cpu_threads

    assert [(cpu_streams(n), cpu_threads(n)) for n in (1, 2, 4, 16)] == [(1, 1), (2, 1), (2, 2), (4, 4)]
    det = load_detector_cpu("yolov5n-320.onnx")
    assert det.auto_streams == cpu_streams() and det.session.get_session_options().intra_op_num_threads == cpu_threads()


def load_detector_cpu(name: str):  # type: ignore[no-untyped-def]
    from autolabel.detectors import load_detector

    return load_detector(name, device="cpu")


def test_fp16_export_loads_and_agrees_with_fp32(coco150, tmp_path):
    """yolov5n-320 converted to fp16 inputs, weights and outputs (onnxruntime's own converter):
    reported as fp16, and its confident boxes are the fp32 model's."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    import autolabel as al
    from autolabel.boxes import box_iou

    half = tmp_path / "yolov5n-320-fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(MODELS / "yolov5n-320.onnx")), keep_io_types=False), str(half))
    det16, det32 = al.load_detector(half), al.load_detector("yolov5n-320.onnx")
    assert det16.precision == "fp16" and det32.precision == "fp32"
    images = sorted((coco150 / "images").glob("*.jpg"))[:6]
    found = []
    for a, b in zip(al.prelabel(images, det16, progress=False), al.prelabel(images, det32, progress=False)):
        sure = b[np.flatnonzero(b.scores >= 0.4)]
        iou = box_iou(sure.xyxy, a.xyxy) * (sure.class_ids[:, None] == a.class_ids[None, :])
        found += list(iou.max(1) if len(a) else np.zeros(len(sure)))
    assert len(found) >= 8 and np.mean(np.array(found) > 0.9) >= 0.9


# -- layouts without a shared model: RT-DETR, ambiguous shapes -------------------------------------------
def test_layouts_are_told_apart_by_shape_and_metadata():
    from autolabel.detectors.layouts import decode_outputs, detect_layout

    coco = [f"c{i}" for i in range(80)]
    cases = {
        ((1, 25200, 85),): "yolov5", ((1, 84, 8400),): "yolov8", ((1, 300, 6),): "end2end",
        ((1, 300, 84),): "rtdetr", ((1, 116, 2100), (1, 32, 80, 80)): "yolov8-seg",
    }
    for shapes, name in cases.items():
        assert detect_layout(shapes, coco, {}, "m.onnx").name == name
    assert detect_layout([(1, 25200, 6)], ["person"], {}, "m.onnx").name == "yolov5"  # 1-class YOLOv5 head
    assert detect_layout([(1, 300, 6)], ["person"], {"end2end": "True"}, "m.onnx").name == "end2end"
    with pytest.raises(ValueError, match=r"m\.onnx: output shape \[1, 300, 90\] fits none .* 80 classes"):
        detect_layout([(1, 300, 90)], coco, {}, "m.onnx")

    # RT-DETR: normalised cx, cy, w, h and per-class scores; no NMS, best scores first
    out = np.zeros((300, 84), np.float32)
    out[0, :4], out[0, 4 + 7] = [0.5, 0.25, 0.2, 0.1], 0.9  # class 7 at (0.4..0.6, 0.2..0.3) of a 640 input
    out[1, :4], out[1, 4 + 7] = [0.5, 0.25, 0.2, 0.1], 0.8  # a duplicate: kept, no NMS in this layout
    d = decode_outputs(detect_layout([(1, 300, 84)], coco, {}, "m.onnx"), [out], (640, 640), 0.5, 0.6, 300)
    assert d["xyxy"].tolist() == [[256.0, 128.0, 384.0, 192.0]] * 2 and d["class_ids"].tolist() == [7, 7]
    assert d["scores"].tolist() == pytest.approx([0.9, 0.8])
