"""autolabel: model-assisted labeling for object detection."""
from autolabel.core import Detections, Failure, ImageInfo, Results
from autolabel.detectors import Detector, load_detector
from autolabel.pipeline import prelabel
