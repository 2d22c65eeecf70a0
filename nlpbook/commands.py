"""``train`` and ``evaluate``: written once for every task; the CLI and notebooks call these."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from nlpbook.arguments import ArgumentError, TrainArguments
from nlpbook.cluster import RunGroup, run_group
from nlpbook.console import quiet_libraries
from nlpbook.data import make_loader
from nlpbook.errors import spell
from nlpbook.export import EXPORT_DIR, META_FILE, read_export, write_export
from nlpbook.module import TaskModule
from nlpbook.predictor import run_model
from nlpbook.preflight import preflight
from nlpbook.pretrained import load_pretrained
from nlpbook.process_memory import freed_memory_kept, old_objects_frozen
from nlpbook.rundir import check_resumed_labels, check_run_dir, record_run, run_lock
from nlpbook.tasks import Task, get_task
from nlpbook.trainer import build_trainer
from nlpbook.xla import pad_buckets

__all__ = ["train", "evaluate", "load_pretrained"]

logger = logging.getLogger(__name__)
EVALUATION_FILE = "evaluation.json"


def _task_of(args: TrainArguments) -> Task:
    if not args.task:
        raise ArgumentError(
            "use a task's arguments class, e.g. nlpbook.classification.ClassificationTrainArguments"
        )
    return get_task(args.task)


def _without_download(args: TrainArguments) -> TrainArguments:
    """The same arguments with ``force_download`` off: it applies once, to the training run's read."""
    return dataclasses.replace(args, force_download=False) if args.force_download else args


def _limit(examples: list[Any], limit: int | None) -> list[Any]:
    return examples if limit is None else examples[:limit]


def train(args: TrainArguments) -> Path:
    """Fine-tune, checkpoint into ``downstream_model_dir`` and write its export; returns the export folder.

    Ends with one summary line (time, epochs, best metric, export). Resuming a finished run with no
    epochs added trains nothing and leaves its export (and ``evaluation.json``) as they are.
    Under torchrun or Slurm every process calls this; global rank 0 owns the run folder, and a
    check that fails on one rank raises on all (``nlpbook.cluster``).
    """
    task = _task_of(args)
    with (
        run_group(args) as group,
        contextlib.ExitStack() as folder,
        quiet_libraries(),
        old_objects_frozen(),
        freed_memory_kept(),
    ):
        # The device and the run folder, before any data is read; on every machine, and if they
        # fail on one, all stop (a machine whose GPU is missing must not leave the others waiting).
        group.together(lambda: preflight(args))

        def own_folder() -> Path | None:
            if not group.is_zero:
                return None
            folder.enter_context(run_lock(args.model_dir))  # a second run on the folder is refused
            return check_run_dir(args)  # an earlier run's folder is refused, or a resume that changes it

        resume_from = group.agree(own_folder)  # rank 0's decision, on every rank
        return _train(args, task, group, resume_from)


def _train(args: TrainArguments, task: Task, group: RunGroup, resume_from: Path | None) -> Path:
    started = time.perf_counter()
    examples = group.zero_first(lambda: _read(args, task, group, resume_from))
    module, train_loader, eval_loader, tokenizer = group.together(
        lambda: _prepare(args, task, group, *examples)
    )
    trainer = build_trainer(args, has_validation=bool(module.val_features))
    # last.ckpt is rewritten whenever a step is trained (in this process or a spawned one): unchanged
    # after fit means a resumed run had nothing left to train.
    resumed_stamp = _stamp(resume_from) if resume_from else None
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=eval_loader,
        ckpt_path=str(resume_from) if resume_from else None,
    )

    def finish() -> Path:
        export = args.model_dir / EXPORT_DIR
        if not group.is_zero:
            return export
        if resume_from and _stamp(resume_from) == resumed_stamp and (export / META_FILE).is_file():
            logger.info(
                "nothing to train: the run already finished %d epoch(s) (step %d); its export is left as "
                "it is (raise %s to train more)",
                trainer.current_epoch,
                trainer.global_step,
                spell("epochs"),
            )
            return export
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state)
            logger.debug("exporting the best checkpoint %s", Path(best).name)
        write_export(export, module.model.cpu(), tokenizer, task, module.label_names, args)
        seconds = time.perf_counter() - started
        logger.info("%s", _summary(args, trainer, export, seconds, bool(module.val_features)))
        return export

    return group.agree(finish)  # rank 0 writes the export; every rank returns its path


