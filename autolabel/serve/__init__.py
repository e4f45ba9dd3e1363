"""``autolabel serve``: a Label Studio ML backend for any detector the resolver loads.

Label Studio asks the backend for predictions when a task opens or when a batch of
tasks is selected ("Retrieve predictions"); the backend answers with rectangle regions
named after the project's own labeling config::

    from autolabel.serve import Backend, ImageAccess, serve
    backend = Backend("yolov5n.onnx", conf={"person": 0.4},
                      images=ImageAccess("http://127.0.0.1:8080", token, document_root="/data"))
    serve(backend)  # http://127.0.0.1:9090; connect it in the project's Settings > Model

:mod:`~autolabel.serve.labelconfig` reads region names, :mod:`~autolabel.serve.images`
decides which image URLs may be read, :mod:`~autolabel.serve.backend` predicts, and
:mod:`~autolabel.serve.app` speaks the HTTP protocol, and :mod:`~autolabel.serve.training`
fine-tunes on the project's annotations when Label Studio says "Start training"
(``autolabel serve --train-dir DIR``), swapping the model in only when it validates better.
"""

from autolabel.serve.app import DEFAULT_HOST, DEFAULT_PORT, Limits, create_app, serve
from autolabel.serve.backend import Backend
from autolabel.serve.images import ImageAccess, RefusedURL
from autolabel.serve.labelconfig import LabelConfigMismatch, RegionNames, parse_label_config
from autolabel.serve.training import ServeTrainer, TrainingBusy, TrainSettings

__all__ = [
    "Backend",
    "ImageAccess",
    "RefusedURL",
    "LabelConfigMismatch",
    "RegionNames",
    "parse_label_config",
    "ServeTrainer",
    "TrainSettings",
    "TrainingBusy",
    "create_app",
    "Limits",
    "serve",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
]
