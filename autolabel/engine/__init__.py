"""Pre-labeling as a production batch job: streaming, resumable, crash-safe, on one
machine or on Ray.

``autolabel prelabel SOURCE --out OUT`` and :func:`run_job` run the same job:

* **Streaming.** Decoder threads read and letterbox images a few batches ahead of the
  detector (onnxruntime and torch release the GIL, so decoding overlaps inference); a
  writer thread appends results to the log behind it. Every stage hands over through
  a bounded queue, so memory stays flat however large the input (the job keeps only
  the set of image keys, tens of bytes per image). Video is decoded one frame at a
  time (every ``every``-th frame or every ``every_seconds``).
* **Resumable and crash-safe.** Results go to an append-only, fsynced shard log in
  ``OUT/.autolabel/`` (format: :mod:`autolabel.engine.log`), one record per input. A
  run with the same ``OUT`` skips every key already recorded (``--retry-failed``
  processes failed ones again); ``kill -9`` loses at most the batches in flight; the
  same input twice is labeled once. A log written by another model (``model_id``) or
  with other ``conf`` / ``iou`` / ``max_det`` is refused with an error naming both;
  ``--no-resume`` (``resume=False``) deletes it and starts over.
* **Outputs**, written from the log when every input is done (read back one image at a
  time, so the export's memory stays flat too), each file atomically (temp file +
  rename): the export (``--format``), ``errors.csv`` (``key,reason`` of every input
  that could not be read), ``frames.csv`` for video (frame index,
  timestamp and :mod:`temporal consistency <autolabel.engine.temporal>` per sampled frame)
  and ``.autolabel/summary.json`` (also printed by the CLI). ``export=False`` fills
  only the log; :func:`export_log` exports it later, in any format. Status and exit
  code: ``completed`` (0), ``completed with N skipped`` (1), ``failed`` (2: nothing
  could be labeled, or the model, the configuration or the output directory is
  unusable; the model is loaded before any input is read).
* **Ray.** ``--engine ray`` / ``engine="ray"``: see :mod:`autolabel.engine.ray_engine`.

Tuning on a CPU
---------------
ONNX models: ``--streams 2 --threads <cores / 2>`` (``streams=2,
detector_options={"threads": ...}``) keeps two batches in inference, each on its own
cores; on small models this beats one stream on every core (no barrier waits between
cores) and lets decoding fill the gaps: +8% on ``yolov5n`` on 2 cores. Decode threads
(``--workers``, default: the CPU count, at most 8) run at a lower OS priority than
inference, so they never stall it. ``python benchmarks/throughput.py --profile``
prints what each stage costs per image.

GPU
---
* ONNX models run on the CUDA execution provider when ``onnxruntime-gpu`` is installed
  (``pip install onnxruntime-gpu`` in place of ``onnxruntime``) and reports
  ``CUDAExecutionProvider``; ``--device cpu`` forces the CPU. ``det.providers`` shows
  what a session uses.
* Ultralytics and torchvision models use ``cuda`` when ``torch.cuda.is_available()``,
  or the ``--device`` given (``cuda:1``, ``cpu``).
* With Ray, give each actor a GPU (``RayOptions(num_gpus=1)``, ``--ray-gpus 1``): the
  pool then has one actor per GPU of the cluster; ``num_gpus=0.5`` packs two per GPU.
* Decoding stays on the CPU; raise ``--workers`` (decode threads) if the GPU idles.
"""

from autolabel.engine.job import ENGINES, JobOptions, JobSummary, export_log, run_job
from autolabel.engine.log import LogError, ResumeError, ShardLog

__all__ = ["ENGINES", "JobOptions", "JobSummary", "LogError", "ResumeError", "ShardLog", "export_log", "run_job"]
