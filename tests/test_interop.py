"""Hand-offs to supervision and FiftyOne keep scores, class names, routing fields and track ids.

FiftyOne is an optional extra that is not installed in CI (it pins an older starlette
than FastAPI here, and its own MongoDB may not start): the FiftyOne conversion is tested
against FiftyOne's documented sample schema (what ``fo.Sample.to_dict()`` gives:
``_cls`` tags, relative ``[x, y, w, h]`` boxes, ``metadata`` width/height), and against
FiftyOne itself where it is installed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import supervision as sv

import autolabel as al
from autolabel.core import Detections
from autolabel.interop import fiftyone_document, from_fiftyone_document


@pytest.fixture(scope="module")
def rich(coco150, yolov5n):
    """Real pre-labels of 6 images, with routing fields, agreement and track ids per box,
    and one image whose boxes were all filtered away."""
    paths = sorted((coco150 / "images").glob("*.jpg"))[:6]
    pre = al.prelabel(paths, yolov5n, progress=False)
    dets, next_id = [], 100
    for i, d in enumerate(pre):
        if i == 5:
            d = d[:0]
        n = len(d)
        data = {
            "p_correct": np.linspace(0.1, 0.9, n),  # float64 routing score
            "queue": np.array(["review", "scratch", "auto_accept"] * n, dtype="<U11")[:n],
            "agreement": (d.scores * 0.5).astype(np.float32),
            "box_xy_rank": np.stack([np.arange(n), -np.arange(n)], 1).astype(np.int32),  # (N, 2) data
        }
        dets.append(replace(d, track_id=np.arange(next_id, next_id + n), data=data))
        next_id += n
    out = replace(pre, detections=dets)
    assert out.num_boxes > 20 and all(d.class_probs is not None for d in out)
    return out


def test_supervision_round_trip_keeps_everything(rich):
    for d in rich:
        s = d.to_supervision()
        assert isinstance(s, sv.Detections) and len(s) == len(d)
        assert s.data["class_name"].tolist() == d.labels
        np.testing.assert_array_equal(s.tracker_id, d.track_id)
        back = Detections.from_supervision(s)
        assert back == d  # boxes, scores, ids, names, image, probs, track ids and every data array


def test_supervisions_own_operations_carry_our_fields(rich):
    d = rich[0]
    s = d.to_supervision()
    kept = s[s.confidence > 0.5]  # supervision's own filtering slices data and tracker ids with the boxes
    want = d[d.scores > 0.5]
    assert 0 < len(want) < len(d)
    assert Detections.from_supervision(kept) == want
    merged = sv.Detections.merge([d[:2].to_supervision(), d[2:].to_supervision()])
    assert Detections.from_supervision(merged, image=d.image) == d


def test_from_supervision_maps_names_onto_another_class_list(rich):
    d = rich[0]
    s = d.to_supervision()
    order = tuple(reversed(d.class_names))
    back = Detections.from_supervision(s, class_names=order)
    assert back.labels == d.labels and back.class_names == order
    assert not np.array_equal(back.class_ids, d.class_ids)
    bare = sv.Detections(xyxy=s.xyxy, confidence=s.confidence, data={"class_name": s.data["class_name"]})
    named = Detections.from_supervision(bare)  # names only: ids follow the sorted names found
    assert named.labels == d.labels and list(named.class_names) == sorted(set(d.labels))
    with pytest.raises(ValueError, match="not in class_names"):
        Detections.from_supervision(s, class_names=["person"])
    with pytest.raises(ValueError, match="clash"):
        replace(d, data={"class_name": np.zeros(len(d))}).to_supervision()


def test_fiftyone_document_follows_the_sample_schema(rich):
    doc = fiftyone_document(rich)
    assert doc["classes"] == {"predictions": list(rich.class_names)}
    first, d = doc["samples"][0], rich[0]
    assert first["filepath"] == d.image.path and first["metadata"] == {
        "_cls": "ImageMetadata", "width": d.image.width, "height": d.image.height,
    }
    dets = first["predictions"]
    assert dets["_cls"] == "Detections" and len(dets["detections"]) == len(d)
    o = dets["detections"][0]
    x, y, w, h = d.xywh[0].astype(np.float64)
    W, H = d.image.width, d.image.height
    assert o["_cls"] == "Detection" and o["label"] == d.labels[0]
    np.testing.assert_allclose(o["bounding_box"], [x / W, y / H, w / W, h / H], rtol=1e-6)
    assert all(0 <= v <= 1 for v in o["bounding_box"])
    assert o["confidence"] == pytest.approx(float(d.scores[0])) and o["index"] == d.track_id[0]
    assert o["queue"] == d.data["queue"][0] and o["box_xy_rank"] == d.data["box_xy_rank"][0].tolist()


def test_fiftyone_document_round_trip_keeps_everything(rich):
    back = from_fiftyone_document(fiftyone_document(rich))
    assert back.class_names == rich.class_names and back.model_id == rich.model_id and len(back) == len(rich)
    for b, d in zip(back, rich):
        np.testing.assert_allclose(b.xyxy, d.xyxy, atol=1e-3)  # relative boxes and back: float rounding only
        assert replace(b, xyxy=d.xyxy) == replace(d, image=b.image)
        assert (b.image.key, b.image.width, b.image.height) == (d.image.key, d.image.width, d.image.height)
    assert len(back[5]) == 0 and set(back[5].data) == set(rich[5].data)


def test_fiftyone_inputs_with_problems_are_named(rich):
    doc = fiftyone_document(rich)
    doc["samples"][1]["metadata"] = None
    with pytest.raises(ValueError, match=r"sample '.*\.jpg': no metadata width/height"):
        from_fiftyone_document(doc)
    doc = fiftyone_document(rich)
    with pytest.raises(ValueError, match=r"labels \['person'\] are not in the class names"):
        from_fiftyone_document(doc, class_names=[n for n in rich.class_names if n != "person"])
    with pytest.raises(ValueError, match="reserved by FiftyOne"):
        fiftyone_document(replace(rich, detections=[replace(rich[0], data={"mask": np.zeros(len(rich[0]))})]))


def test_real_fiftyone_samples_round_trip(rich):
    """With FiftyOne installed: its own Sample/Detection objects (no database needed) and,
    where its MongoDB runs, a Dataset. CI has no FiftyOne; this ran beside it by hand."""
    fo = pytest.importorskip("fiftyone", reason="FiftyOne is an optional extra (the schema tests above run in CI)")
    from autolabel.interop import fiftyone_samples, from_fiftyone

    samples = fiftyone_samples(rich)
    assert all(isinstance(s, fo.Sample) for s in samples)
    assert isinstance(samples[0]["predictions"].detections[0], fo.Detection)
    assert samples[0]["predictions"].detections[0].index == rich[0].track_id[0]
    back = from_fiftyone(samples, info=fiftyone_document(rich)["info"], class_names=rich.class_names)
    for b, d in zip(back, rich):
        np.testing.assert_allclose(b.xyxy, d.xyxy, atol=1e-3)
        assert replace(b, xyxy=d.xyxy) == replace(d, image=b.image)
