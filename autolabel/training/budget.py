"""A wall-clock budget for Ultralytics' trainer, end to end.

Ultralytics' ``time=`` argument (hours) is measured from the start of the first epoch
(``trainer.train_time_start``, after the data set and model are built); the trainer checks
it after every optimizer step, then validates, saves ``last.pt``/``best.pt`` and re-estimates
the epochs that fit (``ultralytics/engine/trainer.py``, 8.4). It does not count the set-up
before the first epoch, the final validation of ``best.pt``, nor our ONNX export and
evaluation after it. :class:`Budget` therefore sets ``trainer.args.time`` (read live by the
trainer) to what is left of the whole budget minus a reserve for those steps, measured as it
goes (validation seconds), and caps the epochs when both a budget and ``epochs`` are given.
Ultralytics checks its time only after an optimizer step, which with gradient accumulation
(``nbs`` / ``batch``) may come only every few batches: :class:`Budget` also stops the epoch
loop after any batch past the budget (the trainer then validates and saves as usual).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["Budget"]

#: reserve for the ONNX export, loading both models and the copies (a shared 2-core CPU took up to 30 s)
EXPORT_SECONDS = 30.0
_MIN_HOURS = 1e-5  # Ultralytics turns time mode off at 0: the smallest budget left is kept > 0


class Budget:
    """Callbacks that end training in time.

    Args:
        deadline: ``time.monotonic()`` by which training, export and evaluation must be done,
            or ``None`` (no budget: only the epoch count stops training).
        max_epochs: stop after this many epochs in time mode too (``None``: the budget decides).
    """

    def __init__(self, deadline: float | None, max_epochs: int | None):
        self.deadline, self.max_epochs = deadline, max_epochs
        self.val_seconds = 0.0
        self._val_start = 0.0
        self.epochs_run = 0

    def attach(self, model: Any) -> None:
        """Register the callbacks on an ``ultralytics.YOLO`` model (its trainer and validator get them)."""
        model.add_callback("on_train_start", self._start)
        model.add_callback("on_val_start", self._val_begin)
        model.add_callback("on_val_end", self._val_end)
        model.add_callback("on_train_batch_end", self._batch_end)
        model.add_callback("on_train_epoch_end", self._count)
        model.add_callback("on_fit_epoch_end", self._epoch_end)

    def reserve(self) -> float:
        """Seconds kept back for the validations still to come (the stopped epoch's, Ultralytics' final
        one of ``best.pt``, the card's), the export and the copies."""
        return EXPORT_SECONDS + 3.0 * self.val_seconds

    def _hours_left(self, trainer: Any) -> float:
        assert self.deadline is not None
        # trainer.train_time_start is time.time(); the deadline is monotonic: convert what is left
        left = self.deadline - time.monotonic() - self.reserve()
        elapsed = time.time() - trainer.train_time_start
        return max(_MIN_HOURS, (left + elapsed) / 3600)

    def _start(self, trainer: Any) -> None:
        if self.deadline is not None:
            trainer.args.time = self._hours_left(trainer)

    def _val_begin(self, validator: Any) -> None:
        self._val_start = time.monotonic()

    def _val_end(self, validator: Any) -> None:
        self.val_seconds = max(self.val_seconds, time.monotonic() - self._val_start)

    def _batch_end(self, trainer: Any) -> None:
        # Ultralytics checks its time only after an optimizer step, which with gradient accumulation
        # (nbs / batch) comes every few batches: the budget is checked after every batch here
        if self.deadline is not None and time.monotonic() > self.deadline - self.reserve():
            trainer.stop = True

    def _count(self, trainer: Any) -> None:
        self.epochs_run += 1

    def _epoch_end(self, trainer: Any) -> None:
        if self.deadline is None or trainer.epoch + 1 - trainer.start_epoch > self.epochs_run:
            return  # no budget, or the final validation of best.pt (it reports as one epoch more)
        trainer.args.time = self._hours_left(trainer)
        if self.max_epochs is not None and trainer.epochs > self.max_epochs:
            # as the trainer's own time mode does after its re-estimate: the schedule ends at the cap
            trainer.epochs = trainer.args.epochs = self.max_epochs
            trainer._setup_scheduler()
            trainer.scheduler.last_epoch = trainer.epoch
        if self.max_epochs is not None and trainer.epoch + 1 >= self.max_epochs:
            trainer.stop = True
