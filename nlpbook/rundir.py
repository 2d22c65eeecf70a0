"""The run folder (``downstream_model_dir``): one run at a time, nothing of an earlier run
silently replaced, and a resume that continues the same run.

- ``run_lock`` keeps two runs from writing into the same folder.
- ``remove_leftovers`` clears what a killed run left half-written (a checkpoint's temporary file,
  an export's staging copy: a whole model) once the lock is held.
- ``check_run_dir`` refuses a folder holding an earlier run's output (checkpoints, export,
  ``train_args.json``, logs) unless ``resume`` or ``overwrite_model_dir`` says what to do with it;
  on ``resume`` it refuses arguments that change the run's meaning (the model, the data, the
  sequence length, the batch size, the learning rate, ...) with a list of the differences, and
  allows and records those that may change (epochs, limits, save cadence, workers, devices).
- ``record_run`` writes ``train_args.json`` (with the label names) once, at the run's start, and
  appends each resume's changes to ``resumes.jsonl``, so the original record is never lost.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nlpbook.arguments import TrainArguments
from nlpbook.checkpoints import LAST_CHECKPOINT, TEMP_MARK
from nlpbook.errors import ArgumentError, spell

__all__ = [
    "run_lock",
    "ModelDirBusyError",
    "LOCK_FILE",
    "ARGUMENTS_FILE",
    "RESUMES_FILE",
    "MAY_CHANGE_ON_RESUME",
    "remove_leftovers",
    "check_run_dir",
    "check_resumed_labels",
    "record_run",
]

logger = logging.getLogger(__name__)
LOCK_FILE = ".nlpbook.lock"
ARGUMENTS_FILE = "train_args.json"
RESUMES_FILE = "resumes.jsonl"
EXPORT_STAGING = ".export-*"  # export.write_export's staging folders (and the .export-old swap)
RUN_OUTPUT = (LAST_CHECKPOINT, ARGUMENTS_FILE, RESUMES_FILE, "export", "logs")

# Changing these does not change what the run learns from or how: how long it goes on, how often
# it saves or logs, where the data files and model now live on disk, what it runs on.
MAY_CHANGE_ON_RESUME = frozenset(
    {
        "resume",
        "epochs",
        "max_steps",
        "max_eval_samples",
        "test_mode",
        "early_stopping_patience",
        "save_every_n_steps",
        "save_every_n_minutes",
        "save_top_k",
        "log_every_n_steps",
        "val_check_interval",
        "eval_batch_size",
        "cpu_workers",
        "accelerator",
        "devices",
        "tpu_cores",
        "downstream_corpus_root_dir",
        "downstream_model_dir",
        "force_download",
        "overwrite_cache",
        "overwrite_model_dir",
        "test_file",
    }
)


class ModelDirBusyError(ArgumentError):
    """Another live run holds the lock on this ``downstream_model_dir``."""


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
        remove_leftovers(model_dir)
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


def remove_leftovers(model_dir: Path) -> None:
    """What a run killed while writing left behind (we hold the lock, so no live run owns it)."""
    for leftover in model_dir.glob(f".*.ckpt{TEMP_MARK}*"):
        logger.info("removing %s, left by an interrupted checkpoint write", leftover.name)
        leftover.unlink(missing_ok=True)
    for staging in model_dir.glob(EXPORT_STAGING):
        if staging.is_dir():
            logger.info("removing %s, an export copy left by an interrupted export", staging.name)
            shutil.rmtree(staging, ignore_errors=True)


def check_run_dir(args: TrainArguments) -> Path | None:
    """The checkpoint to resume from (or None to start fresh), after the folder rules above."""
    folder = args.model_dir
    earlier = [name for name in RUN_OUTPUT if (folder / name).exists()]
    earlier += sorted(p.name for p in folder.glob("*.ckpt") if p.name != LAST_CHECKPOINT)
    if args.resume:
        last = folder / LAST_CHECKPOINT
        if not last.is_file():
            if earlier:
                raise ArgumentError(
                    f"{folder} holds an earlier run ({', '.join(earlier[:4])}) but no {LAST_CHECKPOINT} "
                    f"to resume from (deleted?); start over in it with {spell('overwrite_model_dir', True)}, "
                    f"or choose another {spell('downstream_model_dir')}"
                )
            logger.info("resume: no %s in %s yet, starting from step 0", LAST_CHECKPOINT, folder)
            return None
        _check_same_run(args)
        return last
    if not earlier:
        return None
    if not args.overwrite_model_dir:
        raise ArgumentError(
            f"{folder} already holds a run ({', '.join(earlier[:4])}); continue it with "
            f"{spell('resume', True)}, start over with {spell('overwrite_model_dir', True)} (deletes its "
            f"checkpoints, logs and export), or choose another {spell('downstream_model_dir')}"
        )
    for name in earlier:
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    logger.warning("overwrite_model_dir: deleted the earlier run's %s in %s", ", ".join(earlier), folder)
    return None


def _check_same_run(args: TrainArguments) -> None:
    saved = _saved_arguments(args.model_dir)
    if saved is None:
        return
    current = args.to_dict()
    changed = {
        name: (saved[name], value)
        for name, value in current.items()
        if name in saved and name not in MAY_CHANGE_ON_RESUME and saved[name] != value
    }
    if changed:
        listed = "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())
        raise ArgumentError(
            f"{spell('resume', True)} with arguments that change the run in {args.model_dir}: {listed}. "
            f"Resume with the run's own values (see its {ARGUMENTS_FILE}), or start a new run in another "
            f"{spell('downstream_model_dir')}"
        )


def _saved_arguments(folder: Path) -> dict[str, Any] | None:
    path = folder / ARGUMENTS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArgumentError(f"{path} is not valid JSON ({error.msg} at line {error.lineno})") from None


def check_resumed_labels(args: TrainArguments, label_names: Sequence[str]) -> None:
    """On resume, the training data must give the run's own labels (before the model loads: a
    different count would otherwise die in a raw weight-shape mismatch)."""
    saved = _saved_arguments(args.model_dir) if args.resume else None
    if saved is not None and "label_names" in saved and saved["label_names"] != list(label_names):
        raise ArgumentError(
            f"{spell('resume', True)}, but the training data's labels {list(label_names)} are not the run's "
            f"{saved['label_names']} (see {args.model_dir / ARGUMENTS_FILE}); resume with the run's "
            "data, or start a new run"
        )


def record_run(args: TrainArguments, label_names: Sequence[str]) -> None:
    """``train_args.json`` when training starts; on resume, the changes go to ``resumes.jsonl``."""
    path = args.model_dir / ARGUMENTS_FILE
    saved = _saved_arguments(args.model_dir) if args.resume else None
    if saved is None:
        record = {**args.to_dict(), "label_names": list(label_names)}
        path.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return
    changes = {k: [saved.get(k), v] for k, v in args.to_dict().items() if k != "resume" and saved.get(k) != v}
    entry = {"resumed_at": time.strftime("%Y-%m-%d %H:%M:%S"), "changed": changes}
    with open(args.model_dir / RESUMES_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    if changes:
        logger.info("resume: %s", "; ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items()))
