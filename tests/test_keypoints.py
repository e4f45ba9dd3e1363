"""Keypoints: the core type, the pose decoder against a plain reference decode, the four
formats against the tools' own readers, and keypoint savings.

Real model (``yolo11n-pose.onnx``) on real images: the first 60 of coco-person (sorted by
name) with their COCO keypoints (``person_keypoints.json``). The full 800 images are a
benchmark (``benchmarks/keypoints.py``).
"""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import autolabel as al
from autolabel import formats
from autolabel.cli import main as cli
from autolabel.core import Detections, ImageInfo, Results
from autolabel.keypoints import COCO_PERSON, KeypointSpec, oks

from conftest import DATA, MODELS
from pose_reference import keypoint_ap, ours_as_dets, reference_pose

PERSON = DATA / "coco-person"
KP_GT = PERSON / "person_keypoints.json"
N_IMAGES = 60


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> tuple[Path, Path]:
    """The first 60 coco-person images (symlinked) and their keypoint ground truth."""
    if not KP_GT.is_file():
        pytest.fail(f"shared data missing: {KP_GT} (set AUTOLABEL_SHARED)")
    root = tmp_path_factory.mktemp("kp")
    gt = json.loads(KP_GT.read_text())
    gt["images"] = sorted(gt["images"], key=lambda im: im["file_name"])[:N_IMAGES]
    ids = {im["id"] for im in gt["images"]}
    gt["annotations"] = [a for a in gt["annotations"] if a["image_id"] in ids]
    (root / "images").mkdir()
    for im in gt["images"]:
        (root / "images" / im["file_name"]).symlink_to(PERSON / "images" / im["file_name"])
    (root / "gt.json").write_text(json.dumps(gt))
    return root / "images", root / "gt.json"


@pytest.fixture(scope="module")
def predicted(subset, tmp_path_factory) -> Path:
    """``autolabel prelabel ... --format coco --conf 0.001`` on the subset (the command of the issue)."""
    out = tmp_path_factory.mktemp("pred")
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli(["prelabel", str(subset[0]), "--model", "yolo11n-pose.onnx", "--format", "coco", "--conf", "0.001",
                  "--out", str(out)])
    assert rc == 0
    return out / "annotations.json"


# -- the core type -------------------------------------------------------------------------------
def _dets(n: int = 3, k: int = 17) -> Detections:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (n, 2))
    kp = np.concatenate([rng.uniform(0, 100, (n, k, 2)), rng.uniform(0, 1, (n, k, 1))], 2)
    return Detections(np.hstack([xy, xy + 10]), rng.uniform(size=n), np.zeros(n), ("person",),
                      ImageInfo("a.jpg", 100, 100), keypoints=kp)


def test_keypoints_are_sliced_concatenated_and_compared_like_the_other_per_box_arrays():
    d = _dets()
    assert d.keypoints.shape == (3, 17, 3) and d.keypoint_spec == COCO_PERSON  # 17 points: COCO's person spec
    np.testing.assert_array_equal(d[[2, 0]].keypoints, d.keypoints[[2, 0]])
    np.testing.assert_array_equal(d[d.scores > 0.5].keypoints, d.keypoints[d.scores > 0.5])
    both = Detections.concat([d, d[:1]])
    assert both.keypoints.shape == (4, 17, 3) and both.keypoint_spec == d.keypoint_spec
    assert d == replace(d) and d != replace(d, keypoints=d.keypoints + 1)
    assert d != replace(d, keypoint_spec=KeypointSpec(tuple(f"p{i}" for i in range(17))))
    with pytest.raises(ValueError, match="keypoints must have shape"):
        replace(d, keypoints=d.keypoints[:2])
    with pytest.raises(ValueError, match="different keypoint_spec"):
        Detections.concat([d, replace(d, keypoint_spec=KeypointSpec(tuple(f"p{i}" for i in range(17))))])
    assert Results([d], ("person",)).keypoint_spec == COCO_PERSON
    assert Detections.empty(("person",)).keypoints is None


