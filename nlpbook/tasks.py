"""The task registry and what a task supplies.

Train, evaluate, predict and serve are written once (``commands.py``, ``module.py``,
``predictor.py``, ``serve/``) and never assume a label type: they move features in and raw model
outputs out. A task is one module that supplies everything that differs: its arguments, how to
read its files, how to encode an example, which ``AutoModelFor...`` head (``Head``), which inputs a
user gives (``InputField``), how raw outputs become a prediction, and its metrics.

This module is imported by ``nlpbook --help``: it and every task module import only the standard
library at the top, and load transformers, torch, numpy or scikit-learn inside the methods that
use them. Adding a task = one module plus one line in ``TASKS``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nlpbook.corpus import DataError
from nlpbook.errors import spell

if TYPE_CHECKING:
    import numpy as np
    import torch

    from nlpbook.arguments import TrainArguments

__all__ = [
    "Task",
    "Head",
    "InputField",
    "Features",
    "Split",
    "IGNORE_INDEX",
    "HF_PROBLEM_TYPES",
    "accuracy",
    "get_task",
    "task_names",
    "input_field_names",
    "TASKS",
]

Features = dict[str, Any]
"""One model input: ``input_ids``, ``token_type_ids``, the head's label keys (``labels``, or
``start_positions``/``end_positions``: a number, or a list with -100 for positions the loss
ignores) and ``example_index`` (which example it came from: long inputs become several windows).
Tasks may add keys of their own for decoding (offsets, a truncation flag)."""

Split = Literal["train", "test"]
IGNORE_INDEX = -100  # label of a position the loss leaves out ([CLS], [SEP], padding)
ProblemType = Literal["single_label_classification", "regression", "token_classification", "span_extraction"]
HF_PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")

# One line per task: name -> "module:attribute", imported on first use.
TASKS: dict[str, str] = {
    "classification": "nlpbook.classification.task:TASK",
    "ner": "nlpbook.ner.task:TASK",
    "paircls": "nlpbook.paircls.task:TASK",
    "qa": "nlpbook.qa.task:TASK",
    "sts": "nlpbook.sts.task:TASK",
}


@dataclass(frozen=True)
class Head:
    """The model head a task trains, and the shape of what it outputs.

    ``problem_type`` is written to the export's config when transformers knows it (``regression``,
    ``single_label_classification``), so plain ``AutoModelFor...`` computes the same loss.
    ``per_token``: outputs have one row per token and are cut to each feature's own length.
    ``label_keys``: the feature keys the model takes as targets (padded with -100 when lists).
    """

    auto_class: str  # a transformers Auto class name, e.g. "AutoModelForSequenceClassification"
    problem_type: ProblemType
    per_token: bool = False
    label_keys: tuple[str, ...] = ("labels",)

    def model_class(self) -> Any:
        import transformers

        return getattr(transformers, self.auto_class)


@dataclass(frozen=True)
class InputField:
    """One thing a user types to get a prediction: a CLI option (``--name``), a JSON key, a box on
    the web page. ``aliases`` are other column names read from prediction files (a KorNLI file's
    ``sentence1`` is a ``text_a``)."""

    name: str
    label: str
    example: str = ""
    multiline: bool = False
    aliases: tuple[str, ...] = ()


class Task(ABC):
    """What a task supplies. Subclasses are small: readers, encoder, head, metrics, decoder."""

    name: str
    arguments_class: type[TrainArguments]
    head: Head
    input_fields: tuple[InputField, ...]
    metric_names: tuple[str, ...]  # scalar metrics, logged as val_<name>; what --monitor may name

    # --- reading ---------------------------------------------------------------------------
    def read(self, args: Any, split: Split) -> list[Any]:
        """Examples of ``split``, validated: a bad line raises ``DataError`` naming file and line.

        A file given for a split wins over the corpus's own, so a model trained on a corpus can
        be scored on another file (e.g. KorNLI's ``xnli.test.ko.tsv``) with ``--test_file``.
        """
        path = args.train_file if split == "train" else args.test_file
        if path is not None:
            return self.read_file(Path(path).expanduser(), args, split)
        if args.downstream_corpus_name == "custom":
            custom = spell("downstream_corpus_name", "custom")
            raise DataError(spell(f"{split}_file"), None, f"not given (needed with {custom})")
        return self.read_corpus(args, split)

    @abstractmethod
    def read_file(self, path: Path, args: Any, split: Split) -> list[Any]:
        """Labelled examples from a user's own file."""

    @abstractmethod
    def read_corpus(self, args: Any, split: Split) -> list[Any]:
        """Labelled examples of a known corpus (``args.downstream_corpus_name``)."""

    # --- labels and head ---------------------------------------------------------------------
    @abstractmethod
    def label_names(self, train_examples: Sequence[Any]) -> list[str]:
        """The names of the head's outputs, from the training data (id order = list order)."""

    def check_labels(self, examples: Sequence[Any], label_names: Sequence[str]) -> None:
        """Raise ``DataError`` at the first example the model cannot score (e.g. an unseen class);
        nothing to check by default (a score, a span)."""
        return None

    def head_config(self, label_names: Sequence[str]) -> dict[str, Any]:
        """Config values for the head: stored in the export, so plain transformers reloads it."""
        values: dict[str, Any] = {
            "num_labels": len(label_names),
            "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)},
        }
        if self.head.problem_type in HF_PROBLEM_TYPES:
            values["problem_type"] = self.head.problem_type
        return values

    # --- encoding ----------------------------------------------------------------------------
    @abstractmethod
    def encode(
        self, examples: Sequence[Any], tokenizer: Any, label_names: Sequence[str] | None, args: Any
    ) -> list[Features]:
        """Features for ``examples``; the same code path serves training and prediction.

        ``args`` is the run's arguments (a ``TrainArguments``, or at prediction the export's saved
        copy of them), so encoding settings such as ``max_seq_length`` can never differ.
        ``label_names=None``: unlabelled (prediction) features.
        """

    # --- the output side: raw outputs in, predictions and metrics out ------------------------
    def outputs(self, model_output: Any) -> torch.Tensor:
        """The raw output tensor of a forward pass (batch first), as the core stores it."""
        return model_output.logits

    def train_metrics(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Cheap per-step training metrics (tensors), shown beside the loss; none by default."""
        return {}

    @abstractmethod
    def metrics(
        self,
        examples: Sequence[Any],
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        """Scores from the raw outputs of every feature (aligned with ``features``); at least every
        name in ``metric_names`` as a number, plus any detail (per class, per type) for reports.
        ``args``: the run's arguments, as in ``encode`` (decoding settings live there)."""

    @abstractmethod
    def decode(
        self,
        example: Any,
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        """A user-facing prediction for one example from the raw outputs of its features."""

    # --- prediction inputs -------------------------------------------------------------------
    @abstractmethod
    def example_from_fields(self, values: dict[str, str]) -> Any:
        """An unlabelled example from one value per input field (checked non-empty strings)."""

    def example_from_input(self, item: Any) -> Any:
        """What a user passes to predict -> an example. A dict names the fields (or their aliases);
        a task with one field also takes a plain string, and a tuple/list gives the fields in order."""
        names = [f.name for f in self.input_fields]
        if isinstance(item, dict):
            values = {}
            for field in self.input_fields:
                key = next((k for k in (field.name, *field.aliases) if k in item), None)
                if key is not None:
                    values[field.name] = item[key]
        elif isinstance(item, str) and len(names) == 1:
            values = {names[0]: item}
        elif isinstance(item, tuple | list) and len(item) == len(names):
            values = dict(zip(names, item, strict=True))
        else:
            values = {}
        bad = [n for n in names if not (isinstance(values.get(n), str) and values[n].strip())]
        if bad:
            shape = "a text or " if len(names) == 1 else f"a {len(names)}-tuple ({', '.join(names)}) or "
            raise ValueError(
                f"{self.name} predicts from {', '.join(names)}: pass {shape}a dict with "
                f"{', '.join(repr(n) for n in names)} holding non-empty text; got {_short(item)}"
            )
        return self.example_from_fields(values)

    @abstractmethod
    def examples_from_file(self, path: str) -> list[Any]:
        """Examples to predict, read from a user's file (labels optional)."""


def _short(item: Any, limit: int = 80) -> str:
    text = repr(item)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def accuracy(outputs: Any, labels: Any) -> Any:
    """Share of positions whose top output is the label, leaving out positions labelled -100."""
    keep = labels != IGNORE_INDEX
    correct = (outputs.argmax(-1) == labels) & keep
    return correct.sum().float() / keep.sum().clamp(min=1)


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    module_name, attribute = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)


def input_field_names() -> list[str]:
    """Every input field of every task, in first-seen order: the CLI's ``predict --<field>`` options."""
    names: list[str] = []
    for name in task_names():
        names += [f.name for f in get_task(name).input_fields if f.name not in names]
    return names
