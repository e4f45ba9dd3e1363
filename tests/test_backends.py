"""Ultralytics, ONNX and torchvision backends, and the model resolver, on real models and data."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS

import autolabel as al
from tests.conftest import coco_stats
from autolabel.detectors import ModelNotFoundError, load_detector
from autolabel.detectors.base import file_sha256
from autolabel.detectors.onnx import OnnxDetector
from autolabel.boxes import box_iou
from autolabel.io.images import load_image

BCCD_CLASSES = ("RBC", "WBC", "Platelets")


@pytest.fixture(scope="module")
def bccd_val(bccd: Path) -> tuple[list[str], dict]:
    """File names of the BCCD val split and a COCO ground truth restricted to them."""
    stems = (bccd / "ImageSets/Main/val.txt").read_text().split()
    gt = json.loads((bccd / "instances.json").read_text())
    names = {s + ".jpg" for s in stems}
    images = [im for im in gt["images"] if im["file_name"] in names]
    ids = {im["id"] for im in images}
    gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    assert len(images) == len(stems) == 87
    return [im["file_name"] for im in images], gt


@pytest.fixture(scope="module")
def bccd_pt() -> al.Detector:
    return load_detector("yolov8n-bccd.pt", iou=0.7)


@pytest.fixture(scope="module")
def bccd_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov8n-bccd.pt exported to ONNX by Ultralytics (YOLOv8 layout, dynamic batch)."""
    import onnx  # noqa: F401  (Ultralytics' ONNX export needs it; without it Ultralytics would try to pip install)
    from ultralytics import YOLO

    d = tmp_path_factory.mktemp("export")
    pt = shutil.copy(MODELS / "yolov8n-bccd.pt", d / "yolov8n-bccd.pt")  # export writes next to the .pt
    out = YOLO(pt).export(format="onnx", imgsz=416, dynamic=True, simplify=False, verbose=False)
    return Path(out)


def _write_yolo_dataset(root: Path, image_dir: Path, gt: dict) -> Path:
    """A YOLO-format copy of the ground truth (images symlinked) for ``ultralytics val``."""
    (root / "images/val").mkdir(parents=True)
    (root / "labels/val").mkdir(parents=True)
    cats = {c["id"]: BCCD_CLASSES.index(c["name"]) for c in gt["categories"]}
    by_image: dict[int, list[str]] = {im["id"]: [] for im in gt["images"]}
    size = {im["id"]: (im["width"], im["height"]) for im in gt["images"]}
    for a in gt["annotations"]:
        w, h = size[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        x1, y1, x2, y2 = np.clip([x / w, y / h, (x + bw) / w, (y + bh) / h], 0, 1)  # two boxes cross the border
        by_image[a["image_id"]].append(
            f"{cats[a['category_id']]} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}"
        )
    for im in gt["images"]:
        (root / "images/val" / im["file_name"]).symlink_to(image_dir / im["file_name"])
        (root / "labels/val" / im["file_name"]).with_suffix(".txt").write_text("\n".join(by_image[im["id"]]) + "\n")
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(BCCD_CLASSES))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/val\nval: images/val\nnames:\n{names}\n")
    return root / "data.yaml"


# -- Ultralytics ------------------------------------------------------------------------------------
def test_ultralytics_backend_reproduces_ultralytics_val_map50(bccd, bccd_val, bccd_pt, tmp_path):
    """Our backend + pycocotools vs ``ultralytics val`` on the 87 BCCD val images: mAP50 within 0.01."""
    from ultralytics import YOLO

    files, gt = bccd_val
    assert bccd_pt.input_size == (416, 416) and bccd_pt.class_names == BCCD_CLASSES
    images = [load_image(bccd / "JPEGImages" / f) for f in files]
    preds = bccd_pt.predict(images, conf=0.001, iou=0.7, max_det=300)
    cat_id = {c["name"]: c["id"] for c in gt["categories"]}
    image_id = {im["file_name"]: im["id"] for im in gt["images"]}
    dets = [
        {"image_id": image_id[f], "category_id": cat_id[label], "bbox": [float(v) for v in box], "score": float(s)}
        for f, d in zip(files, preds)
        for box, s, label in zip(d.xywh, d.scores, d.labels)
    ]
    ours = coco_stats(gt, dets, max_dets=(1, 10, 300))[1]

    data = _write_yolo_dataset(tmp_path / "yolo", bccd / "JPEGImages", gt)
    metrics = YOLO(str(MODELS / "yolov8n-bccd.pt")).val(
        data=str(data), imgsz=416, batch=16, conf=0.001, iou=0.7, device="cpu", plots=False, verbose=False,
        project=str(tmp_path / "runs"), name="val",
    )
    theirs = float(metrics.box.map50)
    print(f"BCCD val mAP50: autolabel+pycocotools {ours:.4f}, ultralytics val {theirs:.4f}")
    assert theirs == pytest.approx(0.861, abs=0.01)  # SOURCES.md: the model's recorded val mAP50
    assert ours == pytest.approx(theirs, abs=0.01)


