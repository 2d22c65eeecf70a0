"""What reaches the user's screen: nlpbook's own messages, and the libraries' noise kept out.

nlpbook logs through the ``"nlpbook"`` logger. A library logger with only a ``NullHandler`` shows
nothing in a script or a notebook, so warnings the README promises (empty NSMC reviews left out,
blank prediction lines) were never seen. ``install()`` (run by ``import nlpbook``) gives the logger
a handler that prints ``nlpbook: warning: ...`` to stderr, at level INFO by default:

- it steps aside when the user has configured logging (a handler on the root logger, or another
  handler on ``"nlpbook"``): the record then reaches the user's handlers by propagation and is
  printed once, in the user's format;
- ``nlpbook.set_verbosity("warning")`` (or ``NLPBOOK_VERBOSITY=warning``, or the CLI's ``-q``)
  keeps only warnings and errors; ``"error"`` silences warnings too; ``"debug"`` adds detail.

``quiet_libraries()`` wraps training: Lightning's start-up lines (``GPU available``, the
litlogger/litmodels tips, ``limit_val_batches ... configured``, ``Trainer.fit stopped``) are INFO
records of its own loggers and its ``_pytree`` deprecation a warning; none of them is something
the user can act on, so they are dropped for the duration of the run, and restored after.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = ["install", "set_verbosity", "quiet_libraries", "quiet_transformers", "VERBOSITY_ENV"]

VERBOSITY_ENV = "NLPBOOK_VERBOSITY"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning", "lightning_fabric", "lightning.pytorch")
NOISE = (
    # Lightning 2.6 on torch 2.13 (pytorch_lightning/utilities/_pytree.py): a deprecation inside
    # Lightning, nothing for the user to change.
    r".*isinstance\(treespec, LeafSpec\)",
    # An epoch shorter than log_every_n_steps: nlpbook logs once an epoch then (trainer.LogEachEpoch).
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # fp16 on a CPU: nlpbook says in one line what it trains in instead (trainer._fp16_on_cpu).
    r".*AMP with fp16 is not supported on CPU",
    # A run stopped (max_steps) before its first validation keeps no best checkpoint, and the
    # export holds its last weights: nlpbook's summary line says so.
    r"`ModelCheckpoint\(monitor=.*could not find the monitored key",
)
logger = logging.getLogger("nlpbook")


class _Handler(logging.StreamHandler):
    """Prints nlpbook's records to the current ``sys.stderr`` unless the user handles them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter())

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr  # looked up at each write: pytest and Jupyter replace sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers or any(h is not self for h in logger.handlers):
            return  # the user's logging configuration prints it (propagation)
        super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.levelno < logging.ERROR:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.WARNING:
            return f"nlpbook: {record.levelname.lower()}: {message}"
        if record.levelno <= logging.DEBUG:
            return f"nlpbook: debug: {record.name}: {message}"
        return f"nlpbook: {message}"


def install() -> None:
    """Attach the default handler once; the level comes from ``NLPBOOK_VERBOSITY`` (default info)
    unless the user already set one on the ``"nlpbook"`` logger.

    Also drops tqdm's "IProgress not found" warning: transformers imports ``tqdm.auto``, which in a
    notebook without ipywidgets warns and falls back to the plain text bar, the bar nlpbook uses
    anyway (no ipywidgets dependency; Colab has them and shows widget bars)."""
    warnings.filterwarnings("ignore", message="IProgress not found")
    if not any(isinstance(h, _Handler) for h in logger.handlers):
        logger.addHandler(_Handler())
    if logger.level == logging.NOTSET:
        set_verbosity(os.environ.get(VERBOSITY_ENV, "info"))


def set_verbosity(level: str | int) -> None:
    """How much nlpbook prints: ``"debug"``, ``"info"`` (default), ``"warning"`` or ``"error"``."""
    if isinstance(level, str):
        if level.lower() not in LEVELS:
            from nlpbook.errors import ArgumentError

            raise ArgumentError(f"verbosity must be one of {', '.join(LEVELS)}, got {level!r}")
        level = LEVELS[level.lower()]
    logger.setLevel(level)


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Lightning's INFO lines and known library warnings off while training; restored after.

    With nlpbook at debug verbosity nothing is dropped, for reading what the libraries say."""
    if logger.getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [each.level for each in loggers]
    for each in loggers:
        each.setLevel(max(logging.WARNING, each.getEffectiveLevel()))
    try:
        with warnings.catch_warnings():
            for pattern in NOISE:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for each, level in zip(loggers, levels, strict=True):
            each.setLevel(level)


@contextmanager
def quiet_transformers(downloads: bool = False) -> Iterator[None]:
    """transformers' load report and its load/save progress bars off, around a ``from_pretrained``
    or ``save_pretrained``; restored after.

    The report lists the new head's weights as MISSING and the masked-LM head's as UNEXPECTED on
    every fine-tuning run: the expected case, which nlpbook checks itself (``pretrained.py`` warns
    when encoder weights are missing). The bars use ``tqdm.auto``, which prints "IProgress not
    found" in a notebook without ipywidgets, for a load that takes a second. ``downloads=True``
    (a hub name) keeps the bars: transformers' switch turns off the hub's download bars too.
    """
    from transformers.utils import logging as hf_logging

    if logger.getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled() and not downloads
    hf_logging.set_verbosity_error()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
