"""autolabel: model-assisted labeling for object detection.

Pre-label images with pretrained detectors, route uncertain images to people, and
measure the human time and money the model saves::

    import autolabel as al
    det = al.load_detector("yolov5n.onnx")
    results = al.prelabel("photos/", det, conf=0.25)
    results.to_pandas()
    results.save("out/", format="coco")
"""

from autolabel.audit import audit
from autolabel.classmap import ClassMap
from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.detectors import Detector, list_models, load_detector
from autolabel.engine import JobOptions, run_job
from autolabel.pipeline import prelabel
from autolabel.sources import NoImagesError, open_source
from autolabel.io.images import load_image
from autolabel.training import TrainOptions, TrainResult, train

__version__ = "0.1.0"

__all__ = [
    "ClassMap",
    "audit",
    "Detections",
    "Detector",
    "Failure",
    "ImageInfo",
    "JobOptions",
    "NoImagesError",
    "Results",
    "list_models",
    "load_detector",
    "load_image",
    "open_source",
    "prelabel",
    "run_job",
    "train",
    "TrainOptions",
    "TrainResult",
]
