"""Document classification: NSMC sentiment (the book's chapter), or a user's own labelled texts.

Everything but the corpus reader and the arguments comes from the shared bases: reading table
files and encoding in ``nlpbook.text``, the single-label output side in
``nlpbook.text_classification``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from nlpbook.arguments import TrainArguments, option
from nlpbook.corpus import korpora_fetch, read_table, require_files
from nlpbook.tasks import InputField, Split
from nlpbook.text import TextExample
from nlpbook.text_classification import TextClassificationTask

__all__ = ["ClassificationTrainArguments", "ClassificationTask", "TextExample", "NSMC_LABELS", "TASK"]

logger = logging.getLogger(__name__)

NSMC_LABELS = {"0": "negative", "1": "positive"}


@dataclass
class ClassificationTrainArguments(TrainArguments):
    """Arguments for document classification; defaults train NSMC sentiment."""

    task: ClassVar[str] = "classification"
    corpora: ClassVar[tuple[str, ...]] = ("nsmc",)
    book_task_name: ClassVar[str] = "document-classification"

    text_column: str = option("text column of --train_file/--test_file", default="text")
    label_column: str = option("label column of --train_file/--test_file", default="label")


class ClassificationTask(TextClassificationTask):
    name = "classification"
    arguments_class = ClassificationTrainArguments
    # NSMC's own files name the text column "document": predict reads them as they are.
    input_fields = (InputField("text", "문장 (text)", "예: 정말 재미있는 영화였다", aliases=("document",)),)

    def file_columns(self, args: Any) -> tuple[list[str], str]:
        return [args.text_column], args.label_column

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        """NSMC from ``<root>/nsmc/ratings_{train,test}.txt``, downloaded through Korpora when missing."""
        folder = args.corpus_root / "nsmc"
        path = folder / f"ratings_{split}.txt"
        # Only this split's file: evaluate must not download the training file it does not read.
        require_files([path], lambda: korpora_fetch("nsmc", args.corpus_root), "nsmc", args.force_download)
        examples, empty = [], []
        for row in read_table(path, ["id", "document", "label"]):
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
