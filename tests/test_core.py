"""The core Detections / Results types, box ops and class mapping."""
from __future__ import annotations

import numpy as np
import pytest

import autolabel as al
from autolabel.classmap import ClassMap
from autolabel.config import ConfigError
from autolabel.boxes import box_iou
from autolabel.boxes import batched_nms
from autolabel.detectors.ops import letterbox, unletterbox


def _dets(n: int = 5, names=("a", "b", "c"), seed: int = 0) -> al.Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 50, (n, 2))
    probs = rng.uniform(0, 1, (n, len(names)))
    return al.Detections(np.hstack([xy, xy + wh]), rng.uniform(0, 1, n), rng.integers(0, len(names), n),
                         names, al.ImageInfo("img.jpg", 200, 150), class_probs=probs)


def test_dtypes_slicing_and_filter_keep_arrays_aligned():
    d = _dets(10)
    assert d.xyxy.dtype == np.float32 and d.scores.dtype == np.float32 and d.class_ids.dtype == np.int64
    sub = d[d.scores > 0.5]
    assert len(sub) == int((d.scores > 0.5).sum())
    assert np.array_equal(sub.class_probs, d.class_probs[d.scores > 0.5])
    assert sub.image == d.image
    one = d[3]
    assert len(one) == 1 and one.scores[0] == d.scores[3]
    f = d.filter(conf=0.3, classes=["a", 2])
    assert set(f.labels) <= {"a", "c"} and (f.scores >= 0.3).all()
    assert len(d[::2]) == 5


def test_concat_empty_and_xywh():
    d = _dets(4)
    both = al.Detections.concat([d, d])
    assert len(both) == 8 and both.class_probs.shape == (8, 3)
    e = al.Detections.empty(("a",))
    assert len(e) == 0 and e.xyxy.shape == (0, 4)
    back = al.Detections.from_xywh(d.xywh, d.scores, d.class_ids, class_names=d.class_names)
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=1e-4)
    with pytest.raises(ValueError, match="class_names"):
        al.Detections.concat([d, al.Detections.empty(("x",))])


def test_shape_validation_errors():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        al.Detections(np.zeros((3, 3)), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="must have shape"):
        al.Detections(np.zeros((3, 4)), np.zeros(2), np.zeros(3))


def test_repr_and_pandas():
    d = _dets(6)
    assert "6 boxes" in repr(d) and "img.jpg" in repr(d)
    df = d.to_pandas()
    assert list(df.columns) == ["image", "class_id", "label", "score", "x1", "y1", "x2", "y2"]
    assert len(df) == 6
    r = al.Results([d, d.with_image(al.ImageInfo("b.jpg", 10, 10))], d.class_names, "m@123")
    assert len(r.to_pandas()) == 12 and "2 images, 12 boxes" in repr(r)
    assert r["b.jpg"].image.key == "b.jpg"
    assert "<table" in r._repr_html_()


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [1.0, 50 / 150, 0.0, 0.0])


def test_batched_nms_is_classwise_and_caps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.array([0, 0, 1, 0])
    assert batched_nms(boxes, scores, cls, 0.5).tolist() == [0, 2, 3]
    assert batched_nms(boxes, scores, cls, 0.5, max_det=2).tolist() == [0, 2]


def test_letterbox_round_trip():
    img = np.zeros((300, 500, 3), np.uint8)
    out, r, pad = letterbox(img, (640, 640))
    assert out.shape == (640, 640, 3)
    boxes = np.array([[10, 20, 110, 220]], np.float32)
    lb = boxes * r + np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)
    np.testing.assert_allclose(unletterbox(lb, r, pad, 500, 300), boxes, atol=1e-3)


def test_class_map_rename_merge_drop():
    names = ("person", "car", "truck", "dog")
    d = al.Detections([[0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 120, 120], [5, 5, 9, 9]],
                      [0.9, 0.8, 0.7, 0.6], [0, 1, 2, 3], names, class_probs=np.eye(4))
    cm = ClassMap.load({"mapping": {"person": "pedestrian", "car": "vehicle", "truck": "vehicle"}}, names)
    assert cm.target_names == ("pedestrian", "vehicle")
    out = cm(d, iou=0.5)
    assert out.labels == ["pedestrian", "vehicle", "vehicle"]  # dog dropped; car and truck kept (no overlap)
    assert out.class_probs.shape == (3, 2) and out.class_probs[1, 1] == 1
    # a car box and a truck box on the same object collapse into one vehicle
    d2 = al.Detections([[0, 0, 10, 10], [0, 0, 10, 11]], [0.9, 0.5], [1, 2], names)
    assert len(cm(d2, iou=0.5)) == 1
    with pytest.raises(ConfigError, match="unicorn"):
        ClassMap.load({"mapping": {"unicorn": "horse"}}, names)
    with pytest.raises(ConfigError, match="invalid ClassMapConfig"):
        ClassMap.load({"mapping": {}, "bogus_key": 1}, names)


def test_bundled_class_map_config(yolov5n, coco150):
    res = al.prelabel([coco150 / "images" / "000000000139.jpg"], yolov5n, class_map="coco-vehicles", progress=False)
    assert res.class_names == ("pedestrian", "cyclist", "vehicle")
    assert set(res[0].labels) <= {"pedestrian", "cyclist", "vehicle"} and len(res[0]) > 0


def test_plot_draws_every_box(yolov5n, coco150):
    import matplotlib

    matplotlib.use("Agg")
    det = yolov5n(str(coco150 / "images" / "000000000139.jpg"))
    ax = det.plot()
    assert len(ax.patches) == len(det) > 0 and len(ax.texts) == len(det)
    assert len(det.plot(conf=0.99).patches) == int((det.scores >= 0.99).sum())
    with pytest.warns(DeprecationWarning):  # the old keyword, for one release
        assert len(det.plot(min_score=0.99).patches) == int((det.scores >= 0.99).sum())
