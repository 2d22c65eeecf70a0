"""The one LightningModule: every task trains through it.

It owns the optimizer and the LR schedule (returned under ``lr_scheduler``, the key Lightning
reads: ratsnlp returned ``scheduler``, so its LR never changed) and logs the loss. It never looks
inside the outputs: the task names its per-step training metrics, and validation hands the raw
outputs of every feature to the task's metric function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from transformers import get_linear_schedule_with_warmup

from nlpbook.arguments import TrainArguments
from nlpbook.data import LengthGroupedSampler
from nlpbook.errors import NonFiniteLossError, spell
from nlpbook.inference import output_rows
from nlpbook.tasks import Features, Task

__all__ = ["TaskModule", "NonFiniteLossError", "make_optimizer"]


class TaskModule(pl.LightningModule):
    def __init__(
        self,
        model: torch.nn.Module,
        args: TrainArguments,
        task: Task,
        label_names: Sequence[str],
        val_examples: Sequence[Any] = (),
        val_features: Sequence[Features] = (),
    ) -> None:
        super().__init__()
        # from_pretrained returns the model in eval mode, and Lightning 2.x keeps the mode it finds:
        # without this, dropout would be off for the whole of training.
        self.model = model.train()
        self.args = args
        self.task = task
        self.label_names = list(label_names)
        self.val_examples = list(val_examples)
        self.val_features = list(val_features)
        self.train_sampler: LengthGroupedSampler | None = None
        self._val_outputs: dict[int, np.ndarray] = {}

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        inputs = {k: v for k, v in batch.items() if k != "feature_index"}
        return self.model(**inputs)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self(batch)
        loss = output.loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss.item()} at global step {self.global_step}: lower "
                f"{spell('learning_rate')}, use {spell('precision', 'bf16-mixed')} instead of fp16, or "
                f"check the data; the last checkpoint in {spell('downstream_model_dir')} is left as it was"
            )
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        for name, value in self.task.train_metrics(self.task.outputs(output).detach(), batch).items():
            self.log(name, value, prog_bar=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = self(batch)
        self.log(
            "val_loss",
            output.loss,
            prog_bar=True,
            on_epoch=True,
            sync_dist=True,
            batch_size=batch["input_ids"].shape[0],
        )
        rows = output_rows(self.task, self.task.outputs(output), batch["attention_mask"])
        self._val_outputs.update(zip(batch["feature_index"].tolist(), rows, strict=True))

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs or self.trainer.sanity_checking:
            self._val_outputs.clear()
            return
        indices = sorted(self._val_outputs)
        outputs = [self._val_outputs[i] for i in indices]
        features = [self.val_features[i] for i in indices]
        self._val_outputs.clear()
        metrics = self.task.metrics(self.val_examples, features, outputs, self.label_names)
        scalars = {f"val_{name}": float(metrics[name]) for name in self.task.metric_names}
        self.log_dict(scalars, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        # fp16's gradient scaler cannot clip gradients of a fused optimizer (Lightning refuses).
        fused = self.args.resolved_precision != "16-mixed"
        optimizer = make_optimizer(self.model, self.args.learning_rate, self.args.weight_decay, fused)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = math.ceil(total * self.args.warmup_ratio)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def setup(self, stage: str) -> None:
        # One process per device (GPUs, TPU cores): each trains on its own share of the batches.
        if self.train_sampler is not None and self.trainer.world_size > 1:
            self.train_sampler.shard(self.trainer.global_rank, self.trainer.world_size)

    # --- exact resume: a run restarted from any checkpoint trains like one never stopped --------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout masks depend only on (seed, epoch, batch), not on what else drew random numbers
        # before (DataLoader iterators, validation), so they are the same after a resume.
        if self.args.seed is not None:
            seed = np.random.SeedSequence([self.args.seed, self.current_epoch, batch_idx])
            torch.manual_seed(int(seed.generate_state(1)[0]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record where the next training batch comes from: (epoch, batches of it already done)."""
        loop = self.trainer.fit_loop
        epoch = loop.epoch_progress.current
        done = loop.epoch_loop.batch_progress.current.processed
        # Saved after the epoch's last batch (or in its end hooks): Lightning resumes at the next
        # epoch, whose sampler order starts from the beginning.
        if epoch.processed > epoch.completed or done >= self.trainer.num_training_batches:
            checkpoint["nlpbook_position"] = {"epoch": epoch.completed + 1, "batches": 0}
        else:
            checkpoint["nlpbook_position"] = {"epoch": epoch.completed, "batches": done}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        position = checkpoint.get("nlpbook_position")
        if position and self.train_sampler is not None:
            # set_epoch now, not only when Lightning does: with cpu_workers > 0 the DataLoader
            # draws its first indices as soon as Lightning creates the iterator, before that call.
            self.train_sampler.set_epoch(position["epoch"])
            self.train_sampler.skip_batches(position["epoch"], position["batches"])


def make_optimizer(
    model: torch.nn.Module, learning_rate: float, weight_decay: float, fused: bool = True
) -> torch.optim.Optimizer:
    """AdamW with no weight decay on biases and LayerNorm weights (as BERT was trained)."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups: list[dict[str, Any]] = [
        {"params": [], "weight_decay": weight_decay},
        {"params": [], "weight_decay": 0.0},
    ]
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups[any(part in name for part in no_decay)]["params"].append(parameter)
    # The fused kernel takes about a third of the time of the default one on CPU; the optimizer
    # step is a fixed cost per batch, so with short, unpadded NSMC batches it matters.
    device = next(model.parameters()).device
    fused = fused and device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=learning_rate, fused=fused)
