"""Pair classification (the book's KorNLI / KLUE-NLI chapter).

``ClassificationTrainArguments`` is the book's name for the same class, so a notebook cell written
for ``ratsnlp.nlpbook.classification`` with ``downstream_corpus_name="kornli"`` moves over by
changing its import to ``from nlpbook.paircls import ClassificationTrainArguments``.
"""

from nlpbook.paircls.corpus import NLI_LABELS
from nlpbook.paircls.task import (
    TASK,
    ClassificationTrainArguments,
    PairClassificationTask,
    PairClassificationTrainArguments,
)
from nlpbook.text import TextExample

__all__ = [
    "PairClassificationTrainArguments",
    "ClassificationTrainArguments",
    "PairClassificationTask",
    "TextExample",
    "NLI_LABELS",
    "TASK",
]
