"""Fine-tune a detector on a team's own labels (:func:`train`), and what surrounds it.

:mod:`~autolabel.training.data` reads, checks, splits and lays out the labels;
:mod:`~autolabel.training.sizing` chooses the input size; :mod:`~autolabel.training.budget`
keeps Ultralytics' trainer within a wall-clock budget; :mod:`~autolabel.training.train`
runs it and exports ``model.pt``, ``model.onnx`` and ``model_card.json``
(:mod:`~autolabel.training.card`).

Security: base checkpoints (``.pt``) are Python pickles that run code when loaded: train
only from bases you trust.
"""

from autolabel.training.card import CARD_NAME, TrainResult, evaluate, read_card
from autolabel.training.data import MIN_IMAGES_PER_CLASS, check_labels, class_counts, read_labels, split_validation
from autolabel.training.sizing import SizeChoice, choose_imgsz
from autolabel.training.train import DEFAULT_BASE, TrainOptions, train

__all__ = [
    "train", "TrainOptions", "TrainResult", "DEFAULT_BASE", "CARD_NAME", "evaluate", "read_card",
    "read_labels", "check_labels", "class_counts", "split_validation", "MIN_IMAGES_PER_CLASS",
    "SizeChoice", "choose_imgsz",
]
