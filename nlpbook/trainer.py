"""The only place that builds a Lightning Trainer: devices, TPU, precision, checkpoints, resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from nlpbook.arguments import TrainArguments

__all__ = ["build_trainer", "last_checkpoint", "LAST_CHECKPOINT"]

logger = logging.getLogger(__name__)
LAST_CHECKPOINT = "last.ckpt"


def devices_and_accelerator(args: TrainArguments) -> tuple[str, Any]:
    """Map the book's ``tpu_cores`` and the modern ``accelerator``/``devices`` onto Lightning 2.x."""
    if args.tpu_cores:
        return "tpu", args.tpu_cores
    devices: Any = args.devices.replace(" ", "")
    if devices.lstrip("-").isdigit():
        devices = int(devices)
    if args.accelerator == "cpu" and devices == "auto":
        devices = 1
    return args.accelerator, devices


def last_checkpoint(model_dir: Path) -> Path | None:
    path = model_dir / LAST_CHECKPOINT
    return path if path.is_file() else None


def build_trainer(args: TrainArguments, has_validation: bool = True) -> pl.Trainer:
    accelerator, devices = devices_and_accelerator(args)
    mode, metric = args.monitor_mode, args.monitor_metric
    callbacks: list[pl.Callback] = [
        ModelCheckpoint(
            dirpath=args.model_dir,
            filename="epoch={epoch}-step={step}-" + metric + "={" + metric + ":.4f}",
            auto_insert_metric_name=False,
            monitor=metric if has_validation else None,
            mode=mode,
            save_top_k=args.save_top_k if has_validation else 0,
            save_last=True,
        )
    ]
    if args.save_every_n_steps:
        # A second checkpointer that only refreshes last.ckpt every N steps, so a disconnect loses
        # at most N steps of work and not a whole epoch.
        callbacks.append(
            ModelCheckpoint(
                dirpath=args.model_dir,
                every_n_train_steps=args.save_every_n_steps,
                save_top_k=0,
                save_last=True,
            )
        )
    if args.early_stopping_patience and has_validation:
        callbacks.append(EarlyStopping(monitor=metric, mode=mode, patience=args.early_stopping_patience))
    limits: dict[str, Any] = {}
    if args.test_mode:
        limits = {"limit_train_batches": 20, "limit_val_batches": 5, "max_epochs": 1}
    if args.val_check_interval is not None:
        interval = args.val_check_interval
        limits["val_check_interval"] = int(interval) if interval >= 1 else interval
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        precision=args.resolved_precision,
        max_epochs=limits.pop("max_epochs", args.epochs),
        max_steps=args.max_steps,
        accumulate_grad_batches=args.gradient_accumulation_steps,
        gradient_clip_val=args.max_grad_norm,
        callbacks=callbacks,
        logger=CSVLogger(args.model_dir, name="logs", version=""),
        default_root_dir=args.model_dir,
        log_every_n_steps=args.log_every_n_steps,
        num_sanity_val_steps=0,
        deterministic=False,
        enable_model_summary=False,
        limit_val_batches=limits.pop("limit_val_batches", 1.0 if has_validation else 0),
        **limits,
    )
