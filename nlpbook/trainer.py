"""The only place that builds a Lightning Trainer: devices, TPU, precision, checkpoints, resume.

Interruptions are the normal case on Colab: how checkpoints lose nothing beyond the last optimizer
step is ``checkpoints.py``; what a run folder may hold is ``rundir.py``.
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.accelerators import CPUAccelerator
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.precision import MixedPrecision, Precision
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from pytorch_lightning.utilities import GradClipAlgorithmType

from nlpbook.arguments import TrainArguments
from nlpbook.checkpoints import LAST_CHECKPOINT, AtomicCheckpointIO, LastCheckpoint
from nlpbook.cluster import external_launch
from nlpbook.errors import spell
from nlpbook.progress import ProgressBar

__all__ = ["build_trainer", "devices_and_accelerator", "scales_gradients"]

logger = logging.getLogger(__name__)


def devices_and_accelerator(args: TrainArguments) -> tuple[str, Any]:
    """Map the book's ``tpu_cores`` and the modern ``accelerator``/``devices`` onto Lightning 2.x."""
    if args.tpu_cores:
        return "tpu", args.tpu_cores
    devices: Any = args.devices.replace(" ", "")
    if devices.lstrip("-").isdigit():
        devices = int(devices)
    launch = external_launch()
    if launch is not None and devices in ("auto", -1):
        devices = launch.per_node  # torchrun/srun started one process per device on this machine
    if args.accelerator == "cpu" and devices == "auto":
        devices = 1
    return args.accelerator, devices


def _quiet_misleading_warnings() -> None:
    # LengthGroupedSampler resumes mid-epoch exactly (TaskModule records the position), and
    # commands.train refuses a folder that holds another run, so these two would only mislead.
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")


def build_trainer(args: TrainArguments, has_validation: bool = True) -> pl.Trainer:
    _quiet_misleading_warnings()
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
            save_last=False,  # LastCheckpoint owns last.ckpt
            # Weights only: resume reads last.ckpt alone, so AdamW's two moments (twice the weights,
            # 870 MB for kcbert-base) would be dead weight in every best-k file.
            save_weights_only=True,
        ),
        LastCheckpoint(args.model_dir / LAST_CHECKPOINT, args.save_every_n_steps, args.save_every_n_minutes),
        ProgressBar(),  # on stderr, "Epoch 1/3"
        LogEachEpoch(),
    ]
    if args.early_stopping_patience and has_validation:
        callbacks.append(EarlyStopping(monitor=metric, mode=mode, patience=args.early_stopping_patience))
    limits: dict[str, Any] = {}
    if args.test_mode:
        limits = {"limit_train_batches": 20, "limit_val_batches": 5, "max_epochs": 1}
    if not has_validation:
        limits["limit_val_batches"] = 0
    if args.val_check_interval is not None:
        interval = args.val_check_interval
        limits["val_check_interval"] = int(interval) if interval >= 1 else interval
    # XLA brings its own checkpoint IO; everywhere else checkpoints are written atomically.
    plugins = [] if accelerator == "tpu" else [AtomicCheckpointIO()]
    launch = external_launch()  # torchrun or srun: Lightning checks devices x num_nodes = world size
    options: dict[str, Any] = dict(
        accelerator=accelerator,
        devices=devices,
        num_nodes=launch.num_nodes if launch else 1,
        precision=args.resolved_precision,
        max_epochs=limits.pop("max_epochs", args.epochs),
        max_steps=args.max_steps,
        accumulate_grad_batches=args.gradient_accumulation_steps,
        gradient_clip_val=args.max_grad_norm,
        callbacks=callbacks,
        plugins=plugins,
        logger=CSVLogger(args.model_dir, name="logs"),  # logs/version_N per (resumed) run
        default_root_dir=args.model_dir,
        log_every_n_steps=args.log_every_n_steps,
        num_sanity_val_steps=0,
        deterministic=False,
        enable_model_summary=False,
        # LengthGroupedSampler shards itself (TaskModule.setup); Lightning's distributed sampler
        # would re-shuffle it. Validation runs whole on every device, so metrics are exact.
        use_distributed_sampler=False,
        **limits,
    )
    trainer = _fp16_on_cpu(_make_trainer(**options), args, options)
    return _clip_unscaled_mixed_precision(trainer)