def test_oks_equals_pycocotools_compute_oks(subset):
    """Our per-person OKS equals ``COCOeval.computeOks`` on real persons with jittered keypoints."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(subset[1]))
    img = next(i for i in coco.getImgIds() if len([a for a in coco.imgToAnns[i] if a["num_keypoints"] > 0]) >= 2)
    anns = [a for a in coco.imgToAnns[img] if a["num_keypoints"] > 0]
    rng = np.random.default_rng(1)
    dts = [{"image_id": img, "category_id": 1, "score": 1.0,
            "keypoints": (np.array(a["keypoints"], float).reshape(17, 3) + [*rng.normal(0, 4, 2), 0]).ravel().tolist()}
           for a in anns]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dts), iouType="keypoints")
        ev.params.imgIds = [img]
        ev._prepare()
    theirs = ev.computeOks(img, 1)  # (detections sorted by score, ground truth)
    gts = ev._gts[img, 1]
    dsorted = sorted(ev._dts[img, 1], key=lambda d: -d["score"])
    for i, dt in enumerate(dsorted):
        for j, g in enumerate(gts):
            ours = oks(np.array(dt["keypoints"]).reshape(1, 17, 3), np.array(g["keypoints"]).reshape(1, 17, 3),
                       np.array([g["area"]]), COCO_PERSON.sigmas)[0]
            assert ours == pytest.approx(theirs[i, j], rel=1e-9)


# -- decoding: ours against a reference decode written here ----------------------------------------
def test_prelabel_keypoint_ap_equals_a_plain_reference_decode(subset, predicted):
    """Keypoint OKS AP of ``autolabel prelabel --conf 0.001`` within 0.01 of an independent decode
    (OpenCV letterbox, onnxruntime, cv2.dnn.NMSBoxes at 0.6) on the same images."""
    ref = reference_pose(MODELS / "yolo11n-pose.onnx", sorted(subset[0].glob("*.jpg")))
    ap_ref, ap50_ref = keypoint_ap(subset[1], ref)
    ap, ap50 = keypoint_ap(subset[1], ours_as_dets(predicted))
    assert ap_ref > 0.3 and ap50_ref > 0.6  # the reference is a working decode (0.400 / 0.767 on all 800)
    assert abs(ap - ap_ref) <= 0.01 and abs(ap50 - ap50_ref) <= 0.01, (ap, ap_ref, ap50, ap50_ref)


def test_draft_decode_maps_keypoints_to_full_size_pixels(tmp_path):
    """A 3x upscaled image decoded in the DCT domain (draft) gives keypoints in full-size pixels,
    3x the keypoints found on the original."""
    from PIL import Image

    name = "000000000785.jpg" if (PERSON / "images" / "000000000785.jpg").is_file() else \
        sorted(p.name for p in (PERSON / "images").glob("*.jpg"))[0]
    with Image.open(PERSON / "images" / name) as im:
        im.convert("RGB").resize((im.width * 3, im.height * 3), Image.LANCZOS).save(tmp_path / name, quality=95)
    det = al.load_detector("yolo11n-pose.onnx")
    small = det(PERSON / "images" / name, conf=0.5)
    big = al.prelabel([str(tmp_path / name)], det, conf=0.5, progress=False)[0]
    assert len(small) >= 1 and len(big) == len(small)
    order = np.argsort(-big.scores)
    vis = small.keypoints[np.argsort(-small.scores), :, 2] > 0.5
    d = np.abs(big.keypoints[order, :, :2] / 3 - small.keypoints[np.argsort(-small.scores), :, :2])[vis]
    assert np.median(d) < 2.0  # original pixels


def test_ultralytics_backend_passes_keypoints_through(tmp_path):
    """A YOLO11n-pose built here from Ultralytics' yaml (random weights: proves the plumbing, not
    accuracy): our backend returns exactly Ultralytics' own keypoints."""
    from ultralytics import YOLO

    import cv2
    import torch

    model = YOLO("yolo11n-pose.yaml")
    head = f"model.{len(model.model.model) - 1}."
    torch.manual_seed(0)
    with torch.no_grad():  # spread the fresh weights (the head's biases most) so that scores differ
        for n, p in model.model.named_parameters():
            p.add_(torch.randn_like(p) * (2.0 if n.startswith(head) and n.endswith("bias") else 0.05))
    path = tmp_path / "pose.pt"
    model.save(str(path))
    det = al.load_detector(str(path), device="cpu")
    assert det.keypoint_spec == COCO_PERSON
    bgr = cv2.imread(str(PERSON / "images" / sorted(p.name for p in (PERSON / "images").glob("*.jpg"))[0]))
    ours = det.predict([bgr[..., ::-1].copy()], conf=0.01, iou=0.7, max_det=300)[0]  # the same pixels for both
    theirs = YOLO(str(path)).predict(bgr, imgsz=det.input_size[0], conf=0.01, iou=0.7, max_det=300, rect=False,
                                     verbose=False, device="cpu")[0]
    want = np.concatenate([theirs.keypoints.xy.numpy(), theirs.keypoints.conf.numpy()[..., None]], 2)
    assert len(ours) == len(want) > 0
    order = np.lexsort((ours.xyxy[:, 0], -ours.scores)), np.lexsort((theirs.boxes.xyxy[:, 0].numpy(),
                                                                     -theirs.boxes.conf.numpy()))
    np.testing.assert_allclose(ours.keypoints[order[0]], want[order[1]], atol=1e-3)


