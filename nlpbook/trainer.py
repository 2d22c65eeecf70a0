"""The only place that builds a Lightning Trainer: devices, TPU, precision, checkpoints, resume.

Interruptions are the normal case on Colab, so checkpointing is built to lose as little as
possible and never to break what is already on disk:

- ``last.ckpt`` (what ``resume=True`` reads) is refreshed at every epoch end, every
  ``save_every_n_steps`` optimizer steps and every ``save_every_n_minutes`` of training;
- every checkpoint is written to a temporary file in the same folder and renamed into place
  (``AtomicCheckpointIO``), so a kill or a full disk mid-write leaves the previous file intact;
- a checkpoint whose weights are NaN/inf is never written;
- ``run_lock`` keeps two runs from writing into the same ``downstream_model_dir``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from nlpbook.arguments import ArgumentError, TrainArguments
from nlpbook.errors import CheckpointWriteError, NonFiniteLossError, spell
from nlpbook.progress import ProgressBar

__all__ = [
    "build_trainer",
    "devices_and_accelerator",
    "last_checkpoint",
    "LAST_CHECKPOINT",
    "LOCK_FILE",
    "AtomicCheckpointIO",
    "CheckpointWriteError",
    "LastCheckpoint",
    "ModelDirBusyError",
    "run_lock",
]

logger = logging.getLogger(__name__)
LAST_CHECKPOINT = "last.ckpt"
LOCK_FILE = ".nlpbook.lock"
_TEMP_MARK = ".tmp-"


class ModelDirBusyError(ArgumentError):
    """Another live run holds the lock on this ``downstream_model_dir``."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to ``.<name>.tmp-<pid>`` beside the target, fsync, then ``os.replace``.

    Lightning's own save stages the file in the system temp folder and moves it, which is a copy
    (not atomic) when the model folder is on another disk such as a mounted Google Drive.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        _check_finite(checkpoint.get("state_dict", {}), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}")
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except (OSError, RuntimeError) as error:  # torch's zip writer reports a full disk as RuntimeError
            temporary.unlink(missing_ok=True)
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointWriteError(
                f"could not write checkpoint {path} ({getattr(error, 'strerror', None) or error}; "
                f"{free:.0f} MiB free there); {path.name} was not replaced, so the previous one is "
                f"intact: free disk space and run again with {spell('resume', True)}"
            ) from error
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _check_finite(state_dict: dict[str, Any], path: Path) -> None:
    for name, tensor in state_dict.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteLossError(
                f"weight {name} is NaN/inf; {path.name} was not written, the previous checkpoint is kept"
            )


class LastCheckpoint(Checkpoint):
    """Keeps ``last.ckpt`` fresh: each epoch end, every N optimizer steps and every M minutes.

    One callback owns the file: two ``ModelCheckpoint(save_last=True)`` would each write their
    own, and Lightning names the second ``last-v1.ckpt``, so resume would read a stale one.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None, every_n_minutes: float | None = None):
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_minutes * 60 if every_n_minutes else None
        self._saved_step = -1
        self._clock = time.monotonic()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved_step = trainer.global_step  # a resumed run already has this step on disk
        self._clock = time.monotonic()

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step == self._saved_step:  # no optimizer step since the last save (accumulation)
            return
        due = bool(self.every_n_steps) and step % self.every_n_steps == 0
        if self.every_n_seconds is not None:
            elapsed = time.monotonic() - self._clock >= self.every_n_seconds
            due = due or bool(trainer.strategy.broadcast(elapsed))
        if due:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)  # after validation, so the best-k bookkeeping is current

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_step:  # e.g. max_steps reached mid-epoch
            self.save(trainer)

    def save(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: resume needs the optimizer
        self._saved_step = trainer.global_step
        self._clock = time.monotonic()
        logger.debug("saved %s at step %d", self.path.name, trainer.global_step)


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


_HELD: set[Path] = set()  # lock files this process holds (POSIX locks do not see the own process)


@contextlib.contextmanager
def run_lock(model_dir: Path) -> Iterator[None]:
    """Hold ``<model_dir>/.nlpbook.lock`` for the whole run; refuse if another live run holds it.

    A POSIX record lock (``lockf``) is released by the kernel when its process dies, even by
    ``kill -9``, so a crashed run never leaves a stale lock. Unlike ``flock`` it is not inherited
    by DataLoader worker processes, which outlive a killed parent by seconds and would keep the
    folder locked. The file keeps the holder's pid and host for the message.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    path = (model_dir / LOCK_FILE).resolve()
    if path in _HELD:  # checked before opening: closing any descriptor of the file drops the lock
        raise ModelDirBusyError(f"{model_dir} is in use by another nlpbook run in this process")
    with open(path, "a+", encoding="utf-8") as file:
        if not _lock(file, path):
            file.seek(0)
            holder = file.read().strip() or "unknown"
            raise ModelDirBusyError(
                f"{model_dir} is in use by another nlpbook run ({holder}); wait for it to finish, "
                "or choose another downstream_model_dir"
            )
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        file.flush()
        _HELD.add(path)
        _remove_stale_temporaries(model_dir)
        try:
            yield
        finally:
            _HELD.discard(path)
            file.truncate(0)  # closing the file releases the lock


def _lock(file: Any, path: Path) -> bool:
    """True when locked (or locking is unsupported here), False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: a second run is not detected there
        return True
    try:
        fcntl.lockf(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        logger.warning("cannot lock %s (%s): make sure no other run uses this folder", path, error)
    return True


def _remove_stale_temporaries(model_dir: Path) -> None:
    """Half-written checkpoints of a run that was killed while saving (we hold the lock now)."""
    for leftover in model_dir.glob(f".*.ckpt{_TEMP_MARK}*"):
        logger.info("removing %s, left by an interrupted checkpoint write", leftover.name)
        leftover.unlink(missing_ok=True)


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
        ),
        LastCheckpoint(args.model_dir / LAST_CHECKPOINT, args.save_every_n_steps, args.save_every_n_minutes),
        ProgressBar(),  # on stderr, "Epoch 1/3"
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
    return _make_trainer(
        accelerator=accelerator,
        devices=devices,
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


def _make_trainer(**options: Any) -> pl.Trainer:
    """A Trainer whose extra device processes run only ``fit``, never the caller's script.

    For several GPUs Lightning picks ``ddp``, which starts each extra process by running the
    user's script again from the top: a second ``nlpbook.train`` would find the run folder locked,
    and a notebook cannot be re-run at all. ``ddp_spawn`` starts the processes inside ``fit`` and
    hands the trained weights back, so ``train`` works the same on one device or eight. (In a
    notebook Lightning already picks ``ddp_fork``, which behaves the same way; TPUs spawn too.)
    """
    trainer = pl.Trainer(**options)
    launcher = trainer.strategy.launcher
    environment = getattr(trainer.strategy, "cluster_environment", None)
    external = environment is not None and environment.creates_processes_externally  # torchrun, SLURM
    if isinstance(launcher, _SubprocessScriptLauncher) and not external:
        trainer = pl.Trainer(**options, strategy="ddp_spawn")
    return trainer