def _make_trainer(**options: Any) -> pl.Trainer:
    """A Trainer whose extra device processes run only ``fit``, never the caller's script.

    For several GPUs Lightning picks ``ddp``, which starts each extra process by running the
    user's script again from the top: a second ``nlpbook.train`` would find the run folder locked,
    and a notebook cannot be re-run at all. ``ddp_spawn`` starts the processes inside ``fit`` and
    hands the trained weights back, so ``train`` works the same on one device or eight. (In a
    notebook Lightning already picks ``ddp_fork``, which behaves the same way; TPUs spawn too.)
    Processes that torchrun or Slurm started keep Lightning's ``ddp``: each of them already runs
    ``nlpbook.train`` (``cluster.py``).
    """
    trainer = pl.Trainer(**options)
    launcher = trainer.strategy.launcher
    environment = getattr(trainer.strategy, "cluster_environment", None)
    external = environment is not None and environment.creates_processes_externally  # torchrun, SLURM
    if isinstance(launcher, _SubprocessScriptLauncher) and not external:
        trainer = pl.Trainer(**options, strategy="ddp_spawn")
    return trainer


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU has bf16 instructions (x86's ``avx512_bf16`` or ``amx_bf16``, Arm's ``bf16``),
    from ``/proc/cpuinfo``; None where that file is missing (macOS, Windows)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _fp16_on_cpu(trainer: pl.Trainer, args: TrainArguments, options: dict[str, Any]) -> pl.Trainer:
    """fp16 asked for on a CPU: bf16-mixed where the CPU has bf16 instructions, else 32-true; said once.

    Lightning has no fp16 autocast on the CPU and quietly runs bf16-mixed instead (its own warning,
    a file path and all, is kept out by ``console.quiet_libraries``). Without bf16 instructions the
    CPU emulates bf16, and a step ran about 16 times slower than in float32 on the AVX2 build machine
    (README, Speed): a book notebook's ``fp16=True`` on a CPU runtime would crawl. Asking for fp16 is
    asking for speed, so such a CPU trains in 32-true.
    """
    if args.resolved_precision != "16-mixed" or not isinstance(trainer.accelerator, CPUAccelerator):
        return trainer
    asked = spell("fp16", True) if args.fp16 else spell("precision", "16-mixed")
    has_bf16 = cpu_has_bf16()
    if has_bf16 is False:
        logger.warning(
            "%s: fp16 mixed precision does not run on the CPU, and this CPU has no bf16 instructions "
            "(bf16 would run far slower than float32): training in 32-true",
            asked,
        )
        return _make_trainer(**{**options, "precision": "32-true"})
    unknown = "" if has_bf16 else f" (without bf16 instructions, {spell('precision', '32-true')} is faster)"
    logger.warning(
        "%s: fp16 mixed precision does not run on the CPU: training in bf16-mixed%s", asked, unknown
    )
    return trainer


class LogEachEpoch(pl.Callback):
    """Training metrics are logged at least once an epoch, and once in a run ``max_steps`` ends sooner.

    An epoch shorter than ``log_every_n_steps`` (a small dataset, a quick test run) would log no
    training row at all, and Lightning would warn about it; nlpbook logs at each epoch's last
    optimizer step instead (or at ``max_steps``). Longer runs keep the interval asked for.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            return
        steps = max(1, math.ceil(batches / trainer.accumulate_grad_batches))
        if trainer.max_steps > 0:
            steps = min(steps, trainer.max_steps)
        if trainer.log_every_n_steps > steps:
            logger.debug("training metrics logged every %d step(s), not %d", steps, trainer.log_every_n_steps)
            trainer.log_every_n_steps = steps


def _clip_unscaled_mixed_precision(trainer: pl.Trainer) -> pl.Trainer:
    """Let ``trainer`` clip a fused optimizer's gradients under bf16 autocast (``UnscaledMixedPrecision``).

    The class of the plugin Lightning chose is swapped, so the device it picked stays.
    """
    if type(trainer.precision_plugin) is MixedPrecision and not scales_gradients(trainer.precision_plugin):
        trainer.precision_plugin.__class__ = UnscaledMixedPrecision
    return trainer


def scales_gradients(plugin: Precision) -> bool:
    """Whether ``plugin`` multiplies the loss by a GradScaler's factor (16-mixed on a GPU)."""
    return getattr(plugin, "scaler", None) is not None


class UnscaledMixedPrecision(MixedPrecision):
    """Lightning's bf16 autocast, letting a fused optimizer's gradients be clipped.

    Lightning refuses to clip the gradients of an optimizer that unscales them itself, which fused
    AdamW declares it does: under fp16's GradScaler the gradients would be clipped while still
    scaled. bf16 autocast has no scaler, so the gradients are the true float32 ones and clipping
    them before the fused step is exact. Without this, bf16-mixed with the default
    ``max_grad_norm`` had to fall back to the multi-tensor AdamW: a 4 x 256 CPU step took 116 ms
    instead of 80 ms, and the whole run was slower than Hugging Face ``Trainer``'s bf16 one.
    """

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        clip_val: float = 0.0,
        gradient_clip_algorithm: GradClipAlgorithmType = GradClipAlgorithmType.NORM,
    ) -> None:
        if scales_gradients(self):
            super().clip_gradients(optimizer, clip_val, gradient_clip_algorithm)
        else:
            Precision.clip_gradients(self, optimizer, clip_val, gradient_clip_algorithm)