# -- formats ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pred(predicted) -> Results:
    return formats.read_coco(predicted).filter(0.25)


@pytest.fixture(scope="module")
def truth(subset) -> Results:
    return formats.read_coco(subset[1])


def _same_keypoints(a: Results, b: Results, atol: float) -> None:
    assert a.keypoint_spec == b.keypoint_spec and len(a) == len(b)
    for x in a:
        y = b[x.image.key]
        np.testing.assert_allclose(y.keypoints[:, :, :2], x.keypoints[:, :, :2], atol=atol)
        np.testing.assert_array_equal(y.keypoints[:, :, 2], x.keypoints[:, :, 2])


def test_coco_keypoints_round_trip_and_run_in_cocoeval(pred, truth, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for name, r in (("pred", pred), ("gt", truth)):
        path = formats.write_coco(r, tmp_path / f"{name}.json")[0]
        _same_keypoints(r, formats.read_coco(path), atol=0)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))  # our ground-truth file, read by pycocotools
        assert gt.loadCats(1)[0]["keypoints"] == list(COCO_PERSON.names)
        data = json.loads((tmp_path / "pred.json").read_text())
        ev = COCOeval(gt, gt.loadRes(data["annotations"]), iouType="keypoints")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert 0.3 < ev.stats[0] <= 1  # our prediction file evaluated against our ground-truth file


def test_yolo_pose_labels_round_trip_and_load_in_ultralytics(pred, truth, subset, tmp_path):
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    formats.write_yolo(pred, tmp_path / "p")
    _same_keypoints(pred, formats.read_yolo(tmp_path / "p", image_sizes={d.image.key: (d.image.width, d.image.height)
                                                                         for d in pred}), atol=1e-3 * 640)
    out = tmp_path / "gt"
    formats.write_yolo(truth, out, confidence=False)
    (out / "images").symlink_to(subset[0])
    _same_keypoints(truth, formats.read_yolo(out), atol=1e-3 * 640)
    data = check_det_dataset(str(out / "data.yaml"))
    assert data["kpt_shape"] == [17, 3]
    ds = YOLODataset(img_path=str(out / "images"), data=data, task="pose", augment=False, imgsz=640)
    labels = {Path(lb["im_file"]).name: lb for lb in ds.labels}
    for d in truth:
        lb = labels[d.image.file_name]
        kp = d.keypoints / [d.image.width, d.image.height, 1]
        np.testing.assert_allclose(lb["keypoints"], kp, atol=2e-6)  # Ultralytics' own reader: normalised, v kept


