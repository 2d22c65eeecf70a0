"""Checkpoints that lose nothing beyond the last optimizer step, whatever stops the run.

- ``last.ckpt`` (what ``resume`` reads) is refreshed at every epoch end, every
  ``save_every_n_steps`` optimizer steps and every ``save_every_n_minutes``, and only on an
  optimizer-step boundary: with gradient accumulation a save in the middle of a window would lose
  the half-accumulated gradient and the resumed run would diverge.
- SIGTERM (``kill``, ``docker stop``, Slurm and Kubernetes preemption) and Ctrl-C (a notebook's
  interrupt) stop the run at the next optimizer-step boundary with ``last.ckpt`` saved there, and
  raise ``TrainingInterrupted`` (one line: how to resume). A second Ctrl-C stops at once.
- Every checkpoint is written to a temporary file beside the target, fsynced and renamed
  (``AtomicCheckpointIO``): a kill or a full disk mid-write leaves the previous file intact; a
  checkpoint whose weights are NaN/inf is never written.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import Checkpoint

from nlpbook.errors import CheckpointWriteError, NonFiniteLossError, TrainingInterrupted, spell

__all__ = [
    "AtomicCheckpointIO",
    "LastCheckpoint",
    "LAST_CHECKPOINT",
    "TEMP_MARK",
    "last_checkpoint",
]

logger = logging.getLogger(__name__)
LAST_CHECKPOINT = "last.ckpt"
TEMP_MARK = ".tmp-"
STOP_SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C (SIGINT)"}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to ``.<name>.tmp-<pid>`` beside the target, fsync, then ``os.replace``.

    Lightning's own save stages the file in the system temp folder and moves it, which is a copy
    (not atomic) when the model folder is on another disk such as a mounted Google Drive.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        path = Path(path)
        _check_finite(checkpoint.get("state_dict", {}), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
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


def last_checkpoint(model_dir: Path) -> Path | None:
    path = model_dir / LAST_CHECKPOINT
    return path if path.is_file() else None


class LastCheckpoint(Checkpoint):
    """Owns ``last.ckpt``: saves at epoch ends, every N optimizer steps, every M minutes and when
    asked to stop, always on an optimizer-step boundary.

    One callback owns the file: two ``ModelCheckpoint(save_last=True)`` would each write their
    own, and Lightning names the second ``last-v1.ckpt``, so resume would read a stale one.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None, every_n_minutes: float | None = None):
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_minutes * 60 if every_n_minutes else None
        self._saved_step = -1
        self._step_before_batch = -1
        self._clock = time.monotonic()
        self._stop: int | None = None  # the signal that asked the run to stop
        self._previous_handlers: dict[int, Any] = {}

    # --- stopping on a signal ------------------------------------------------------------------
    def _ask_to_stop(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self._stop == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        self._stop = signum
        logger.warning(
            "%s received: stopping at the next optimizer step with last.ckpt saved%s",
            STOP_SIGNALS[signum],
            " (Ctrl-C again stops at once, losing the steps since the last checkpoint)"
            if signum == signal.SIGINT
            else "",
        )

    def _install_handlers(self) -> None:
        """Our handlers replace Lightning's (which stop at once, mid-accumulation, saving nothing,
        and leave the process with exit status 0); the previous ones are put back at the end."""
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only; a run in a worker thread keeps the defaults
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._ask_to_stop)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    # --- Lightning hooks ---------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._saved_step = trainer.global_step  # a resumed run already has this step on disk
        self._clock = time.monotonic()
        self._stop = None
        self._install_handlers()

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        self._step_before_batch = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step == self._step_before_batch:
            return  # inside an accumulation window: the weights are not at a step boundary
        elapsed, stop = self._agreed(trainer)
        due = stop is not None or elapsed or (bool(self.every_n_steps) and step % self.every_n_steps == 0)
        if due and step != self._saved_step:
            self.save(trainer)
        if stop is not None:
            raise TrainingInterrupted(STOP_SIGNALS.get(stop, str(stop)), step, self.path, 128 + int(stop))

    def _agreed(self, trainer: pl.Trainer) -> tuple[bool, int | None]:
        """(save now for the clock, the signal to stop on) as every process sees it.

        One collective per batch, so every process saves and stops together. A signal that reached
        any process stops them all: a preempted machine (SIGTERM to its processes only) must not
        leave the others waiting for it in the next gradient all-reduce. Summed, not max-reduced:
        Lightning's XLA strategy reduces only by sum or mean.
        """
        elapsed = self.every_n_seconds is not None and time.monotonic() - self._clock >= self.every_n_seconds
        flags = [elapsed] + [self._stop == signum for signum in STOP_SIGNALS]
        if trainer.world_size > 1:
            local = torch.tensor(flags, dtype=torch.int32, device=trainer.strategy.root_device)
            flags = [bool(count) for count in trainer.strategy.reduce(local, reduce_op="sum").tolist()]
        stop = next((signum for signum, asked in zip(STOP_SIGNALS, flags[1:], strict=True) if asked), None)
        return flags[0], stop

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)  # after validation, so the best-k bookkeeping is current

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()
        if trainer.global_step != self._saved_step:  # e.g. max_steps reached mid-epoch
            self.save(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, error: BaseException) -> None:
        self._restore_handlers()

    def save(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: resume needs the optimizer
        self._saved_step = trainer.global_step
        self._clock = time.monotonic()
        logger.debug("saved %s at step %d", self.path.name, trainer.global_step)
