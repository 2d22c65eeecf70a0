"""Pair classification (the book's NLI chapter): KorNLI, KLUE-NLI, or a user's own pair file.

Only the corpora and the label order are its own: a pair is encoded ``[CLS] a [SEP] b [SEP]``
with ``token_type_ids`` 0 then 1, truncated longest-first so both texts keep tokens (``nlpbook.text``);
metrics are accuracy, macro F1 and the confusion matrix, and a prediction is ``text_a``,
``text_b``, ``label`` and ``probabilities`` (``nlpbook.text_classification``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nlpbook.arguments import TrainArguments, option
from nlpbook.paircls.corpus import NLI_LABELS, read_klue_nli, read_kornli
from nlpbook.tasks import InputField, Split
from nlpbook.text import TextExample
from nlpbook.text_classification import TextClassificationTask

__all__ = [
    "PairClassificationTrainArguments",
    "ClassificationTrainArguments",
    "PairClassificationTask",
    "PAIR_FIELDS",
    "TASK",
]

# The two inputs, and the column (or key) names a prediction file or dict may use for them:
# nlpbook's own, KorNLI's header, KLUE-NLI's keys. So a KorNLI or KLUE file predicts as it is.
PAIR_FIELDS = (
    InputField("text_a", "전제 (text_a)", "예: 나는 오늘 영화를 봤다", aliases=("sentence1", "premise")),
    InputField("text_b", "가설 (text_b)", "예: 나는 오늘 극장에 갔다", aliases=("sentence2", "hypothesis")),
)


@dataclass
class PairClassificationTrainArguments(TrainArguments):
    """Arguments for pair classification; defaults train KorNLI.

    The custom-file columns default to KorNLI's own header (``sentence1 sentence2 gold_label``), so
    any KorNLI/SNLI-style TSV (for example ``xnli.test.ko.tsv``) is a valid ``--test_file`` as is.
    """

    task: ClassVar[str] = "paircls"
    corpora: ClassVar[tuple[str, ...]] = ("kornli", "klue-nli")
    book_task_name: ClassVar[str] = "pair-classification"

    text_a_column: str = option(
        "first text (premise) column of --train_file/--test_file", default="sentence1"
    )
    text_b_column: str = option(
        "second text (hypothesis) column of --train_file/--test_file", default="sentence2"
    )
    label_column: str = option("label column of --train_file/--test_file", default="gold_label")


# The book (chapter 5) writes `from ratsnlp.nlpbook.classification import
# ClassificationTrainArguments` with downstream_corpus_name="kornli"; importing this name from
# nlpbook.paircls instead gives the same cell a pair-classification run.
ClassificationTrainArguments = PairClassificationTrainArguments


class PairClassificationTask(TextClassificationTask):
    name = "paircls"
    arguments_class = PairClassificationTrainArguments
    input_fields = PAIR_FIELDS

    def file_columns(self, args: Any) -> tuple[list[str], str]:
        return [args.text_a_column, args.text_b_column], args.label_column

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        if args.downstream_corpus_name == "kornli":
            return read_kornli(args.corpus_root, split, args.force_download)
        return read_klue_nli(args.corpus_root, split)

    def label_names(self, train_examples: Sequence[TextExample]) -> list[str]:
        """NLI labels in their usual order (entailment, neutral, contradiction); others sorted."""
        names = super().label_names(train_examples)
        if set(names) <= set(NLI_LABELS):
            return [name for name in NLI_LABELS if name in names]
        return names


TASK = PairClassificationTask()