def test_cvat_skeletons_round_trip(pred, truth, tmp_path):
    for name, r in (("pred", pred), ("gt", truth)):
        path = formats.write_cvat(r, tmp_path / f"{name}.xml")[0]
        back = formats.read_cvat(path)
        assert back.keypoint_spec == r.keypoint_spec  # names, and the skeleton from the <svg>
        _same_keypoints(r, back, atol=0.005)  # 2 decimals; scores (score attribute) and flags (outside, occluded) exact
    text = (tmp_path / "gt.xml").read_text()
    assert "<type>skeleton</type>" in text and "<parent>person</parent>" in text and 'occluded="1"' in text


def test_labelstudio_keypoints_on_the_real_server(server, pred, truth, tmp_path):
    """Pushed to a real Label Studio: the project gets a KeyPointLabels control, the server keeps every
    keypoint region (parent box, score) and they read back to the same keypoints."""
    from autolabel import labelstudio as ls

    keys = [d.image.key for d in pred if len(d)][:4]
    res = Results([pred[k] for k in keys], pred.class_names, pred.model_id)
    shown = Results([replace(d, keypoints=np.where(d.keypoints[..., 2:] >= 0.5, d.keypoints, 0)) for d in res],
                    res.class_names, res.model_id)
    client = ls.Client(server.url, server.token)
    rep = ls.push(res, "keypoints", client=client, document_root=DATA, image_root=PERSON / "images")
    proj = client.request("GET", f"/api/projects/{rep.project_id}")
    assert proj["parsed_label_config"]["keypoint"]["type"] == "KeyPointLabels"
    tasks = list(ls.tasks(client, rep.project_id))  # as the server stores them
    assert len(tasks) == len(keys)
    (tmp_path / "label_config.xml").write_text(proj["label_config"])
    server_tasks = [{"data": t["data"], "predictions": t["predictions"]} for t in tasks]
    (tmp_path / "tasks.json").write_text(json.dumps(server_tasks))
    back = formats.read_labelstudio(tmp_path / "tasks.json", use="predictions")
    _same_keypoints(shown, back, atol=1e-3)
    # the truth's flags 0/1/2 survive our own writer and reader
    formats.write_labelstudio(truth, tmp_path / "gt" / "tasks.json")
    _same_keypoints(truth, formats.read_labelstudio(tmp_path / "gt" / "tasks.json"), atol=1e-3)


# -- savings ------------------------------------------------------------------------------------
def test_savings_cli_prices_keypoints_when_both_files_hold_them(predicted, subset, tmp_path):
    out = tmp_path / "s.json"
    with contextlib.redirect_stdout(io.StringIO()) as text:
        assert cli(["savings", "--predictions", str(predicted), "--ground-truth", str(subset[1]),
                    "--json", str(out)]) == 0
    kp = json.loads(out.read_text())["keypoints"]
    lo, hi = kp["saved_fraction_ci95"]
    assert 0 < lo <= kp["saved_fraction"] <= hi < 1
    assert 0 < kp["visibility_threshold"] < 1 and kp["actions"]["accept"] > kp["actions"]["move"]
    assert {r["keypoint"] for r in kp["per_keypoint"]} == set(COCO_PERSON.names)
    assert "keypoints (keypoints):" in text.getvalue() and "joints fixed most" in text.getvalue()


