"""The training progress bar: on stderr, epochs counted from 1, no logger version number.

Lightning's default bar (Rich when ``rich`` is installed) writes to stdout, where it is invisible
when output is redirected and mixes with the export path the CLI prints, and a one-epoch run reads
``Epoch 0/0``. This is Lightning's tqdm bar (plain tqdm without ipywidgets, so a notebook never
prints "IProgress not found") writing to stderr and reading ``Epoch 1/1``.
"""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm, convert_inf

__all__ = ["ProgressBar"]


class ProgressBar(TQDMProgressBar):
    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(
            desc=self.train_description,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stderr,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def init_validation_tqdm(self) -> Tqdm:
        # On the training bar's line, cleared when done: a second line needs cursor-up escapes,
        # which a notebook prints as "[A".
        return Tqdm(
            desc=self.validation_description,
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            bar_format=self.BAR_FORMAT,
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        # Lightning's own hook, with the epoch counted from 1 and out of max_epochs.
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self.train_progress_bar.reset(total=convert_inf(self.total_train_batches))
        self.train_progress_bar.initial = 0
        total = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}{total}")

    def on_validation_batch_start(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # Lightning's own hook without "DataLoader 0" in the description: there is only one.
        if not self.has_dataloader_changed(dataloader_idx):
            return
        self.val_progress_bar.reset(total=convert_inf(self.total_val_batches_current_dataloader))
        self.val_progress_bar.initial = 0
        self.val_progress_bar.set_description(self.validation_description)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the CSV logger's version number: not a metric
        return metrics
