"""Sentence similarity (KorSTS): two sentences -> a similarity score, learnt by regression.

The proof that a task is one module: reading tables and encoding pairs come from ``nlpbook.text``;
what is KorSTS's own is the corpus, the score's declared range, a regression head
(``problem_type="regression"``, one output, MSE loss) and its metrics, Pearson and Spearman
correlation (scipy) and the mean squared error.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nlpbook.arguments import TrainArguments, option
from nlpbook.corpus import DataError, korpora_fetch, read_table, require_files
from nlpbook.tasks import Features, Head, InputField, Split
from nlpbook.text import TextExample, TextTask

if TYPE_CHECKING:
    import numpy as np

__all__ = ["STSTrainArguments", "STSTask", "KORSTS_FILES", "TASK"]

logger = logging.getLogger(__name__)

# KorSTS in Korpora's layout: <root>/korsts/sts-{train,dev,test}.tsv. Training validates on dev;
# score the held-out test set with evaluate --test_file <root>/korsts/sts-test.tsv.
KORSTS_FILES = {"train": "sts-train.tsv", "test": "sts-dev.tsv"}
KORSTS_COLUMNS = ["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]
STS_FIELDS = (
    InputField("text_a", "문장 1 (text_a)", "예: 한 남자가 기타를 치고 있다.", aliases=("sentence1",)),
    InputField("text_b", "문장 2 (text_b)", "예: 남자가 악기를 연주하고 있다.", aliases=("sentence2",)),
)


@dataclass
class STSTrainArguments(TrainArguments):
    """Arguments for sentence similarity; defaults train KorSTS (scores 0 to 5)."""

    task: ClassVar[str] = "sts"
    corpora: ClassVar[tuple[str, ...]] = ("korsts",)

    text_a_column: str = option("first sentence column of --train_file/--test_file", default="sentence1")
    text_b_column: str = option("second sentence column of --train_file/--test_file", default="sentence2")
    score_column: str = option("score column of --train_file/--test_file", default="score")
    min_score: float = option("lowest score the data may hold (KorSTS: 0)", default=0.0)
    max_score: float = option("highest score the data may hold (KorSTS: 5)", default=5.0)

    def problems(self) -> list[str]:
        found = super().problems()
        if not self.min_score < self.max_score:
            found.append(f"min_score ({self.min_score}) must be below max_score ({self.max_score})")
        return found


class STSTask(TextTask):
    name = "sts"
    arguments_class = STSTrainArguments
    head = Head("AutoModelForSequenceClassification", "regression")
    input_fields = STS_FIELDS
    metric_names = ("pearson", "spearman", "mse")

    # --- reading -----------------------------------------------------------------------------
    def file_columns(self, args: Any) -> tuple[list[str], str]:
        return [args.text_a_column, args.text_b_column], args.score_column

    def read_corpus(self, args: Any, split: Split) -> list[TextExample]:
        folder = args.corpus_root / "korsts"
        paths = [folder / KORSTS_FILES[split]]  # only this split's: evaluate reads no training file
        require_files(paths, lambda: korpora_fetch("korsts", args.corpus_root), "korsts", args.force_download)
        rows = read_table(folder / KORSTS_FILES[split], KORSTS_COLUMNS)
        return [self.example_from_row(row, ["sentence1", "sentence2"], "score") for row in rows]

    def prepare_labels(self, examples: list[TextExample], args: Any) -> list[TextExample]:
        """Every score is a number in the declared range, or the file and line are named."""
        for example in examples:
            if example.label is None:
                continue
            where = (example.row.path, example.row.line) if example.row else ("scores", None)
            try:
                score = float(example.label)
            except ValueError:
                raise DataError(*where, f"score {example.label!r} is not a number") from None
            if not args.min_score <= score <= args.max_score:  # NaN fails this too
                raise DataError(
                    *where,
                    f"score {example.label} is outside the declared range {args.min_score:g} to "
                    f"{args.max_score:g} (set --min_score/--max_score for data on another scale)",
                )
        return examples

    # --- the head ----------------------------------------------------------------------------
    def label_names(self, train_examples: Sequence[TextExample]) -> list[str]:
        return ["score"]  # one output; also what plain transformers' id2label calls it

    def targets(self, labels: Sequence[str], label_names: Sequence[str]) -> list[float]:
        return [float(label) for label in labels]

    # --- scoring and decoding ----------------------------------------------------------------
    def metrics(
        self,
        examples: Sequence[TextExample],
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        from scipy.stats import pearsonr, spearmanr

        gold = [float(f["labels"]) for f in features]
        predicted = [float(row[0]) for row in outputs]
        with warnings.catch_warnings():  # constant predictions: correlation undefined, said below
            warnings.simplefilter("ignore")
            pearson = float(pearsonr(predicted, gold)[0]) if len(gold) > 1 else math.nan
            spearman = float(spearmanr(predicted, gold)[0]) if len(gold) > 1 else math.nan
        if math.isnan(pearson) or math.isnan(spearman):
            logger.warning("sts: predictions (or gold scores) are constant: correlations reported as 0")
        return {
            "pearson": 0.0 if math.isnan(pearson) else pearson,
            "spearman": 0.0 if math.isnan(spearman) else spearman,
            "mse": sum((p - g) ** 2 for p, g in zip(predicted, gold, strict=True)) / max(len(gold), 1),
        }

    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        """The regression output as it is: it may stray a little outside the training range."""
        return {"score": float(output[0])}


TASK = STSTask()