def test_keypoint_actions_follow_the_ground_truth(truth):
    """The ground truth as predictions saves everything but verification; moving one wrist far
    makes it a move, hiding a labeled point an add, showing an unlabeled point a delete."""
    from autolabel.config import KeypointCostProfile
    from autolabel.savings.keypoints import keypoint_savings

    def as_prediction(d: Detections) -> Detections:  # every non-crowd person, labeled points shown (score 1)
        keep = ~d.crowd
        kp = d.keypoints[keep].copy()
        kp[..., 2] = kp[..., 2] > 0
        return Detections(d.xyxy[keep], np.ones(keep.sum()), d.class_ids[keep], d.class_names, d.image, keypoints=kp)

    prof = KeypointCostProfile.load("keypoints")
    perfect = Results([as_prediction(d) for d in truth], truth.class_names, "gt")
    rep = keypoint_savings(perfect, truth, prof, thresholds=[0.5], visibility_thresholds=[0.5], n_boot=0)
    a = rep.summary["actions"]
    labeled = int(sum(((d.keypoints[..., 2] > 0) & ~d.crowd[:, None]).sum() for d in truth))
    assert a == {"accept": labeled, "move": 0, "add": 0, "delete": 0}
    i = next(i for i, d in enumerate(perfect) if len(d) and perfect[i].keypoints[0, 9, 2] == 1)
    d = perfect[i]
    kp = d.keypoints.copy()
    kp[0, 9, :2] += 200  # left wrist far off
    kp[0, 10, 2] = 0.1  # right wrist hidden
    hidden = np.flatnonzero(kp[0, :, 2] == 0)
    kp[0, hidden[:1], 2] = 0.9  # an unlabeled point shown
    changed = Results([replace(x, keypoints=kp) if j == i else x for j, x in enumerate(perfect)], truth.class_names)
    b = keypoint_savings(changed, truth, prof, thresholds=[0.5], visibility_thresholds=[0.5], n_boot=0).summary
    want_add = int(d.keypoints[0, 10, 2] > 0)
    assert b["actions"]["move"] == 1 and b["actions"]["add"] == want_add and b["actions"]["delete"] == len(hidden[:1])
    assert b["saved_fraction"] < rep.summary["saved_fraction"]


# -- downstream -----------------------------------------------------------------------------------
def test_serve_sends_a_pose_models_keypoints_to_the_projects_keypoint_control(subset):
    """``autolabel serve`` with the pose model: keypoint regions go to the project's KeyPointLabels
    control (its own name), each under its box (``parentID``), and equal ``autolabel.prelabel``'s."""
    from fastapi.testclient import TestClient

    from autolabel.serve import Backend, ImageAccess, create_app

    keys = sorted(p.name for p in subset[0].glob("*.jpg"))[:3]
    config = ('<View><Image name="photo" value="$img"/><RectangleLabels name="boxes" toName="photo">'
              '<Label value="person"/></RectangleLabels><KeyPointLabels name="joints" toName="photo">'
              + "".join(f'<Label value="{n}"/>' for n in COCO_PERSON.names) + "</KeyPointLabels></View>")
    tasks = [{"id": i, "data": {"img": f"/data/local-files/?d=coco-person/images/{k}"}} for i, k in enumerate(keys)]
    backend = Backend("yolo11n-pose.onnx", conf=0.5, images=ImageAccess(document_root=DATA))
    out = TestClient(create_app(backend)).post("/predict", json={"tasks": tasks, "label_config": config}).json()
    want = al.prelabel([PERSON / "images" / k for k in keys], backend.detector, conf=0.5, progress=False)
    for d, p in zip(want, out["results"]):
        boxes = [r for r in p["result"] if r["type"] == "rectanglelabels"]
        points = [r for r in p["result"] if r["type"] == "keypointlabels"]
        assert len(boxes) == len(d) and {r["from_name"] for r in points} <= {"joints"}
        assert len(points) == int((d.keypoints[:, :, 2] >= 0.5).sum()) > 0
        ids = [r["id"] for r in boxes]
        for r in points:
            j, n = ids.index(r["parentID"]), COCO_PERSON.names.index(r["value"]["keypointlabels"][0])
            x, y, v = d.keypoints[j, n]
            assert r["value"]["x"] == pytest.approx(100 * x / d.image.width, abs=1e-4)
            assert r["value"]["y"] == pytest.approx(100 * y / d.image.height, abs=1e-4)
            assert r["score"] == pytest.approx(v, abs=1e-6)


