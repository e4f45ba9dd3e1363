"""GPU throughput: our batch job with the Ultralytics backend against Ultralytics' own
``YOLO.predict`` on the same images, model and device (a CUDA machine; skipped on CPU).

    python benchmarks/gpu_throughput.py --images DIR --model yolov8n-bccd.pt [--repeat 4]

Prints a table and ends with ``ratio_to_ultralytics_gpu=X``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import autolabel as al
from autolabel.engine import run_job
from autolabel.sources import from_paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True)
    ap.add_argument("--model", default="yolov8n-bccd.pt")
    ap.add_argument("--repeat", type=int, default=4, help="pass over the images this many times")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 0
    paths = sorted(str(p) for p in Path(args.images).glob("*.jpg")) * args.repeat
    det = al.load_detector(args.model, device="cuda", batch_size=args.batch_size)
    det.predict([al.load_image(paths[0])] * 2)  # warm-up (CUDA context, kernels)

    from ultralytics import YOLO

    peer = YOLO(det.model.ckpt_path)  # the same file the resolver found
    list(peer.predict(paths[: args.batch_size], device="cuda", batch=args.batch_size, verbose=False, stream=True))
    t = time.perf_counter()
    for _ in peer.predict(paths, device="cuda", batch=args.batch_size, imgsz=det.input_size[0], verbose=False, stream=True):
        pass
    peer_ips = len(paths) / (time.perf_counter() - t)

    # the same file several times needs distinct keys: one folder of links per pass
    with tempfile.TemporaryDirectory() as tmp:
        linked = []
        for i, p in enumerate(paths):
            q = Path(tmp, "in", f"{i:06d}.jpg")
            q.parent.mkdir(exist_ok=True)
            q.symlink_to(Path(p).resolve())
            linked.append(str(q))
        t = time.perf_counter()
        s = run_job(from_paths(linked), Path(tmp, "out"), det, progress=False)
        ours_ips = len(paths) / (time.perf_counter() - t)
    gpu = torch.cuda.get_device_name(0)
    print(f"{'what':<44} {'images':>7} {'img/s':>8}   device: {gpu}")
    print(f"{'peer: Ultralytics YOLO.predict (stream)':<44} {len(paths):>7} {peer_ips:>8.1f}")
    print(f"{'ours: run_job, Ultralytics backend':<44} {s.images:>7} {ours_ips:>8.1f}   {ours_ips / peer_ips:.2f}x")
    print(f"ratio_to_ultralytics_gpu={ours_ips / peer_ips:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
