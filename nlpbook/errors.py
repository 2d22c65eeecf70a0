"""Errors a user can cause or meet, in one light module, and how messages spell an option.

The command line imports these to turn each into one line and an exit status, so they must not
pull in Lightning or torch (``nlpbook --help`` stays instant).

A message that tells the user what to do names an option the way the user writes it: a notebook
user reads ``resume=True``, a command-line user ``--resume`` (``spell``). The CLI runs its command
inside ``cli_spelling()``; everything else gets the Python spelling.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = [
    "ArgumentError",
    "ExportError",
    "NonFiniteLossError",
    "CheckpointWriteError",
    "TrainingInterrupted",
    "spell",
    "cli_spelling",
    "in_cli",
]

_CLI: ContextVar[bool] = ContextVar("nlpbook_cli_spelling", default=False)
_NO_VALUE: Any = object()


class ArgumentError(ValueError):
    """An argument value that cannot work; raised at construction, before any data is read.

    ``problems`` lists each reason when there are several, so the CLI can print them on one line.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class ExportError(FileNotFoundError):
    """A model folder that predict/serve cannot use, with what is missing."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, ...); the previous file is untouched."""


@contextmanager
def cli_spelling() -> Iterator[None]:
    """Messages raised inside spell options as command-line options (``--resume``)."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def in_cli() -> bool:
    return _CLI.get()


def spell(name: str, value: Any = _NO_VALUE) -> str:
    """Option ``name`` (set to ``value``) as the user writes it in the interface in use.

    ``spell("resume", True)``: ``--resume`` on the command line, ``resume=True`` in Python;
    ``spell("batch_size")``: ``--batch_size`` / ``batch_size``.
    """
    if not _CLI.get():
        return name if value is _NO_VALUE else f"{name}={value!r}"
    if value is _NO_VALUE or value is True:
        return f"--{name}"
    if value is None or value is False:
        return f"--{name} {str(value).lower()}"
    return f"--{name} {value}"


class TrainingInterrupted(Exception):
    """A signal (SIGTERM, Ctrl-C) stopped training at an optimizer-step boundary; ``last.ckpt`` holds
    that step, so resuming loses nothing. ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, reason: str, step: int, checkpoint: object, exit_code: int) -> None:
        self.reason, self.step, self.checkpoint, self.exit_code = reason, step, checkpoint, exit_code
        super().__init__(
            f"training stopped by {reason} at step {step}, saved in {checkpoint}: continue it with "
            f"{spell('resume', True)}, nothing is lost"
        )
