"""The task registry: a task is one module that supplies only what differs between tasks.

Train, evaluate, predict and serve are written once (``commands.py``, ``predictor.py``) and ask
the task for: its argument class, how to read its files, how to encode examples into features,
which ``AutoModelFor...`` head to use, its metrics, and how to turn logits into a prediction.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from nlpbook.arguments import TrainArguments

__all__ = ["Task", "Features", "Split", "get_task", "task_names", "TASKS"]

Features = dict[str, Any]
"""One model input: ``input_ids``, ``token_type_ids``, ``labels`` (int, or a list with -100 for
positions the loss ignores) and ``example_index`` (which example it came from: NER splits long
sentences into several windows). Tasks may add keys of their own for decoding."""

Split = Literal["train", "test"]

# One line per task: name -> "module:attribute" (imported lazily so `nlpbook --help` stays fast).
TASKS: dict[str, str] = {
    "classification": "nlpbook.classification.task:TASK",
    "ner": "nlpbook.ner.task:TASK",
    "paircls": "nlpbook.paircls.task:TASK",
}


class Task(ABC):
    """What a task supplies. Subclasses are small: readers, encoder, head, metrics, decoder."""

    name: str
    arguments_class: type[TrainArguments]
    model_class: Any  # a transformers Auto class, e.g. AutoModelForSequenceClassification

    @abstractmethod
    def read(self, args: TrainArguments, split: Split) -> list[Any]:
        """Examples of ``split``, validated: a bad line raises ``DataError`` naming file and line."""

    @abstractmethod
    def label_names(self, train_examples: Sequence[Any]) -> list[str]:
        """The label set, taken from the training data (id order = list order)."""

    @abstractmethod
    def check_labels(self, examples: Sequence[Any], label_names: Sequence[str]) -> None:
        """Raise ``DataError`` at the first example whose label the model does not know."""

    @abstractmethod
    def encode(
        self,
        examples: Sequence[Any],
        tokenizer: Any,
        label_names: Sequence[str] | None,
        max_seq_length: int,
    ) -> list[Features]:
        """Features for ``examples``; the same code path serves training and prediction."""

    @abstractmethod
    def metrics(
        self, predictions: Sequence[np.ndarray], features: Sequence[Features], label_names: Sequence[str]
    ) -> dict[str, Any]:
        """Metrics from predicted label ids (one array per feature) and the features' gold labels."""

    @abstractmethod
    def decode(
        self,
        example: Any,
        features: Sequence[Features],
        logits: Sequence[np.ndarray],
        label_names: Sequence[str],
    ) -> dict[str, Any]:
        """A user-facing prediction for one example from the logits of its features."""

    @abstractmethod
    def example_from_input(self, item: Any) -> Any:
        """Turn what a user passes to predict (a string, a pair, a dict) into an example."""

    def examples_from_file(self, path: str) -> list[Any]:
        """Examples to predict, read from a user's file (labels optional)."""
        raise NotImplementedError(f"task {self.name!r} cannot read prediction files yet")


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(task_names())}")
    module_name, attribute = TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), attribute)
