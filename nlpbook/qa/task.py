"""Extractive question answering (the book's KorQuAD 1.0 chapter) as one task on the shared core.

What is its own: SQuAD-layout reading (``squad.py``), question + context windows with the book's
``doc_stride`` (``windows.py``), a span-extraction head whose raw output per token is (start logit,
end logit), n-best decoding over all windows of a question (``decode.py``) and KorQuAD 1.0's
official exact match / character F1 (``metrics.py``). Train, evaluate, predict and serve are the
core's.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nlpbook.arguments import ArgumentError, TrainArguments, option
from nlpbook.corpus import nonempty, read_table, require_files
from nlpbook.qa import metrics as korquad
from nlpbook.qa import windows
from nlpbook.qa.squad import QAExample, parse_articles, read_squad
from nlpbook.tasks import Features, Head, InputField, Split, Task

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["QATrainArguments", "QATask", "KORQUAD_FILES", "KORQUAD_URL", "TASK"]

logger = logging.getLogger(__name__)

KORQUAD_FILES = {"train": "KorQuAD_v1.0_train.json", "test": "KorQuAD_v1.0_dev.json"}
KORQUAD_URL = "https://korquad.github.io/dataset/"


@dataclass
class QATrainArguments(TrainArguments):
    """Arguments for question answering; defaults train KorQuAD 1.0 with the book's window sizes."""

    task: ClassVar[str] = "qa"
    corpora: ClassVar[tuple[str, ...]] = ("korquad",)
    book_task_name: ClassVar[str] = "question-answering"

    max_query_length: int = option("longest question in sub-tokens; longer ones are cut", default=32)
    doc_stride: int = option(
        "context sub-tokens between the starts of consecutive windows (the book's meaning; windows "
        "overlap by the window's context length minus this)",
        default=64,
    )
    max_answer_length: int = option("longest answer, in sub-tokens, that decoding may return", default=30)
    n_best: int = option("start and end candidates per window considered when decoding", default=20)
    train_articles: str | None = option(
        "use only these articles of the training file, START:END (e.g. ':100'); a split made at "
        "run time, no file is written",
        default=None,
    )
    test_articles: str | None = option(
        "use only these articles of the test file, START:END (e.g. '100:')", default=None
    )

    def problems(self) -> list[str]:
        found = super().problems()
        for name in ("max_query_length", "doc_stride", "max_answer_length", "n_best"):
            if getattr(self, name) < 1:
                found.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_query_length + 3 >= self.max_seq_length:
            found.append(
                f"max_query_length ({self.max_query_length}) leaves no room for the context in "
                f"max_seq_length ({self.max_seq_length}) windows"
            )
        for name in ("train_articles", "test_articles"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse_articles(value)
                except ValueError as error:
                    found.append(f"{name}: {error}")
        return found


class QATask(Task):
    name = "qa"
    arguments_class = QATrainArguments
    head = Head(
        "AutoModelForQuestionAnswering",
        "span_extraction",
        per_token=True,
        label_keys=("start_positions", "end_positions"),
    )
    input_fields = (
        InputField("question", "질문 (question)", "예: 이순신은 어느 시대의 장군인가?"),
        InputField("context", "본문 (context)", "예: 이순신은 조선 중기의 무신이다. ...", multiline=True),
    )
    metric_names = ("exact_match", "f1")

    # --- reading -----------------------------------------------------------------------------
    def read_file(self, path: Path, args: Any, split: Split) -> list[QAExample]:
        spec = args.train_articles if split == "train" else args.test_articles
        return read_squad(path, parse_articles(spec) if spec else None)

    def read_corpus(self, args: Any, split: Split) -> list[QAExample]:
        """KorQuAD 1.0 from ``<root>/korquad/``, downloaded from korquad.github.io when missing."""
        folder = args.corpus_root / "korquad"
        paths = [folder / KORQUAD_FILES[split]]  # only this split's: evaluate reads no training file
        require_files(paths, lambda: download_korquad(folder), "korquad", args.force_download)
        return self.read_file(folder / KORQUAD_FILES[split], args, split)

    # --- the head ----------------------------------------------------------------------------
    def label_names(self, train_examples: Sequence[QAExample]) -> list[str]:
        return ["start", "end"]  # the two outputs per token (transformers' QA heads need num_labels=2)

    def encode(
        self, examples: Sequence[QAExample], tokenizer: Any, label_names: Sequence[str] | None, args: Any
    ) -> list[Features]:
        labelled = label_names is not None and all(e.answers for e in examples)
        try:
            return windows.encode(
                examples, tokenizer, args.max_seq_length, args.doc_stride, args.max_query_length, labelled
            )
        except ValueError as error:  # window settings that cannot work with this tokenizer
            raise ArgumentError(str(error)) from None

    def outputs(self, model_output: Any) -> torch.Tensor:
        import torch

        return torch.stack([model_output.start_logits, model_output.end_logits], dim=-1)

    # --- scoring and decoding ----------------------------------------------------------------
    def metrics(
        self,
        examples: Sequence[QAExample],
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        """KorQuAD 1.0's exact match and F1, in percent, over the questions that have features."""
        from nlpbook.qa import decode as span_decode  # numpy: kept out of `nlpbook --help`

        scored = sorted({f["example_index"] for f in features})
        spans = span_decode.decode_examples(
            examples,
            features,
            [row[:, 0] for row in outputs],
            [row[:, 1] for row in outputs],
            args.n_best,
            args.max_answer_length,
        )
        predictions = {examples[i].id: spans[i]["answer"] for i in scored}
        golds = {examples[i].id: [a.text for a in examples[i].answers] for i in scored}
        return {**korquad.korquad_scores(predictions, golds), "questions": len(scored)}

    def decode(
        self,
        example: QAExample,
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        from nlpbook.qa import decode as span_decode

        span = span_decode.decode(
            example.context,
            features,
            [row[:, 0] for row in outputs],
            [row[:, 1] for row in outputs],
            args.n_best,
            args.max_answer_length,
        )
        return {"id": example.id, **span} if example.id else span

    # --- prediction inputs -------------------------------------------------------------------
    def example_from_fields(self, values: dict[str, str]) -> QAExample:
        return QAExample(id="", question=values["question"], context=values["context"])

    def examples_from_file(self, path: str) -> list[QAExample]:
        """Questions to answer: a SQuAD-layout .json (answers optional), or a .jsonl/.tsv/.csv table
        with ``question`` and ``context`` columns (other columns are ignored)."""
        if Path(path).suffix.lower() == ".json" and _is_squad(Path(path)):
            return read_squad(path, require_answers=False)
        rows = read_table(Path(path), ["question", "context"])
        return [
            QAExample(id="", question=nonempty(row, "question"), context=nonempty(row, "context"), row=row)
            for row in rows
        ]


def _is_squad(path: Path) -> bool:
    with open(path, encoding="utf-8-sig") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith("{") and '"data"' in head


def download_korquad(folder: Path) -> None:
    """Fetch the official KorQuAD 1.0 files (written whole or not at all: temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in KORQUAD_FILES.values():
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        try:
            with (
                os.fdopen(handle, "wb") as sink,
                urllib.request.urlopen(KORQUAD_URL + name, timeout=60) as source,
            ):
                shutil.copyfileobj(source, sink)
            os.replace(temp, folder / name)
        finally:
            Path(temp).unlink(missing_ok=True)
    logger.info("korquad: downloaded %s to %s", ", ".join(KORQUAD_FILES.values()), folder)


TASK = QATask()
