"""Pair classification (the book's NLI chapter): KorNLI, KLUE-NLI, or a user's own pair file.

Everything but reading and the shape of a prediction input is inherited from
``SequenceClassificationTask``: a pair is encoded as ``[CLS] a [SEP] b [SEP]`` with
``token_type_ids`` 0 then 1, truncated longest-first so both texts keep tokens; metrics are
accuracy, macro F1 and the confusion matrix; a prediction is ``text_a``, ``text_b``, ``label`` and
``probabilities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nlpbook.arguments import ArgumentError, TrainArguments, option
from nlpbook.classification.task import SequenceClassificationTask, TextExample
from nlpbook.corpus import DataError, nonempty, read_table
from nlpbook.paircls.corpus import NLI_LABELS, read_klue_nli, read_kornli
from nlpbook.tasks import Split

__all__ = [
    "PairClassificationTrainArguments",
    "ClassificationTrainArguments",
    "PairClassificationTask",
    "PAIR_COLUMNS",
    "TASK",
]

CORPORA = ("kornli", "klue-nli")

# Column (or key) names a prediction file or dict may use for its two texts, in the order tried:
# nlpbook's own, KorNLI's header, KLUE-NLI's keys. So a KorNLI or KLUE file predicts as it is.
PAIR_COLUMNS = (("text_a", "text_b"), ("sentence1", "sentence2"), ("premise", "hypothesis"))


@dataclass
class PairClassificationTrainArguments(TrainArguments):
    """Arguments for pair classification; defaults train KorNLI.

    The custom-file columns default to KorNLI's own header (``sentence1 sentence2 gold_label``), so
    any KorNLI/SNLI-style TSV (for example ``xnli.test.ko.tsv``) is a valid ``--test_file`` as is.
    """

    task: ClassVar[str] = "paircls"
    default_corpus_name: ClassVar[str] = "kornli"
    book_task_name: ClassVar[str] = "pair-classification"

    text_a_column: str = option(
        "first text (premise) column of --train_file/--test_file", default="sentence1"
    )
    text_b_column: str = option(
        "second text (hypothesis) column of --train_file/--test_file", default="sentence2"
    )
    label_column: str = option("label column of --train_file/--test_file", default="gold_label")

    def problems(self) -> list[str]:
        found = super().problems()
        if self.downstream_corpus_name not in (*CORPORA, "custom"):
            found.append(
                f"downstream_corpus_name must be one of {', '.join(CORPORA)} or 'custom' "
                f"(with train_file/test_file), got {self.downstream_corpus_name!r}"
            )
        return found


# The book (chapter 5) writes `from ratsnlp.nlpbook.classification import
# ClassificationTrainArguments` with downstream_corpus_name="kornli"; importing this name from
# nlpbook.paircls instead gives the same cell a pair-classification run.
ClassificationTrainArguments = PairClassificationTrainArguments


class PairClassificationTask(SequenceClassificationTask):
    name = "paircls"
    arguments_class = PairClassificationTrainArguments
    corpora = CORPORA

    def read_custom(self, path: Path, args: Any) -> list[TextExample]:
        columns = [args.text_a_column, args.text_b_column, args.label_column]
        rows = read_table(path, columns)
        return [self.example_from_row(row, *columns) for row in rows]

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        if args.downstream_corpus_name == "kornli":
            return read_kornli(args.corpus_root, split, args.force_download)
        if args.downstream_corpus_name == "klue-nli":
            return read_klue_nli(args.corpus_root, split)
        raise DataError(
            args.downstream_corpus_name,
            None,
            f"unknown corpus for paircls; use {' or '.join(CORPORA)}, "
            "or 'custom' with --train_file/--test_file",
        )

    def label_names(self, train_examples: Sequence[TextExample]) -> list[str]:
        """NLI labels in their usual order (entailment, neutral, contradiction); others sorted."""
        names = super().label_names(train_examples)
        if set(names) <= set(NLI_LABELS):
            return [name for name in NLI_LABELS if name in names]
        return names

    # --- prediction inputs -------------------------------------------------------------------
    def example_from_input(self, item: Any) -> TextExample:
        """``("a", "b")``, ``["a", "b"]`` or ``{"text_a": "a", "text_b": "b"}`` -> an example."""
        if isinstance(item, dict):
            keys = next((pair for pair in PAIR_COLUMNS if all(k in item for k in pair)), None)
            texts = (item[keys[0]], item[keys[1]]) if keys else None
        elif isinstance(item, tuple | list) and len(item) == 2:
            texts = (item[0], item[1])
        else:
            texts = None
        if texts is None or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ArgumentError(
                "paircls predicts on pairs: pass (text_a, text_b) or {'text_a': ..., 'text_b': ...} "
                f"with two non-empty texts, got {item!r}"
            )
        return TextExample(texts[0], texts[1])

    def examples_from_file(self, path: str) -> list[TextExample]:
        """Pairs from a .tsv/.csv/.jsonl/.json file with columns text_a and text_b (or KorNLI's
        sentence1/sentence2, or KLUE's premise/hypothesis); other columns, a label too, are ignored."""
        rows = read_table(Path(path), [])
        keys = next((pair for pair in PAIR_COLUMNS if all(k in rows[0].values for k in pair)), None)
        if keys is None:
            wanted = " or ".join("/".join(pair) for pair in PAIR_COLUMNS)
            raise rows[0].error(f"expected columns {wanted}, found {sorted(rows[0].values)}")
        return [TextExample(nonempty(row, keys[0]), nonempty(row, keys[1]), row=row) for row in rows]


TASK = PairClassificationTask()
