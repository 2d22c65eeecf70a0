"""Data that used to be accepted silently: now an error naming file and line, or a normalisation
that says so in a warning. Each error case runs the real ``nlpbook.train`` with model loading and
the Trainer replaced by functions that fail the test (``no_model_work``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.files import file_text, write
from reliability.test_bad_input import (  # noqa: F401 (no_model_work: a fixture)
    TABLE_TASKS,
    arguments,
    assert_fails_before_training,
    no_model_work,
)

pytestmark = pytest.mark.usefixtures("no_model_work")


def table_lines(task: str, seed: int = 1, separator: str = "\t") -> list[str]:
    """A good table file of ``task`` as lines (header first); the toy texts hold no comma or quote."""
    return file_text(task, seed=seed).rstrip("\n").replace("\t", separator).split("\n")


def train_and_test(task: str, tmp_path: Path, train_text: str, suffix: str) -> tuple[Path, Path]:
    train = write(tmp_path / f"train{suffix}", train_text)
    test = write(tmp_path / "test.tsv", file_text(task, seed=2))
    return train, test


# --- a header line in the middle: two files concatenated ---------------------------------------------
@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
@pytest.mark.parametrize("task", TABLE_TASKS)
def test_header_again_mid_file(task: str, suffix: str, tiny_bert: Path, tmp_path: Path) -> None:
    separator = "," if suffix == ".csv" else "\t"
    lines = table_lines(task, 1, separator) + table_lines(task, 3, separator)  # header again at 26
    train, test = train_and_test(task, tmp_path, "\n".join(lines) + "\n", suffix)
    args = arguments(task, tiny_bert, tmp_path, train, test)
    expected = "the header line appears again at line 26: two files concatenated"
    assert_fails_before_training(args, train, 26, expected)
