"""Route every image to one queue, with a stated guarantee for what is auto-accepted.

Queues (:data:`QUEUES`): ``auto_accept`` (the pre-labels become labels, no person looks),
``review`` (a person checks and corrects the pre-labels) and ``scratch`` (fixing the
pre-labels is expected to cost more than drawing from nothing).

Modules: :mod:`~autolabel.routing.bounds` (confidence bounds and threshold tests, pure
numpy/scipy), :mod:`~autolabel.routing.calibrators` and :mod:`~autolabel.routing.features`
(box calibration, per-box and per-image features, targets from one
:class:`~autolabel.matching.Matching`), :mod:`~autolabel.routing.scorers` (the learned image
scorer), :mod:`~autolabel.routing.policy` and :mod:`~autolabel.routing.fit` (fitting and
persistence), :mod:`~autolabel.routing.routes` (queues and exports),
:mod:`~autolabel.routing.evaluation`, :mod:`~autolabel.routing.planner`,
:mod:`~autolabel.routing.plots`.

Definitions
-----------
* **Needs an edit**: an image whose pre-labels (``score >= prelabel_conf``), matched to its
  ground truth (:func:`autolabel.matching.match`: IoU >= ``iou_min`` found, >= ``iou_accept``
  exact), produce any adjust, relabel, adjust_relabel, delete or draw. Crowd regions, and
  ground-truth boxes below ``min_gt_area`` (don't-care), count neither way. With
  ``iou_accept = iou_min = 0.5`` (preset ``factory-pass-90``) an image passes when no box is
  wrong or missing at IoU 0.5: the QC rule of annotation factories.
* **Risk**: the mean per-image loss over the auto-accepted images
  (:func:`~autolabel.routing.policy.image_loss`): ``image_any_edit`` (0/1) or
  ``box_error_rate`` (share of wrong or missed boxes, in [0, 1]). **Coverage**: the share
  auto-accepted. Images are the i.i.d. units; boxes within an image may be dependent.
* **Image scores**: the product model (``scorer: product``): per-box calibrated
  probabilities (isotonic or Platt per class), ``P(no edit) = Platt(prod p_exact *
  exp(-E[draw]))`` with a non-negative least-squares miss model; or the learned scorer
  (``scorer: learned``): scikit-learn gradient boosting on the image features of
  :data:`~autolabel.routing.features.IMAGE_FEATURES` and the product model's outputs,
  predicting "needs no edit", the box error rate and the correction seconds.

Why the bound is exact (``holdout > 0`` with test ``bonferroni`` or ``fixed_sequence``)
---------------------------------------------------------------------------------------
The calibration images are split at random into a fit part and a bound part
(``holdout``: the bound part's share). Everything learned (box calibrators, miss model,
the gradient-boosted scorer ``f``) and every candidate threshold ``t_1 > ... > t_K`` (the
scores, out of fold on the fit part, that accept each level of ``coverage_grid``; for
``fixed_sequence`` also the order, starting at the candidate whose bound predicted on the fit
part is lowest, then the looser ones) is a function of the fit part only. Conditional on the
fit part, ``f`` and the ``t_k`` are fixed, and the bound images are i.i.d. draws from the
population, independent of them. For each ``k`` the risk ``R(t_k)`` (mean loss of a new image
with ``f >= t_k``) is then estimated by the losses of the bound images with ``f >= t_k``:
given their number ``n_k``, those are i.i.d. draws of the loss restricted to ``f >= t_k``, so
the Clopper–Pearson bound (0/1 loss) or Waudby-Smith–Ramdas bound (bounded loss) ``U_k`` at
level ``delta'`` has ``P(R(t_k) > U_k) <= delta'``. Bonferroni (``delta' = delta / K``) and
keeping any ``k`` with ``U_k <= alpha``: by the union bound, P(some kept ``t_k`` has ``R(t_k)
> alpha``) <= delta. Fixed sequence (``delta' = delta``, stop at the first failure): the
first ``k`` in the order with ``R(t_k) > alpha`` is rejected wrongly with probability <=
delta, and no later one is reached without it (Learn then Test, Angelopoulos et al. 2021).
Either way P(risk of the chosen threshold > alpha) <= delta, over the draw of the calibration
images, whatever the scorer. ``test: ltt_sequence`` (the default of the product model) tests
every distinct score strict to loose; with ``holdout = 0`` it bounds on the fit images
themselves, an approximation that :func:`cross_validate` measures.

Box-level certification: on the bound images, pre-labels with ``p_correct >= tau`` have a
per-image precision ``>= 1 - box_alpha`` (mean over images holding such a box of the share of
them that is wrong, <= box_alpha) certified by a WSR bound, images the units
(:func:`~autolabel.routing.fit.certify_boxes`). Certified boxes carry
``Detections.data["certified"]`` in the review queue and the auto-accepted labels, and the
cost model credits the ``verify_s`` they save.

Queue: ``auto_accept`` when the accept score (P(no edit), or 1 - E[box error rate]) >= the
threshold; else ``scratch`` when expected seconds to fix > ``scratch_margin`` x expected
seconds from scratch; else ``review``, ordered by ``(scratch_s - edit_s) / edit_s``.
"""

from autolabel.routing.bounds import (
    BOUNDS, START_RISK, LTTResult, clopper_pearson_upper, grid_threshold, hoeffding_bentkus_upper, ltt_threshold,
    min_certifiable, wsr_upper,
)
from autolabel.routing.calibrators import (
    ClassCalibrator, IsotonicCalibrator, PlattCalibrator, detection_ece, reliability_table,
)
from autolabel.routing.evaluation import RoutingEvaluation, cross_validate, evaluate, realized_seconds
from autolabel.routing.features import (
    IMAGE_FEATURES, KEYPOINT_FEATURES, box_table, class_entropy, class_margin, detector_agreement, image_features,
    keypoint_features, match_targets,
    tta_agreement,
)
from autolabel.routing.fit import fit_policy
from autolabel.routing.plots import plot_risk_coverage
from autolabel.routing.policy import FittedPolicy, image_loss, sequence_start
from autolabel.routing.routes import QUEUES, Routing, route, task_data

__all__ = [
    "QUEUES", "BOUNDS", "START_RISK", "LTTResult", "clopper_pearson_upper", "hoeffding_bentkus_upper", "wsr_upper",
    "min_certifiable", "ltt_threshold", "grid_threshold", "ClassCalibrator", "IsotonicCalibrator",
    "PlattCalibrator", "detection_ece", "reliability_table", "IMAGE_FEATURES", "KEYPOINT_FEATURES", "keypoint_features", "box_table", "class_entropy",
    "class_margin", "detector_agreement", "image_features", "match_targets", "tta_agreement", "fit_policy",
    "FittedPolicy", "image_loss", "sequence_start", "Routing", "route", "task_data", "realized_seconds",
    "evaluate", "RoutingEvaluation", "cross_validate", "plot_risk_coverage",
]