def _read(
    args: TrainArguments, task: Task, group: RunGroup, resume_from: Path | None
) -> tuple[list[Any], list[Any]]:
    """The training and test examples, read and validated before any model is loaded (a bad line
    fails in seconds). Rank 0 reads first (``RunGroup.zero_first``): only it downloads."""
    if resume_from and not resume_from.is_file():
        raise ArgumentError(
            f"{resume_from} is not there on rank {group.rank}: every machine of a run must see the "
            f"same {spell('downstream_model_dir')} (a shared filesystem: NFS, Lustre, ...)"
        )
    if args.seed is not None:
        pl.seed_everything(args.seed, workers=True, verbose=False)
    # force_download applies once: to rank 0's read of the training split, which fetches the whole corpus.
    first = args if group.is_zero else _without_download(args)
    train_examples = _limit(task.read(first, "train"), args.max_train_samples)
    eval_examples = _limit(task.read(_without_download(args), "test"), args.max_eval_samples)
    return train_examples, eval_examples


def _prepare(
    args: TrainArguments, task: Task, group: RunGroup, train_examples: list[Any], eval_examples: list[Any]
) -> tuple[TaskModule, DataLoader, DataLoader, Any]:
    """Model and loaders (and the tokenizer, for the export), on every rank; rank 0 also records
    the run."""
    label_names = task.label_names(train_examples)
    task.check_labels(eval_examples, label_names)
    if group.is_zero:
        check_resumed_labels(args, label_names)
    tokenizer, model = load_pretrained(args, task, label_names)

    encoding = time.perf_counter()
    train_features = task.encode(train_examples, tokenizer, label_names, args)
    eval_features = task.encode(eval_examples, tokenizer, label_names, args)
    logger.debug(
        "encoded %d + %d examples into %d + %d features in %.1fs",
        len(train_examples),
        len(eval_examples),
        len(train_features),
        len(eval_features),
        time.perf_counter() - encoding,
    )

    seed = args.seed or 0
    # padding="max_length" (ratsnlp's way) pads in the collator too, so the attention mask stays right.
    pad_to = args.max_seq_length if args.padding == "max_length" else None
    buckets = pad_buckets(args)  # TPUs: a few fixed shapes, not one graph per batch length
    train_loader = make_loader(
        train_features,
        args.batch_size,
        tokenizer.pad_token_id,
        shuffle=True,
        group_by_length=args.group_by_length,
        pad_to=pad_to,
        seed=seed,
        workers=args.cpu_workers,
        label_keys=task.head.label_keys,
        pad_buckets=buckets,
    )
    eval_loader = make_loader(
        eval_features,
        args.eval_batch_size or 2 * args.batch_size,
        tokenizer.pad_token_id,
        shuffle=False,
        group_by_length=args.group_by_length,
        pad_to=pad_to,
        workers=args.cpu_workers,
        label_keys=task.head.label_keys,
        pad_buckets=buckets,
    )
    module = TaskModule(model, args, task, label_names, eval_examples, eval_features)
    module.train_sampler = getattr(train_loader, "sampler", None)
    if group.is_zero:
        record_run(args, label_names)  # train_args.json, written as training starts
    return module, train_loader, eval_loader, tokenizer


def _stamp(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_mtime_ns, status.st_size


def _summary(
    args: TrainArguments, trainer: pl.Trainer, export: Path, seconds: float, has_validation: bool
) -> str:
    """One line after training: what ran, where, how long, how good, and where the model is."""
    callback = trainer.checkpoint_callback
    score = getattr(callback, "best_model_score", None)
    best = f"best {args.monitor_metric} {float(score):.4f}; " if score is not None else ""
    if score is None and has_validation and args.monitor_metric not in trainer.callback_metrics:
        # e.g. max_steps reached inside the first epoch: no best checkpoint, the last weights exported
        best = "not validated (stopped before its first validation; the export holds the last weights); "
    device = trainer.strategy.root_device.type
    return (
        f"trained {trainer.current_epoch} epoch(s), {trainer.global_step} step(s) on {device} in "
        f"{_duration(seconds)}; {best}export: {export}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def evaluate(args: TrainArguments, model_dir: str | Path | None = None) -> dict[str, Any]:
    """Score the export on the test split; metrics also go to ``<export>/evaluation.json``."""
    task = _task_of(args)
    export = read_export(model_dir or args.model_dir / EXPORT_DIR)
    if export.task.name != task.name:
        raise ArgumentError(f"{export.path} holds a {export.task.name!r} model, not {task.name!r}")
    examples = _limit(task.read(_without_download(args), "test"), args.max_eval_samples)
    task.check_labels(examples, export.label_names)
    features = task.encode(examples, export.tokenizer, export.label_names, export.settings)
    outputs = run_model(
        task, export.model, features, export.tokenizer.pad_token_id, args.eval_batch_size or 64
    )
    metrics = task.metrics(examples, features, outputs, export.label_names, export.settings)
    metrics["examples"] = len(examples)
    (export.path / EVALUATION_FILE).write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return metrics
