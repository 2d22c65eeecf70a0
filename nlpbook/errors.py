"""Errors a user can cause or meet, in one light module.

The command line imports these to turn each into one line and an exit status, so they must not
pull in Lightning or torch (``nlpbook --help`` stays instant).
"""

from __future__ import annotations

__all__ = ["ArgumentError", "ExportError", "NonFiniteLossError", "CheckpointWriteError"]


class ArgumentError(ValueError):
    """An argument value that cannot work; raised at construction, before any data is read."""


class ExportError(FileNotFoundError):
    """A model folder that predict/serve cannot use, with what is missing."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, quota, ...); the previous file is untouched."""
