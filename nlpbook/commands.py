"""``train`` and ``evaluate``: written once for every task; the CLI and notebooks call these."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from nlpbook.arguments import ArgumentError, TrainArguments
from nlpbook.data import make_loader
from nlpbook.export import EXPORT_DIR, read_export, write_export
from nlpbook.module import TaskModule
from nlpbook.predictor import run_model
from nlpbook.rundir import check_resumed_labels, check_run_dir, record_run, run_lock
from nlpbook.tasks import Task, get_task
from nlpbook.trainer import build_trainer

__all__ = ["train", "evaluate", "load_pretrained"]

logger = logging.getLogger(__name__)
EVALUATION_FILE = "evaluation.json"


def _task_of(args: TrainArguments) -> Task:
    if not args.task:
        raise ArgumentError(
            "use a task's arguments class, e.g. nlpbook.classification.ClassificationTrainArguments"
        )
    return get_task(args.task)


def load_pretrained(args: TrainArguments, task: Task, label_names: list[str]) -> tuple[Any, Any]:
    """Tokenizer and model from a hub name or a local folder: the path a user's kcbert-base takes."""
    from transformers import AutoConfig, AutoTokenizer

    name = args.pretrained_model_name
    _check_model_folder(name)
    config = AutoConfig.from_pretrained(name)
    _check_encoder(name, config)
    limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and args.max_seq_length > limit:
        raise ArgumentError(
            f"max_seq_length={args.max_seq_length} is longer than {name}'s max_position_embeddings={limit}"
        )
    tokenizer = AutoTokenizer.from_pretrained(name)
    if not getattr(tokenizer, "is_fast", False):
        raise ArgumentError(
            f"{name}: nlpbook needs a fast (Rust) tokenizer; tokenizer.json or vocab.txt is missing"
        )
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size and len(tokenizer) > vocab_size:
        raise ArgumentError(
            f"{name}: the tokenizer has {len(tokenizer)} tokens but the model's embeddings hold only "
            f"{vocab_size}; the tokenizer files belong to another model"
        )
    config.update(task.head_config(label_names))
    model_class = task.head.model_class()
    if args.random_init:
        model = model_class.from_config(config)
    else:
        model = model_class.from_pretrained(name, config=config)
    return tokenizer, model


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def _check_model_folder(name: str) -> None:
    """A local pretrained_model_name must hold a config and a tokenizer.

    Without its vocabulary, transformers quietly builds an empty tokenizer that turns every word
    into [UNK]: training would run and learn nothing.
    """
    folder = Path(name).expanduser()
    if not folder.is_dir():
        if name.startswith(("/", ".", "~")) or name.count("/") > 1:
            raise ArgumentError(f"pretrained_model_name {name}: folder not found")
        return  # a hub name such as beomi/kcbert-base
    if not (folder / "config.json").is_file():
        raise ArgumentError(f"pretrained_model_name {name}: config.json not found in the folder")
    if not any((folder / file).is_file() for file in TOKENIZER_FILES):
        raise ArgumentError(
            f"pretrained_model_name {name}: no tokenizer in the folder (expected one of "
            f"{', '.join(TOKENIZER_FILES)}); save the tokenizer there with tokenizer.save_pretrained"
        )


def _check_encoder(name: str, config: Any) -> None:
    """Every task head here sits on a bidirectional encoder (BERT, RoBERTa, ELECTRA, ...).

    GPT-style decoders and T5/BART encoder-decoders have classification heads in transformers,
    but they need other inputs (no [CLS], no token_type_ids, a pad token GPT-2 lacks) and would
    fail mid-training or train badly; the models that have a masked-LM head are the encoders.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    kind = getattr(config, "model_type", "unknown")
    if getattr(config, "is_encoder_decoder", False) or kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise ArgumentError(
            f"pretrained_model_name {name} is a {kind!r} model, not a BERT-style encoder; nlpbook "
            "fine-tunes encoders such as bert (beomi/kcbert-base), roberta, electra or xlm-roberta"
        )


def _without_download(args: TrainArguments) -> TrainArguments:
    """The same arguments with ``force_download`` off: it applies once, to the training run's read."""
    return dataclasses.replace(args, force_download=False) if args.force_download else args


def _limit(examples: list[Any], limit: int | None) -> list[Any]:
    return examples if limit is None else examples[:limit]


def train(args: TrainArguments) -> Path:
    """Fine-tune, checkpoint into ``downstream_model_dir`` and write its export; returns the export folder."""
    task = _task_of(args)
    with run_lock(args.model_dir):  # a second run on the same folder is refused, not interleaved
        return _train(args, task)


def _train(args: TrainArguments, task: Task) -> Path:
    resume_from = check_run_dir(args)  # refuses an earlier run's folder, or a resume that changes the run
    if args.seed is not None:
        pl.seed_everything(args.seed, workers=True, verbose=False)

    # Read and validate all data before any model is loaded: a bad line fails in seconds.
    train_examples = _limit(task.read(args, "train"), args.max_train_samples)
    # force_download fetched the whole corpus while reading the training split: not a second time.
    eval_examples = _limit(task.read(_without_download(args), "test"), args.max_eval_samples)
    label_names = task.label_names(train_examples)
    task.check_labels(eval_examples, label_names)
    check_resumed_labels(args, label_names)
    tokenizer, model = load_pretrained(args, task, label_names)

    started = time.perf_counter()
    train_features = task.encode(train_examples, tokenizer, label_names, args)
    eval_features = task.encode(eval_examples, tokenizer, label_names, args)
    logger.info(
        "encoded %d + %d examples into %d + %d features in %.1fs",
        len(train_examples),
        len(eval_examples),
        len(train_features),
        len(eval_features),
        time.perf_counter() - started,
    )

    seed = args.seed or 0
    # padding="max_length" (ratsnlp's way) pads in the collator too, so the attention mask stays right.
    pad_to = args.max_seq_length if args.padding == "max_length" else None
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
    )
    module = TaskModule(model, args, task, label_names, eval_examples, eval_features)
    module.train_sampler = getattr(train_loader, "sampler", None)

    record_run(args, label_names)  # train_args.json, written as training starts
    trainer = build_trainer(args, has_validation=bool(eval_features))
    trainer.fit(
        module,
        train_dataloaders=train_loader,
        val_dataloaders=eval_loader,
        ckpt_path=str(resume_from) if resume_from else None,
    )

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
        logger.info("exporting the best checkpoint %s", Path(best).name)
    export = write_export(args.model_dir / EXPORT_DIR, module.model.cpu(), tokenizer, task, label_names, args)
    logger.info("export written to %s", export)
    return export


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
