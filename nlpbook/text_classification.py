"""The output side of single-label classification, shared by document and pair classification.

One class per input: the label set comes from the training data, the head is
``AutoModelForSequenceClassification`` with ``problem_type="single_label_classification"``, a
prediction is the label and every label's probability, and the metrics are accuracy, macro F1,
per-class precision/recall and the confusion matrix (scikit-learn).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nlpbook.corpus import DataError, check_labels
from nlpbook.tasks import Features, Head, accuracy
from nlpbook.text import TextExample, TextTask

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["TextClassificationTask", "MAX_NUMERIC_CLASSES"]

logger = logging.getLogger(__name__)
MAX_NUMERIC_CLASSES = 20  # more distinct numbers than this in a label column: a score, not classes
BOOLEANS = ("true", "false")


class TextClassificationTask(TextTask):
    head = Head("AutoModelForSequenceClassification", "single_label_classification")
    metric_names = ("accuracy", "macro_f1")

    # --- labels ------------------------------------------------------------------------------
    def prepare_labels(self, examples: list[TextExample], args: Any) -> list[TextExample]:
        """Numbers in a label column are class names, spelled one way.

        ``1`` and ``1.0`` are one class: integer spellings are normalised (logged). A column of
        fractional or many distinct numbers is a score, refused with a hint to the regression task
        (KorSTS's ``score`` would otherwise become 205 classes). ``true`` beside ``0``/``1`` is
        ambiguous and refused.
        """
        labelled = [e for e in examples if e.label is not None]
        numbers = {e.label: _number(e.label) for e in labelled}
        if not labelled or any(value is None for value in numbers.values()):
            booleans = [e for e in labelled if e.label.lower() in BOOLEANS]
            numeric = [e for e in labelled if numbers[e.label] is not None]
            if booleans and numeric:
                first = booleans[0] if len(booleans) <= len(numeric) else numeric[0]
                raise _error(first, "mixes true/false with numbers in one label column; use one spelling")
            return examples
        distinct = set(numbers.values())
        fractional = next((e for e in labelled if not float(numbers[e.label]).is_integer()), None)
        if fractional is not None or len(distinct) > MAX_NUMERIC_CLASSES:
            culprit = fractional or labelled[0]
            raise _error(
                culprit,
                f"the label column holds {len(distinct)} distinct numbers: that is a score, not classes; "
                "train the regression task instead (nlpbook train sts / nlpbook.sts.STSTrainArguments, "
                "with --score_column), or give class names",
            )
        respelled = [e for e in labelled if e.label != str(int(numbers[e.label]))]
        if not respelled:
            return examples
        where = respelled[0].row
        logger.warning(
            "%s: %d label(s) spelled as numbers in another way were normalised (e.g. %r -> %r at line %s)",
            where.path if where else "labels",
            len(respelled),
            respelled[0].label,
            str(int(numbers[respelled[0].label])),
            where.line if where else "?",
        )
        changed = {id(e) for e in respelled}
        return [self.relabel(e, str(int(numbers[e.label]))) if id(e) in changed else e for e in examples]

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

    def targets(self, labels: Sequence[str], label_names: Sequence[str]) -> list[int]:
        ids = {name: i for i, name in enumerate(label_names)}
        return [ids[label] for label in labels]

    # --- scoring and decoding ----------------------------------------------------------------
    def train_metrics(self, outputs: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"train_accuracy": accuracy(outputs, batch["labels"])}

    def metrics(
        self,
        examples: Sequence[TextExample],
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        from sklearn.metrics import (
            accuracy_score,
            confusion_matrix,
            f1_score,
            precision_recall_fscore_support,
        )

        gold = [f["labels"] for f in features]
        predicted = [int(row.argmax()) for row in outputs]
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

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        scores = output.astype("float64")
        probabilities = [math.exp(s - scores.max()) for s in scores]
        total = sum(probabilities)
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return {
            "label": label_names[best],
            "probabilities": {name: p / total for name, p in zip(label_names, probabilities, strict=True)},
        }


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _error(example: TextExample, message: str) -> DataError:
    row = example.row
    return DataError(
        row.path if row else "labels", row.line if row else None, f"label {example.label!r}: {message}"
    )
