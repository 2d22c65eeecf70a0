"""The export folder: everything predict and serve need, loadable by plain transformers too.

``<downstream_model_dir>/export/`` holds the weights (``save_pretrained``), the tokenizer, the label
names in the config (``id2label``/``label2id``) and ``nlpbook.json`` (task, arguments used).
It is written to a temporary folder and renamed into place, so a failed write never leaves a
half-written export where a good one was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from nlpbook.arguments import TrainArguments
from nlpbook.console import quiet_transformers
from nlpbook.errors import ExportError
from nlpbook.pretrained import computing_less
from nlpbook.tasks import Task, get_task

__all__ = ["EXPORT_DIR", "ExportError", "Export", "write_export", "read_export", "find_export", "read_meta"]

EXPORT_DIR = "export"
META_FILE = "nlpbook.json"


@dataclass
class Export:
    path: Path
    task: Task
    model: Any
    tokenizer: Any
    label_names: list[str]
    max_seq_length: int
    arguments: dict[str, Any]

    @property
    def settings(self) -> SimpleNamespace:
        """The training arguments as attributes: what ``task.encode`` reads, so prediction encodes
        exactly as training did."""
        return SimpleNamespace(**{**self.arguments, "max_seq_length": self.max_seq_length})


def write_export(
    destination: Path, model: Any, tokenizer: Any, task: Task, label_names: list[str], args: TrainArguments
) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        model.config.update(task.head_config(label_names))
        with quiet_transformers():
            model.save_pretrained(staging)
        _save_tokenizer(tokenizer, staging, args.max_seq_length)
        meta = {
            "task": task.name,
            "label_names": label_names,
            "max_seq_length": args.max_seq_length,
            "arguments": args.to_dict(),
        }
        (staging / META_FILE).write_text(
            json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        _replace_dir(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def _save_tokenizer(tokenizer: Any, folder: Path, max_seq_length: int) -> None:
    """Saved with ``model_max_length = max_seq_length``, so plain transformers (``pipeline(...,
    truncation=True)``) cuts inputs where training and ``nlpbook.predict`` did, not at the model's
    300 positions (kcbert-base), past which it crashed."""
    kept = tokenizer.model_max_length
    tokenizer.model_max_length = max_seq_length
    try:
        tokenizer.save_pretrained(folder)
    finally:
        tokenizer.model_max_length = kept


def _replace_dir(new: Path, destination: Path) -> None:
    """Swap ``new`` in for ``destination`` with renames only (atomic on one file system)."""
    old = destination.with_name(f".{destination.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        os.replace(destination, old)
    os.replace(new, destination)
    shutil.rmtree(old, ignore_errors=True)


def find_export(path: str | Path) -> Path:
    """The export folder itself, given it or the ``downstream_model_dir`` that holds it."""
    path = Path(path).expanduser()
    if not (path / META_FILE).is_file() and (path / EXPORT_DIR / META_FILE).is_file():
        path = path / EXPORT_DIR
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """``nlpbook.json`` of a complete export (task, labels, arguments), without loading the model:
    enough to check a request against the task before spending seconds on weights."""
    path = find_export(path)
    if not path.is_dir():
        raise ExportError(f"{path}: model folder not found")
    missing = [name for name in (META_FILE, "config.json") if not (path / name).is_file()]
    if not any((path / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        missing.append("model.safetensors")
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer.json or vocab.txt")
    if missing:
        raise ExportError(
            f"{path}: not a complete nlpbook export, missing {', '.join(missing)} "
            f"(train writes it to <downstream_model_dir>/{EXPORT_DIR})"
        )
    return json.loads((path / META_FILE).read_text(encoding="utf-8"))


def read_export(path: str | Path, device: str | None = None) -> Export:
    """Load an export folder (or a ``downstream_model_dir`` that contains one)."""
    from transformers import AutoTokenizer

    meta = read_meta(path)
    path = find_export(path)
    task = get_task(meta["task"])
    with quiet_transformers():
        model = computing_less(task.head.model_class().from_pretrained(path))
    if device:
        model.to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return Export(
        path,
        task,
        model,
        tokenizer,
        list(meta["label_names"]),
        int(meta["max_seq_length"]),
        meta.get("arguments", {}),
    )
