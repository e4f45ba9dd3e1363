"""A plain reference decode of YOLOv8/11-pose ONNX exports, and pycocotools' keypoint
evaluation, both independent of autolabel (numpy, OpenCV, onnxruntime, pycocotools only).

Used by tests/test_keypoints.py (on a subset) and benchmarks/keypoints.py (all images) to
check our decoder: letterbox to 640 with pad 114 (OpenCV resize + copyMakeBorder), one
``session.run``, boxes with score > conf, ``cv2.dnn.NMSBoxes`` at IoU 0.6 keeping the 300
best, keypoints mapped back by hand.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np


def reference_pose(model: str | Path, image_paths: list[Path], conf: float = 0.001, iou: float = 0.6,
                   max_det: int = 300) -> dict[str, list[dict]]:
    """file name -> list of {bbox xywh, score, keypoints flat x, y, score} in original pixels."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out: dict[str, list[dict]] = {}
    for path in image_paths:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        r = min(640 / h, 640 / w)
        nw, nh = int(round(w * r)), int(round(h * r))
        dw, dh = (640 - nw) / 2, (640 - nh) / 2
        top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
        resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nw, nh) != (w, h) else img
        padded = cv2.copyMakeBorder(resized, top, 640 - nh - top, left, 640 - nw - left, cv2.BORDER_CONSTANT,
                                    value=(114, 114, 114))
        x = padded.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        pred = sess.run(None, {name: x})[0][0].T  # (8400, 56)
        pred = pred[pred[:, 4] > conf]
        xywh = np.stack([pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2, pred[:, 2], pred[:, 3]], 1)
        keep = cv2.dnn.NMSBoxes(xywh.tolist(), pred[:, 4].tolist(), conf, iou, top_k=max_det)
        keep = np.array(keep, np.int64).reshape(-1)[:max_det]
        dets = []
        for i in keep:
            bx, by, bw, bh = xywh[i]
            x1, y1 = np.clip((bx - left) / r, 0, w), np.clip((by - top) / r, 0, h)
            x2, y2 = np.clip((bx + bw - left) / r, 0, w), np.clip((by + bh - top) / r, 0, h)
            kp = pred[i, 5:].reshape(17, 3).astype(np.float64)
            kp[:, 0] = np.clip((kp[:, 0] - left) / r, 0, w)
            kp[:, 1] = np.clip((kp[:, 1] - top) / r, 0, h)
            dets.append({"bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": float(pred[i, 4]),
                         "keypoints": kp.reshape(-1).tolist()})
        out[path.name] = dets
    return out


def keypoint_ap(gt_file: str | Path, dets: dict[str, list[dict]]) -> tuple[float, float]:
    """pycocotools keypoint OKS AP and AP50 of ``dets`` (file name -> detections) on the
    ground truth's images named in ``dets``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ids = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
        res = [{"image_id": ids[f], "category_id": 1, "keypoints": d["keypoints"], "score": d["score"]}
               for f, ds in dets.items() for d in ds]
        ev = COCOeval(gt, gt.loadRes(res), iouType="keypoints")
        ev.params.imgIds = sorted(ids[f] for f in dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def ours_as_dets(coco_json: str | Path) -> dict[str, list[dict]]:
    """Our COCO pre-label file -> file name -> detections (keypoints as written)."""
    data = json.loads(Path(coco_json).read_text())
    names = {im["id"]: im["file_name"] for im in data["images"]}
    out: dict[str, list[dict]] = {n: [] for n in names.values()}
    for a in data["annotations"]:
        out[names[a["image_id"]]].append({"bbox": a["bbox"], "score": a["score"], "keypoints": a["keypoints"]})
    return out
