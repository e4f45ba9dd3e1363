"""Throughput of the pre-labeling engine against its ceiling and a peer, and its scaling.

Sections (all in one run, one table):

1. **ceiling**: ONNX Runtime ``session.run`` alone (``OnnxDetector.run_raw``) on batches
   preprocessed beforehand, in the better of two layouts: one stream with every core
   (``threads=cores``), or ``streams`` concurrent calls with ``cores / streams`` threads
   each (what our engine runs). **ours**: the whole job (:func:`autolabel.engine.run_job`:
   decode -> letterbox -> infer -> NMS -> shard log -> COCO export) on the same images,
   same model and batch size. Goal: ours / ceiling >= 0.90. The engine's default
   settings (what a user gets with no options: :mod:`autolabel.detectors.tuning`) are shown
   too; goal: defaults / ceiling >= 0.90.
2. **peer**: Ultralytics ``YOLO(pt).predict`` on the BCCD val images with
   ``yolov8n-bccd.pt`` versus our job on its ONNX export (exported here, offline, with
   ``YOLO(pt).export(format="onnx", imgsz=416, dynamic=True)``), same images.
   Goal: ours / peer >= 1.5.
3. **scaling**: peak RSS and seconds per image of the job at 1,000 and 10,000 images
   (the shared images repeated through symlinks), each in a fresh subprocess so that
   peak RSS means something. Goal: within 10% of each other.

Timings are the best of ``--repeats`` interleaved rounds; the CPU column (process CPU
time per image) is the steadier number on a shared machine.
Usage: ``python benchmarks/throughput.py [--quick]``; ``--profile`` prints the CPU
cost of each pipeline stage instead. Ends with the line
``ratio_to_ceiling=X ratio_defaults_to_ceiling=Y ratio_to_ultralytics=Z`` (Y is the
figure users get).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUTOLABEL_SHARED", ROOT.parent / "shared"))
os.environ.setdefault("AUTOLABEL_MODEL_DIR", str(SHARED / "models"))
COCO_IMAGES = SHARED / "data" / "coco-val-150" / "images"
BCCD = SHARED / "data" / "bccd"


@dataclass(frozen=True)
class Setup:
    """Engine settings: concurrent inference batches, ONNX threads per batch, decode threads."""

    streams: int | None = None  # None: the engine's default (autolabel.detectors.tuning)
    threads: int | None = None  # None: the backend's default
    workers: int | None = None

    def load(self, model: str) -> Any:
        import autolabel as al

        return al.load_detector(model, **({"threads": self.threads} if self.threads else {}))

    def job(self, src: str | list[str], det: Any, out: Path, **kw: Any) -> None:
        from autolabel.engine import run_job

        run_job(src, out, det, "coco", progress=False, resume=False, workers=self.workers, streams=self.streams,
                **kw)

    def label(self) -> str:
        if self.streams is None and self.threads is None:
            from autolabel.detectors.tuning import cpu_streams, cpu_threads

            return f"defaults ({cpu_streams()} stream(s) x {cpu_threads()} thread(s))"
        return f"{self.streams} stream(s) x {self.threads or os.cpu_count()} thread(s)"


class _Clock:
    """Wall and process CPU seconds of a block; keeps the best (lowest-wall) round."""

    def __init__(self) -> None:
        self.wall, self.cpu = float("inf"), float("inf")

    def __enter__(self) -> _Clock:
        self._t, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t
        if wall < self.wall:
            self.wall, self.cpu = wall, time.process_time() - self._c


def ceiling_vs_ours(model: str, n: int, repeats: int, tuned: Setup) -> dict[str, Any]:
    from autolabel.io.images import load_image

    paths = [str(p) for p in sorted(COCO_IMAGES.glob("*.jpg"))[:n]]
    default = Setup()  # what a user gets: no streams, threads or workers given
    det = Setup(threads=os.cpu_count()).load(model)  # one session with every core
    det_t, det_d = tuned.load(model), default.load(model)
    bs = det.batch_size
    prepared = [det.prepare(load_image(p)) for p in paths]
    batches = []
    for i in range(0, len(prepared), bs):  # the values predict_prepared feeds the session
        batches.append(det.to_input(prepared[i: i + bs]))
    clocks = {k: _Clock() for k in ("ceiling_1", "ceiling_n", "ours_default", "ours")}
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(tuned.streams) as pool:
        det.run_raw(batches[0]), det_t.run_raw(batches[0])
        tuned.job(paths[:bs], det_t, Path(tmp) / "warm")
        default.job(paths[:bs], det_d, Path(tmp) / "warm-d")
        for _ in range(repeats):
            with clocks["ceiling_1"]:
                for x in batches:
                    det.run_raw(x)
            with clocks["ceiling_n"]:
                list(pool.map(det_t.run_raw, batches))
            with clocks["ours_default"]:
                default.job(paths, det_d, Path(tmp) / "out")
            with clocks["ours"]:
                tuned.job(paths, det_t, Path(tmp) / "out")
    return {"images": len(paths), **clocks}


def profile(model: str, n: int) -> None:
    """CPU milliseconds per image of each stage, one thread each (a 1-thread session), on
    the ceiling's images: what the engine adds to inference, and the ratio that bounds
    ours / ceiling when every core is busy."""
    from autolabel.core import ImageInfo
    from autolabel.engine.log import encode_record
    from autolabel.io.images import load_image

    paths = [str(p) for p in sorted(COCO_IMAGES.glob("*.jpg"))[:n]]
    det = Setup(threads=1).load(model)
    cost: dict[str, float] = {}

    def timed(stage: str, fn: Any, *args: Any) -> Any:
        c = time.process_time()
        out = fn(*args)
        cost[stage] = cost.get(stage, 0.0) + (time.process_time() - c) * 1000 / n
        return out

    images = [timed("decode (load_image)", load_image, p) for p in paths]
    prepared = [timed("letterbox (prepare)", det.prepare, im) for im in images]
    for i in range(0, n, det.batch_size):
        chunk = prepared[i: i + det.batch_size]
        timed("inference (session.run)", det.run_raw, det.to_input(chunk))
        dets = timed("convert + infer + NMS (predict_prepared)", det.predict_prepared, chunk, 0.25, 0.6, 300)
        for d, p, im in zip(dets, paths[i:], images[i:]):
            info = ImageInfo(p, im.shape[1], im.shape[0])
            timed("log record (encode_record)", encode_record, d.with_image(info), "m")
    infer = cost["inference (session.run)"]
    cost["convert + NMS"] = cost.pop("convert + infer + NMS (predict_prepared)") - infer
    for stage, ms in cost.items():
        print(f"{stage:<28} {ms:6.2f} CPU ms/image")
    added = sum(ms for stage, ms in cost.items() if not stage.startswith("inference"))
    print(f"added by the pipeline: {added:.2f} ms/image; bound on ours / ceiling with every core busy: "
          f"{infer / (infer + added):.3f}")


def peer(n: int, repeats: int, tuned: Setup) -> dict[str, Any]:
    from ultralytics import YOLO

    ids = (BCCD / "ImageSets" / "Main" / "val.txt").read_text().split()[:n]
    paths = [str(BCCD / "JPEGImages" / f"{i}.jpg") for i in ids]
    with tempfile.TemporaryDirectory() as tmp:
        pt = Path(tmp) / "yolov8n-bccd.pt"
        pt.symlink_to(SHARED / "models" / "yolov8n-bccd.pt")
        onnx = YOLO(str(pt)).export(format="onnx", imgsz=416, dynamic=True, simplify=False, verbose=False)
        ultra = YOLO(str(pt))
        det = tuned.load(onnx)

        def run_ultra() -> None:
            for _ in ultra.predict(paths, imgsz=416, conf=0.25, device="cpu", stream=True, verbose=False):
                pass

        run_ultra()
        tuned.job(paths[:8], det, Path(tmp) / "warm", conf=0.25)
        theirs, ours = _Clock(), _Clock()
        for _ in range(repeats):
            with theirs:
                run_ultra()
            with ours:
                tuned.job(paths, det, Path(tmp) / "out", conf=0.25)
    return {"images": len(paths), "ultralytics": theirs, "ours": ours}


def _peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across fork + exec
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")) / 1024


def _scaling_child(n: int, model: str, tuned: Setup) -> None:
    """In a fresh process: the job over ``n`` symlinked images; prints seconds and the peak
    RSS after streaming into the log and after the COCO export."""
    from autolabel.engine import export_log

    images = sorted(COCO_IMAGES.glob("*.jpg"))
    det = tuned.load(model)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "images"
        src.mkdir()
        for i in range(n):
            (src / f"{i:06d}.jpg").symlink_to(images[i % len(images)])
        with _Clock() as clock:
            tuned.job(str(src), det, Path(tmp) / "out", export=False)
            streaming = _peak_rss_mb()
            export_log(Path(tmp) / "out", "coco")
    print(json.dumps({"n": n, "seconds": clock.wall, "cpu": clock.cpu, "rss_streaming_mb": streaming,
                      "rss_mb": _peak_rss_mb()}))


def scaling(counts: list[int], model: str, tuned: Setup) -> list[dict[str, float]]:
    rows = []
    for n in counts:
        cmd = [sys.executable, __file__, "--child", str(n), "--scaling-model", model, "--streams", str(tuned.streams)]
        if tuned.workers:
            cmd += ["--workers", str(tuned.workers)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and rounds (a smoke run)")
    ap.add_argument("--model", default="yolov5n.onnx", help="model of the ceiling comparison")
    ap.add_argument("--scaling-model", default="yolov5n-320.onnx", help="model of the scaling runs")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--streams", type=int, default=2, help="engine inference streams (threads: cores / streams)")
    ap.add_argument("--workers", type=int, default=None, help="decode threads (default: the engine's)")
    ap.add_argument("--profile", action="store_true", help="print CPU time per pipeline stage and stop")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    tuned = Setup(args.streams, max(1, (os.cpu_count() or 1) // args.streams), args.workers)
    if args.child is not None:
        return _scaling_child(args.child, args.scaling_model, tuned)
    if args.profile:
        return profile(args.model, 150)
    import onnxruntime as ort

    repeats = args.repeats or (1 if args.quick else 3)
    counts = [200, 1000] if args.quick else [1000, 10000]
    cpu = platform.processor() or "?"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    print(f"machine: {cpu}, {os.cpu_count()} CPUs; python {platform.python_version()}, "
          f"onnxruntime {ort.__version__} ({', '.join(ort.get_available_providers())}); ours: {tuned.label()}")
    c = ceiling_vs_ours(args.model, 48 if args.quick else 150, repeats, tuned)
    p = peer(24 if args.quick else 87, repeats, tuned)
    s = scaling(counts, args.scaling_model, tuned)
    ceiling = min(c["ceiling_1"], c["ceiling_n"], key=lambda k: k.wall)
    r_ceiling = ceiling.wall / c["ours"].wall
    r_defaults = ceiling.wall / c["ours_default"].wall
    r_peer = p["ultralytics"].wall / p["ours"].wall
    n_c, n_p = c["images"], p["images"]

    def row(what: str, model: str, n: int, clock: Any, ratio: str = "") -> tuple[str, ...]:
        return what, model, str(n), f"{n / clock.wall:.1f}", f"{1000 * clock.cpu / n:.1f}", ratio

    rows = [
        row(f"ceiling: session.run, 1 stream x {os.cpu_count()} threads", args.model, n_c, c["ceiling_1"]),
        row(f"ceiling: session.run, {tuned.label()}", args.model, n_c, c["ceiling_n"]),
        row(f"ours: run_job, {tuned.label()}", args.model, n_c, c["ours"],
            f"{r_ceiling:.3f} of ceiling (CPU: {ceiling.cpu / c['ours'].cpu:.3f})"),
        row(f"ours: run_job, {Setup().label()}", args.model, n_c, c["ours_default"],
            f"{r_defaults:.3f} of ceiling"),
        row("peer: Ultralytics YOLO.predict", "yolov8n-bccd.pt", n_p, p["ultralytics"]),
        row(f"ours: run_job on its ONNX export, {tuned.label()}", "yolov8n-bccd.onnx", n_p, p["ours"],
            f"{r_peer:.2f}x Ultralytics (CPU: {p['ultralytics'].cpu / p['ours'].cpu:.2f}x)"),
    ]
    for r in s:
        clock = _Clock()
        clock.wall, clock.cpu = r["seconds"], r["cpu"]
        rows.append(row(f"scaling: run_job, peak RSS {r['rss_streaming_mb']:.0f} MB streaming, "
                        f"{r['rss_mb']:.0f} MB with export", args.scaling_model, r["n"], clock,
                        f"{1000 * r['seconds'] / r['n']:.2f} ms/image"))
    head = ("what", "model", "images", "img/s", "CPU ms/img", "ratio (by wall time)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    a, b = s[0], s[-1]
    print(f"scaling {a['n']} -> {b['n']} images: peak RSS streaming "
          f"x{b['rss_streaming_mb'] / a['rss_streaming_mb']:.3f}, with export x{b['rss_mb'] / a['rss_mb']:.3f}; "
          f"s/image x{(b['seconds'] / b['n']) / (a['seconds'] / a['n']):.3f}")
    print(f"ratio_to_ceiling={r_ceiling:.3f} ratio_defaults_to_ceiling={r_defaults:.3f} ratio_to_ultralytics={r_peer:.2f}")


if __name__ == "__main__":
    main()
