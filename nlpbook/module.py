"""The one LightningModule: every task trains through it.

It owns the optimizer and the LR schedule (returned under ``lr_scheduler``, the key Lightning
reads: ratsnlp returned ``scheduler``, so its LR never changed) and logs the loss. It never looks
inside the outputs: the task names its per-step training metrics, and validation hands the raw
outputs of every feature to the task's metric function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from nlpbook.arguments import TrainArguments
from nlpbook.data import FILLER_INDEX, LengthGroupedSampler
from nlpbook.errors import NonFiniteLossError, spell
from nlpbook.inference import output_rows
from nlpbook.logs import START_STEP_FILE
from nlpbook.schedule import LinearSchedule
from nlpbook.tasks import Features, Task
from nlpbook.trainer import scales_gradients
from nlpbook.xla import additive_attention_mask, on_xla, xla_sync

__all__ = ["TaskModule", "NonFiniteLossError", "make_optimizer", "use_fused_adamw"]

logger = logging.getLogger(__name__)


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
        self._unchecked_losses: list[tuple[int, torch.Tensor]] = []  # XLA: checked after the step

    def forward(self, batch: dict[str, torch.Tensor]) -> Any:
        inputs = {k: v for k, v in batch.items() if k != "feature_index"}
        if on_xla(self.device):  # no host sync inside the forward (nlpbook.xla)
            inputs["attention_mask"] = additive_attention_mask(inputs["attention_mask"], self.model.dtype)
        return self.model(**inputs)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        output = self(batch)
        loss = output.loss
        if on_xla(self.device):
            # Reading the loss here would run the forward as a graph of its own, before backward:
            # one more compilation per shape and a host sync per step. Checked in optimizer_step.
            self._unchecked_losses.append((self.global_step, loss.detach()))
        else:
            value = loss.item()
            finite = math.isfinite(value)
            # Every process stops together: one that stopped alone would leave the others waiting in
            # the gradient all-reduce (torchrun and Slurm do not end them; ddp_spawn would).
            if self.trainer.world_size > 1:
                finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
            if not finite:
                shown = value if not math.isfinite(value) else "NaN/inf on another device"
                raise _non_finite(shown, self.global_step)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        for name, value in self.task.train_metrics(self.task.outputs(output).detach(), batch).items():
            self.log(name, value, prog_bar=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        # On XLA the step's graph has run by now (Lightning cut it after optimizer.step): reading
        # its losses compiles nothing, and no callback has saved a checkpoint of this step yet.
        losses, self._unchecked_losses = self._unchecked_losses, []
        for step, loss in losses:
            value = loss.item()
            if not math.isfinite(value):
                raise _non_finite(value, step)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        output = self(batch)
        indices = batch["feature_index"].tolist()
        real = sum(index != FILLER_INDEX for index in indices)  # a TPU batch's filler rows don't count
        self.log("val_loss", output.loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=real)
        outputs = self.task.outputs(output)
        if on_xla(self.device):
            # Lightning cuts no graph between validation steps on one device: without this the
            # whole validation epoch is traced into one ever-growing graph. Cut before reading
            # the outputs, so the forward, the loss and its logging run as one graph per shape.
            xla_sync()
        rows = output_rows(self.task, outputs, batch["attention_mask"])
        self._val_outputs.update(
            (index, row) for index, row in zip(indices, rows, strict=True) if index != FILLER_INDEX
        )

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs or self.trainer.sanity_checking:
            self._val_outputs.clear()
            return
        indices = sorted(self._val_outputs)
        outputs = [self._val_outputs[i] for i in indices]
        features = [self.val_features[i] for i in indices]
        self._val_outputs.clear()
        metrics = self.task.metrics(self.val_examples, features, outputs, self.label_names, self.args)
        scalars = {f"val_{name}": float(metrics[name]) for name in self.task.metric_names}
        self.log_dict(scalars, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        fused = use_fused_adamw(scales_gradients(self.trainer.precision_plugin), self.args.max_grad_norm)
        optimizer = make_optimizer(self.model, self.args.learning_rate, self.args.weight_decay, fused)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        schedule = LinearSchedule(math.ceil(total * self.args.warmup_ratio), total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_train_epoch_start(self) -> None:
        if on_xla(self.device):
            # The previous epoch's validation leaves Lightning's metric bookkeeping traced but not
            # run (only the values it reads are). Run it here as a small graph of its own: traced
            # into the epoch's first training step, it made that step a new graph in epoch 2 and
            # a different one again in epoch 3 (benchmarks/xla_shapes.py, Lightning 2.6.6,
            # torch_xla 2.9). With this cut, epoch 3's first step reuses epoch 2's graph.
            xla_sync()

    def on_train_start(self) -> None:
        """A resumed run whose length changed (more epochs, another max_steps) re-plans its
        schedule from here instead of jumping to the new curve (see ``nlpbook.schedule``)."""
        log_dir = self.trainer.log_dir  # a collective on several devices: every process asks
        if self.trainer.is_global_zero and log_dir:
            # logs.training_log drops the rows an interrupted run logged past this step: re-run here
            start = Path(log_dir) / START_STEP_FILE
            start.parent.mkdir(parents=True, exist_ok=True)
            start.write_text(f"{self.global_step}\n", encoding="utf-8")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            schedule = scheduler.lr_lambdas[0]
            if not isinstance(schedule, LinearSchedule) or schedule.total_steps == total:
                continue
            planned = schedule.total_steps
            done = schedule.extend(self.global_step, total, self.args.warmup_ratio)
            logger.info(
                "resumed at step %d; the run now ends at step %d, not %d: learning rate %s",
                self.global_step,
                total,
                planned,
                done,
            )
            factor = schedule(self.global_step)
            for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
                group["lr"] = base * factor

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


def _non_finite(value: float | str, step: int) -> NonFiniteLossError:
    return NonFiniteLossError(
        f"loss became {value} at global step {step}: lower "
        f"{spell('learning_rate')}, use {spell('precision', 'bf16-mixed')} instead of fp16, or "
        f"check the data; the last checkpoint in {spell('downstream_model_dir')} is left as it was"
    )


def use_fused_adamw(scaled_gradients: bool, max_grad_norm: float | None) -> bool:
    """The fused AdamW kernel unless a GradScaler's gradients must be clipped.

    The fused kernel unscales a GradScaler's gradients inside its step (16-mixed on a GPU), after
    the point where Lightning clips them, so Lightning refuses to clip there. The multi-tensor
    ("foreach") kernel clips fine. Everywhere else (full precision, bf16-true, and bf16-mixed,
    which has no scaler: ``trainer.UnscaledMixedPrecision``) fused runs, as it is fastest.
    """
    return not (scaled_gradients and max_grad_norm is not None)


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
