"""Errors a user can cause or meet, in one light module.

The command line imports these to turn each into one line and an exit status, so they must not
pull in Lightning or torch (``nlpbook --help`` stays instant).
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "ExportError",
    "NonFiniteLossError",
    "CheckpointWriteError",
    "TrainingInterrupted",
]


class ArgumentError(ValueError):
    """An argument value that cannot work; raised at construction, before any data is read."""


class ExportError(FileNotFoundError):
    """A model folder that predict/serve cannot use, with what is missing."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, ...); the previous file is untouched."""


class TrainingInterrupted(Exception):
    """A signal (SIGTERM, Ctrl-C) stopped training at an optimizer-step boundary; ``last.ckpt`` holds
    that step, so resuming loses nothing. ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, reason: str, step: int, checkpoint: object, exit_code: int) -> None:
        self.reason, self.step, self.checkpoint, self.exit_code = reason, step, checkpoint, exit_code
        super().__init__(
            f"training stopped by {reason} at step {step}, saved in {checkpoint}: continue it with --resume "
            "on the command line (resume=True in Python), nothing is lost"
        )