def test_model_ladder_ranks_a_pose_model_with_keypoint_ap_and_savings(subset, tmp_path):
    """``run_ladder`` (what ``autolabel compare`` runs) on a pose model and keypoint ground truth: the
    rung carries keypoint OKS AP (equal to pycocotools on the same predictions) and keypoint savings."""
    from autolabel.savings.ladder import run_ladder

    names = sorted(p.name for p in subset[0].glob("*.jpg"))[:10]
    ladder, preds, _ = run_ladder(["yolo11n-pose.onnx"], subset[0], subset[1], split=names, evidence_conf=0.001)
    row = ladder.table.iloc[0]
    (res,) = preds.values()
    formats.write_coco(res, tmp_path / "p.json")
    gt = json.loads(subset[1].read_text())
    keep = {im["id"] for im in gt["images"] if im["file_name"] in names}
    gt = {**gt, "images": [im for im in gt["images"] if im["id"] in keep],
          "annotations": [a for a in gt["annotations"] if a["image_id"] in keep]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    assert row["keypoint_AP"] == pytest.approx(keypoint_ap(tmp_path / "gt.json", ours_as_dets(tmp_path / "p.json"))[0])
    assert 0 < row["keypoint_ci95_low"] <= row["keypoint_saved_fraction"] <= row["keypoint_ci95_high"] < 1
    assert "keypoint_AP" in ladder.to_markdown()


def test_audit_finds_keypoints_off_their_box_and_persons_left_without_keypoints(truth, pred):
    """Known errors injected into the real labels: 5 persons' keypoints moved off their box by 1.5 box
    widths, 5 clearly seen persons' keypoints deleted. The audit ranks the moved ones first and finds
    the deleted ones through the model's keypoints."""
    from autolabel.audit.keypoints import keypoint_label_issues

    clean = keypoint_label_issues(truth, pred)
    rng = np.random.default_rng(0)
    cands = [(i, j) for i, d in enumerate(truth) for j in range(len(d))
             if (d.keypoints[j, :, 2] > 0).sum() >= 12 and not d.crowd[j]
             and not ((clean["file_name"] == d.image.file_name) & (clean["box"] == j)).any()]
    picks = [cands[k] for k in rng.choice(len(cands), 10, replace=False)]
    dets = [d for d in truth]
    for n, (i, j) in enumerate(picks):
        kp = dets[i].keypoints.copy()
        if n < 5:
            kp[j, :, 0] += np.where(kp[j, :, 2] > 0, 1.5 * (dets[i].xyxy[j, 2] - dets[i].xyxy[j, 0]), 0)
        else:
            kp[j] = 0
        dets[i] = replace(dets[i], keypoints=kp)
    bad = keypoint_label_issues(Results(dets, truth.class_names), pred)
    key = lambda i, j: (truth[i].image.file_name, j)  # noqa: E731
    outside = bad[bad["issue"] == "keypoints_outside_box"]
    moved = {key(i, j) for i, j in picks[:5]}
    assert set(zip(outside["file_name"][:5], outside["box"][:5])) == moved  # the injected ones rank first
    missing = set(zip(*bad.loc[bad["issue"] == "missing_keypoints", ["file_name", "box"]].to_numpy().T))
    assert len({key(i, j) for i, j in picks[5:]} & missing) >= 4


@pytest.mark.parametrize("fmt", ["yolo", "cvat", "labelstudio"])
def test_prelabel_writes_keypoints_in_every_format_from_its_log(fmt, subset, predicted):
    """The same ``autolabel prelabel`` command with another ``--format`` exports the job's shard log
    (no inference again): the keypoints come out equal to the COCO export's."""
    out = predicted.parent
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["prelabel", str(subset[0]), "--model", "yolo11n-pose.onnx", "--format", fmt, "--conf", "0.001",
                    "--out", str(out)]) == 0
    coco = formats.read_coco(predicted)
    sizes = {d.image.key: (d.image.width, d.image.height) for d in coco}
    back = formats.read(out, fmt, **({"image_sizes": sizes} if fmt == "yolo" else {}))
    assert back.keypoint_spec == COCO_PERSON and len(back) == len(coco)
    for d in coco:
        b = back[d.image.key]
        shown = d.keypoints[:, :, 2] >= 0.5 if fmt == "labelstudio" else np.ones(d.keypoints.shape[:2], bool)
        np.testing.assert_allclose(b.keypoints[:, :, :2][shown], d.keypoints[:, :, :2][shown], atol=0.7)
        np.testing.assert_allclose(b.keypoints[:, :, 2][shown], d.keypoints[:, :, 2][shown], atol=1e-6)