def test_ultralytics_checkpoint_errors(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 64)
    with pytest.raises(ValueError, match=r"broken\.pt.*not a loadable"):
        load_detector(bad)
    with pytest.raises(ValueError, match=r"yolov5n\.pt.*original YOLOv5.*ONNX"):
        load_detector(MODELS / "yolov5n.pt")


@pytest.mark.parametrize("arch", ["yolo11n.yaml", "rtdetr-l.yaml"])
def test_ultralytics_loads_other_architectures(arch, bccd, bccd_val, tmp_path):
    """YOLO11 and RT-DETR checkpoints load and predict through the same backend.

    The models are built untrained from Ultralytics' own architecture files and saved the way
    Ultralytics saves checkpoints (no trained YOLO11 / RT-DETR weights are available offline):
    this proves loading, the switch to ``ultralytics.RTDETR``, class names, input size from the
    training args and box conversion, not accuracy.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel, RTDETRDetectionModel

    torch.manual_seed(0)
    model = (RTDETRDetectionModel if arch.startswith("rtdetr") else DetectionModel)(arch, nc=3, verbose=False)
    model.names = dict(enumerate(BCCD_CLASSES))
    path = tmp_path / arch.replace(".yaml", ".pt")
    torch.save({"model": model.half(), "train_args": {"imgsz": 320, "task": "detect"}}, path)
    det = load_detector(path, device="cpu")
    assert type(det.model).__name__ == ("RTDETR" if arch.startswith("rtdetr") else "YOLO")
    assert det.class_names == BCCD_CLASSES and det.input_size == (320, 320) and det.name == path.stem
    images = [load_image(bccd / "JPEGImages" / f) for f in bccd_val[0][:2]]
    for d, im in zip(det.predict(images, conf=0.0), images):
        h, w = im.shape[:2]
        assert len(d) > 0 and d.class_ids.max() < 3 and d.scores.min() >= 0
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= w).all() and (d.xyxy[:, [1, 3]] <= h).all()


# -- ONNX -------------------------------------------------------------------------------------------
def test_onnx_export_matches_ultralytics_backend(bccd, bccd_val, bccd_pt, bccd_onnx):
    """The ONNX twin (YOLOv8 layout ``[B, 4+C, N]``) finds the same boxes and classes."""
    det = load_detector(bccd_onnx)
    assert isinstance(det, OnnxDetector) and det.layout.name == "yolov8"
    assert det.class_names == BCCD_CLASSES and det.input_size == (416, 416)
    images = [load_image(bccd / "JPEGImages" / f) for f in bccd_val[0][:6]]
    total = 0
    for a, b in zip(bccd_pt.predict(images, conf=0.25), det.predict(images, conf=0.25, iou=0.7)):
        assert len(a) > 0
        iou = box_iou(a.xyxy, b.xyxy)
        best = iou.argmax(1)
        # same letterbox on both sides: every box found again with its class and score, allowing one
        # box whose score sits within float rounding (torch vs onnxruntime) of the threshold
        matched = (iou.max(1) > 0.95) & (a.class_ids == b.class_ids[best])
        assert matched.sum() >= len(a) - 1 and abs(len(a) - len(b)) <= 1
        assert np.abs(a.scores[matched] - b.scores[best[matched]]).max() < 1e-3
        total += int(matched.sum())
    assert total >= 30


def test_onnx_layouts_and_bad_files(yolov5n, tmp_path):
    assert yolov5n.layout.name == "yolov5" and len(yolov5n.class_names) == 80
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match=r"garbage\.onnx.*not a loadable ONNX model"):
        load_detector(garbage)
    unknown = tmp_path / "model.weights"
    unknown.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model\.weights.*unknown model format"):
        load_detector(unknown)


# -- resolver ----------------------------------------------------------------------------------------
def test_bare_names_resolve_through_model_dir(monkeypatch, tmp_path):
    (tmp_path / "coco-small.onnx").symlink_to(MODELS / "yolov5n-320.onnx")
    monkeypatch.setenv("AUTOLABEL_MODEL_DIR", str(tmp_path))
    for spec in ("coco-small", "coco-small.onnx"):
        det = load_detector(spec)
        assert det.name == "coco-small" and det.input_size == (320, 320)
    monkeypatch.setenv("AUTOLABEL_MODEL_DIR", str(MODELS))
    det = load_detector("yolov8n-bccd.pt")
    assert det.backend == "ultralytics" and det.model_id.startswith("yolov8n-bccd@e0f773a758f6")
    det = load_detector(Path(__file__).parent.parent / "configs/models/yolov8n-bccd.yaml")
    assert det.backend == "ultralytics" and (det.conf, det.iou) == (0.25, 0.7)


def test_missing_model_error_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOLABEL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AUTOLABEL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError) as e:
        load_detector("no-such-model")
    msg = str(e.value)
    for place in (
        tmp_path / "models/no-such-model.onnx", tmp_path / "models/no-such-model.pt",
        tmp_path / "cache/models/no-such-model.onnx", Path(al.__file__).parent / "models/no-such-model.pt",
    ):
        assert str(place) in msg
    assert "$AUTOLABEL_MODEL_DIR" in msg and "user cache" in msg and "bundled" in msg


# -- torchvision -------------------------------------------------------------------------------------
def _random_state_dict(arch: str, num_classes: int, path: Path, **kw) -> None:
    import torch
    from torchvision.models import get_model_builder

    torch.manual_seed(0)
    model = get_model_builder(arch)(weights=None, weights_backbone=None, num_classes=num_classes, **kw)
    torch.save(model.state_dict(), path)


def test_torchvision_backend_returns_what_the_model_returns(bccd, bccd_val, coco150, tmp_path):
    """Our backend vs calling the same torchvision model directly: boxes, scores, labels bit for bit.

    The detector is a RetinaNet (3 classes, no background id) with seeded random weights saved
    as a state dict, because no pretrained torchvision detector is available offline. Its
    per-location heads give hundreds of boxes with distinct scores and all classes even
    untrained (random Faster R-CNN / SSDlite heads collapse to one constant score). This proves
    that state-dict loading (``weights_only=True``), image conversion (RGB, 0..1, CHW),
    batching, output conversion, the ``conf`` / ``max_det`` cut and class naming add nothing and
    drop nothing; it says nothing about the accuracy of torchvision's pretrained COCO weights.
    """
    import torch
    from PIL import Image, ImageOps
    from torchvision.models import get_model_builder
    from torchvision.transforms.functional import to_tensor

    arch = "retinanet_resnet50_fpn"
    kw = {"score_thresh": 0.001, "min_size": 320, "max_size": 416}  # small inputs keep it fast on CPU
    weights = tmp_path / "retinanet.pth"
    _random_state_dict(arch, len(BCCD_CLASSES), weights, **kw)
    det = load_detector(
        f"torchvision:{arch}", weights=str(weights), class_names=BCCD_CLASSES, model_kwargs=kw, device="cpu"
    )
    assert det.backend == "torchvision" and det.class_names == BCCD_CLASSES and det.batch_size == 4
    assert det.model_id == f"{arch}@{file_sha256(weights)[:12]}"

    paths = [bccd / "JPEGImages" / f for f in bccd_val[0][:2]] + sorted((coco150 / "images").glob("*.jpg"))[:2]
    model = get_model_builder(arch)(weights=None, weights_backbone=None, num_classes=len(BCCD_CLASSES), **kw)
    model.load_state_dict(torch.load(weights, weights_only=True))
    with torch.inference_mode():  # one batch of 4, as the backend runs them
        direct = model.eval()([to_tensor(ImageOps.exif_transpose(Image.open(p)).convert("RGB")) for p in paths])
    scores = torch.cat([d["scores"] for d in direct]).numpy()
    assert len(scores) >= 400 and len(np.unique(scores)) >= 100
    assert set(torch.cat([d["labels"] for d in direct]).tolist()) == {0, 1, 2}

    images = [load_image(p) for p in paths]
    for conf, max_det in ((0.0, 1000), (float(np.median(scores)), 5)):  # everything; then our conf and max_det cut
        ours = det.predict(images, conf=conf, max_det=max_det)
        for o, d in zip(ours, direct):
            keep = np.flatnonzero((d["scores"] >= conf).numpy())[:max_det]
            assert len(keep) > 0 and len(o) == len(keep)
            assert np.array_equal(o.xyxy, d["boxes"].numpy()[keep])
            assert np.array_equal(o.scores, d["scores"].numpy()[keep])
            assert np.array_equal(o.class_ids, d["labels"].numpy()[keep])


def test_torchvision_default_weights_from_hub_cache(monkeypatch, tmp_path):
    """Without ``weights``: torchvision's COCO weights, only when their file is in torch.hub's cache.

    A random 91-class state dict stands in for the real COCO file (not available offline),
    so this checks the lookup, class names and model id, not COCO accuracy.
    """
    import torch
    from torchvision.models import get_model_weights

    arch = "ssdlite320_mobilenet_v3_large"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    coco = get_model_weights(arch).DEFAULT
    cached = tmp_path / "hub/checkpoints" / os.path.basename(coco.url)
    with pytest.raises(FileNotFoundError, match=f"{cached}.*no download is attempted"):
        load_detector(f"torchvision:{arch}")
    cached.parent.mkdir(parents=True)
    _random_state_dict(arch, 91, cached)
    det = load_detector(f"torchvision:{arch}", device="cpu")
    assert det.class_names == tuple(coco.meta["categories"]) and det.class_names[1] == "person"
    assert det.model_id == f"{arch}@{file_sha256(cached)[:12]}"


def test_torchvision_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown torchvision architecture 'yolo'.*fasterrcnn_resnet50_fpn.*ssd300"):
        load_detector("torchvision:yolo")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match=r"bad\.pth.*weights_only=True"):
        load_detector("torchvision:ssdlite320_mobilenet_v3_large", weights=str(bad), class_names=["bg", "a"])
    good = tmp_path / "three.pth"
    _random_state_dict("ssdlite320_mobilenet_v3_large", 3, good)
    with pytest.raises(ValueError, match=r"three\.pth.*does not fit ssdlite320_mobilenet_v3_large with 5 classes"):
        load_detector("torchvision:ssdlite320_mobilenet_v3_large", weights=str(good), class_names=list("abcde"))
    with pytest.raises(ValueError, match=r"three\.pth.*pass class_names"):
        load_detector("torchvision:ssdlite320_mobilenet_v3_large", weights=str(good))


def test_ultralytics_autoinstall_is_off_only_inside_our_calls(bccd, bccd_pt, monkeypatch):
    """No process-wide side effect: the environment is untouched and Ultralytics' own
    flag is off only while our backend calls it."""
    from ultralytics.utils import checks

    env = os.environ.get("YOLO_AUTOINSTALL")
    monkeypatch.setattr(checks, "AUTOINSTALL", True)  # Ultralytics' default, whatever this machine set
    seen = []
    predict = bccd_pt.model.predict

    def spy(*args, **kwargs):
        seen.append(checks.AUTOINSTALL)
        return predict(*args, **kwargs)

    monkeypatch.setattr(bccd_pt.model, "predict", spy)
    image = load_image(sorted((bccd / "JPEGImages").glob("*.jpg"))[0])
    assert len(bccd_pt.predict([image])[0]) > 0
    assert seen == [False] and checks.AUTOINSTALL is True and os.environ.get("YOLO_AUTOINSTALL") == env
