"""Document classification (NSMC sentiment, or a user's own labelled texts).

``SequenceClassificationTask`` is also the base of pair classification (``nlpbook.paircls``),
which differs only in having a second text and other corpora.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from transformers import AutoModelForSequenceClassification

from nlpbook.arguments import TrainArguments, option
from nlpbook.corpus import (
    DataError,
    Row,
    check_labels,
    korpora_fetch,
    nonempty,
    read_table,
    read_text_rows,
    require_files,
)
from nlpbook.tasks import Features, Split, Task

__all__ = ["ClassificationTrainArguments", "TextExample", "SequenceClassificationTask", "TASK"]

logger = logging.getLogger(__name__)


@dataclass
class ClassificationTrainArguments(TrainArguments):
    """Arguments for document classification; defaults train NSMC sentiment."""

    task: ClassVar[str] = "classification"
    default_corpus_name: ClassVar[str] = "nsmc"
    book_task_name: ClassVar[str] = "document-classification"

    text_column: str = option("text column of --train_file/--test_file", default="text")
    label_column: str = option("label column of --train_file/--test_file", default="label")


@dataclass(frozen=True)
class TextExample:
    text_a: str
    text_b: str | None = None
    label: str | None = None
    row: Row | None = None  # where it was read from, for error messages


class SequenceClassificationTask(Task):
    """One label per text (or per pair of texts), read from table files."""

    model_class = AutoModelForSequenceClassification

    # --- reading -----------------------------------------------------------------------------
    def corpus_files(self, args: Any, split: Split) -> Path:
        """The file of a known corpus for ``split``, downloaded through Korpora only when missing."""
        raise DataError(args.downstream_corpus_name, None, "unknown corpus")

    def read(self, args: Any, split: Split) -> list[TextExample]:
        # A file given for a split wins over the corpus's own, so a model trained on a corpus can
        # be scored on another file (e.g. KorNLI's xnli.test.ko.tsv) with --test_file.
        path = args.train_file if split == "train" else args.test_file
        if path is not None:
            return self.read_custom(Path(path).expanduser(), args)
        if args.downstream_corpus_name == "custom":
            raise DataError(
                f"--{split}_file", None, "not given (needed with downstream_corpus_name='custom')"
            )
        return self.read_corpus(args, split)

    def read_custom(self, path: Path, args: Any) -> list[TextExample]:
        rows = read_table(path, [args.text_column, args.label_column])
        return [self.example_from_row(row, args.text_column, None, args.label_column) for row in rows]

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        raise NotImplementedError

    @staticmethod
    def example_from_row(row: Row, text_a: str, text_b: str | None, label: str | None) -> TextExample:
        label_value = row.values[label].strip() if label else None
        if label and not label_value:
            raise row.error(f"column {label!r} is empty; expected a label")
        return TextExample(nonempty(row, text_a), nonempty(row, text_b) if text_b else None, label_value, row)

    # --- labels ------------------------------------------------------------------------------
    def label_names(self, train_examples: Sequence[TextExample]) -> list[str]:
        names = sorted({e.label for e in train_examples if e.label is not None})
        if len(names) < 2:
            where = (
                train_examples[0].row.path if train_examples and train_examples[0].row else "training data"
            )
            raise DataError(where, None, f"needs at least 2 different labels to learn from, found {names}")
        return names

    def check_labels(self, examples: Sequence[TextExample], label_names: Sequence[str]) -> None:
        check_labels(((e.row, e.label) for e in examples if e.row and e.label is not None), label_names)

    # --- encoding ----------------------------------------------------------------------------
    def encode(
        self,
        examples: Sequence[TextExample],
        tokenizer: Any,
        label_names: Sequence[str] | None,
        max_seq_length: int,
    ) -> list[Features]:
        if not examples:
            return []
        pairs = examples[0].text_b is not None
        encoded = tokenizer(
            [e.text_a for e in examples],
            [e.text_b or "" for e in examples] if pairs else None,
            truncation="longest_first",  # pairs: trim the longer text first, keep both
            max_length=max_seq_length,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        label_ids = {name: i for i, name in enumerate(label_names or [])}
        features = []
        for index, example in enumerate(examples):
            feature: Features = {
                "input_ids": encoded["input_ids"][index],
                "token_type_ids": encoded["token_type_ids"][index],
                "example_index": index,
                # the fast tokenizer keeps what truncation cut off: predict reports it to the user
                "truncated": bool(encoded.encodings[index].overflowing),
            }
            if label_names is not None and example.label is not None:
                feature["labels"] = label_ids[example.label]
            features.append(feature)
        return features

    # --- scoring and decoding ----------------------------------------------------------------
    def metrics(
        self, predictions: Sequence[np.ndarray], features: Sequence[Features], label_names: Sequence[str]
    ) -> dict[str, Any]:
        gold = [f["labels"] for f in features]
        predicted = [int(p) for p in predictions]
        ids = list(range(len(label_names)))
        precision, recall, f1, support = precision_recall_fscore_support(
            gold, predicted, labels=ids, zero_division=0
        )
        return {
            "accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, labels=ids, average="macro", zero_division=0)),
            "per_class": {
                name: {
                    "precision": float(precision[i]),
                    "recall": float(recall[i]),
                    "f1": float(f1[i]),
                    "support": int(support[i]),
                }
                for i, name in enumerate(label_names)
            },
            "confusion_matrix": {
                "labels": list(label_names),
                "matrix": confusion_matrix(gold, predicted, labels=ids).tolist(),
            },
        }

    def decode(
        self,
        example: TextExample,
        features: Sequence[Features],
        logits: Sequence[np.ndarray],
        label_names: Sequence[str],
    ) -> dict[str, Any]:
        scores = logits[0].astype(np.float64)
        probabilities = np.exp(scores - scores.max())
        probabilities /= probabilities.sum()
        best = int(probabilities.argmax())
        result: dict[str, Any] = {"text": example.text_a}
        if example.text_b is not None:
            result = {"text_a": example.text_a, "text_b": example.text_b}
        result["label"] = label_names[best]
        result["probabilities"] = {name: float(p) for name, p in zip(label_names, probabilities, strict=True)}
        return result

    def example_from_input(self, item: Any) -> TextExample:
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected a non-empty text to classify, got {item!r}")
        return TextExample(text)

    def examples_from_file(self, path: str) -> list[TextExample]:
        return [TextExample(row.values["text"], row=row) for row in read_text_rows(path)]


NSMC_LABELS = {"0": "negative", "1": "positive"}


class ClassificationTask(SequenceClassificationTask):
    name = "classification"
    arguments_class = ClassificationTrainArguments
    corpora = ("nsmc",)

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        if args.downstream_corpus_name != "nsmc":
            raise DataError(
                args.downstream_corpus_name,
                None,
                "unknown corpus for classification; use 'nsmc' or 'custom' with --train_file/--test_file",
            )
        folder = args.corpus_root / "nsmc"
        path = folder / f"ratings_{split}.txt"
        paths = [folder / "ratings_train.txt", folder / "ratings_test.txt"]
        require_files(paths, lambda: korpora_fetch("nsmc", args.corpus_root), "nsmc", args.force_download)
        rows = read_table(path, ["id", "document", "label"])
        examples, empty = [], []
        for row in rows:
            label = row.values["label"].strip()
            if label not in NSMC_LABELS:
                raise row.error(f"label {label!r} is not NSMC's 0 (negative) or 1 (positive)")
            if not row.values["document"].strip():
                empty.append(row.line)  # NSMC ships a few empty reviews; they teach nothing
                continue
            examples.append(TextExample(row.values["document"], None, NSMC_LABELS[label], row))
        if empty:
            logger.warning("%s: left out %d empty review(s) at line(s) %s", path, len(empty), empty[:10])
        return examples


TASK = ClassificationTask()
