"""The shared base of tasks whose input is one text or a pair of texts, with one target each.

Document classification, pair classification and sentence similarity differ only in their corpora
and their output side (a class, or a score); reading table files, encoding ``[CLS] a [SEP] b
[SEP]``, turning user inputs into examples and reading prediction files are written here once.
The input fields a task declares (``text``, or ``text_a``/``text_b``) decide all of those.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpbook.corpus import Row, nonempty, read_table, read_text_rows
from nlpbook.tasks import Features, Split, Task

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TextExample", "TextTask", "cut_long"]

CHARS_PER_TOKEN = 8  # a first guess at how many characters hold max_seq_length tokens; doubled as needed


@dataclass(frozen=True)
class TextExample:
    text_a: str
    text_b: str | None = None
    label: str | None = None  # as written in the file; the task turns it into a target
    row: Row | None = None  # where it was read from, for error messages


def cut_long(text: str, tokenizer: Any, max_tokens: int) -> str:
    """A prefix of ``text`` that truncates to exactly the same tokens, for texts far longer than a
    model reads: tokenising a 50 MB line whole took 83 s and 4.9 GB only to keep 128 tokens.

    The prefix ends at whitespace, so its words are whole and tokenise as in the full text, and it
    holds more than ``max_tokens`` tokens, so truncation keeps the same ones and still reports the
    text as truncated. A text with no whitespace to cut at is left whole.
    """
    length = max_tokens * CHARS_PER_TOKEN
    while length < len(text):
        cut = text.rfind(" ", 0, length)
        if cut <= 0:
            return text
        prefix = text[:cut]
        if len(tokenizer(prefix, add_special_tokens=False, verbose=False)["input_ids"]) > max_tokens:
            return prefix
        length *= 2
    return text


class TextTask(Task):
    """One text (input field ``text``) or a pair (``text_a``, ``text_b``) -> one target."""

    @property
    def is_pair(self) -> bool:
        return len(self.input_fields) == 2

    # --- reading -----------------------------------------------------------------------------
    @abstractmethod
    def file_columns(self, args: Any) -> tuple[list[str], str]:
        """(text column(s), label column) of a user's own labelled file."""

    def read(self, args: Any, split: Split) -> list[TextExample]:
        return self.prepare_labels(super().read(args, split), args)

    def read_file(self, path: Path, args: Any, split: Split) -> list[TextExample]:
        texts, label = self.file_columns(args)
        return [self.example_from_row(row, texts, label) for row in read_table(path, [*texts, label])]

    @staticmethod
    def example_from_row(row: Row, texts: Sequence[str], label: str | None) -> TextExample:
        label_value = row.values[label].strip() if label else None
        if label and not label_value:
            raise row.error(f"column {label!r} is empty; expected a label")
        second = nonempty(row, texts[1]) if len(texts) > 1 else None
        return TextExample(nonempty(row, texts[0]), second, label_value, row)

    def prepare_labels(self, examples: list[TextExample], args: Any) -> list[TextExample]:
        """Check (and where unambiguous, normalise) the labels as read; ``DataError`` names the line."""
        return examples

    @staticmethod
    def relabel(example: TextExample, label: str) -> TextExample:
        return replace(example, label=label)

    # --- encoding ----------------------------------------------------------------------------
    @abstractmethod
    def targets(self, labels: Sequence[str], label_names: Sequence[str]) -> list[Any]:
        """The model's targets (class ids, scores) for labels as read."""

    def encode(
        self, examples: Sequence[TextExample], tokenizer: Any, label_names: Sequence[str] | None, args: Any
    ) -> list[Features]:
        if not examples:
            return []
        bound = args.max_seq_length
        encoded = tokenizer(
            [cut_long(e.text_a, tokenizer, bound) for e in examples],
            [cut_long(e.text_b or "", tokenizer, bound) for e in examples] if self.is_pair else None,
            truncation="longest_first",  # pairs: trim the longer text first, keep both
            max_length=args.max_seq_length,
            return_token_type_ids=True,
            return_attention_mask=False,
        )
        labelled = label_names is not None and all(e.label is not None for e in examples)
        targets = self.targets([e.label for e in examples], label_names) if labelled else None
        features = []
        for index in range(len(examples)):
            feature: Features = {
                "input_ids": encoded["input_ids"][index],
                "token_type_ids": encoded["token_type_ids"][index],
                "example_index": index,
                # the fast tokenizer keeps what truncation cut off: predict reports it to the user
                "truncated": bool(encoded.encodings[index].overflowing),
            }
            if targets is not None:
                feature["labels"] = targets[index]
            features.append(feature)
        return features

    # --- decoding ----------------------------------------------------------------------------
    @abstractmethod
    def prediction(self, output: np.ndarray, label_names: Sequence[str]) -> dict[str, Any]:
        """The prediction part of a result (a label and probabilities, a score) from one output row."""

    def decode(
        self,
        example: TextExample,
        features: Sequence[Features],
        outputs: Sequence[np.ndarray],
        label_names: Sequence[str],
        args: Any,
    ) -> dict[str, Any]:
        texts = (example.text_a, example.text_b)
        result: dict[str, Any] = {f.name: text for f, text in zip(self.input_fields, texts, strict=False)}
        return {**result, **self.prediction(outputs[0], label_names)}

    # --- prediction inputs -------------------------------------------------------------------
    def example_from_fields(self, values: dict[str, str]) -> TextExample:
        names = [f.name for f in self.input_fields]
        return TextExample(values[names[0]], values[names[1]] if self.is_pair else None)

    def examples_from_file(self, path: str) -> list[TextExample]:
        """Inputs from a .txt (one text a line: single-text tasks) or a table whose header names the
        input fields (or their aliases, e.g. KorNLI's sentence1/sentence2); other columns, a label
        too, are ignored."""
        if not self.is_pair:
            field = self.input_fields[0]
            rows = read_text_rows(path, field.name, field.aliases)
            return [TextExample(row.values[field.name], row=row) for row in rows]
        rows = read_table(Path(path), [])
        header = rows[0].values
        choices = [(f.name, *f.aliases) for f in self.input_fields]
        for columns in zip(*choices, strict=True):
            if all(column in header for column in columns):
                return [
                    TextExample(nonempty(row, columns[0]), nonempty(row, columns[1]), row=row) for row in rows
                ]
        wanted = " or ".join("/".join(columns) for columns in zip(*choices, strict=True))
        raise rows[0].error(f"expected columns {wanted}, found {sorted(header)}")
