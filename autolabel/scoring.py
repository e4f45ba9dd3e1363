"""Box uncertainty scores, calibrators, ECE and agreement signals: kept importable here;
they live in :mod:`autolabel.routing.calibrators` and :mod:`autolabel.routing.features`."""

from autolabel.routing.calibrators import (
    ClassCalibrator, IsotonicCalibrator, PlattCalibrator, detection_ece, reliability_table,
)
from autolabel.routing.features import (
    box_table, class_entropy, class_margin, detector_agreement, match_targets, tta_agreement,
)

__all__ = [
    "class_entropy", "class_margin", "IsotonicCalibrator", "PlattCalibrator", "ClassCalibrator", "detection_ece",
    "reliability_table", "match_targets", "box_table", "tta_agreement", "detector_agreement",
]
