"""Data that used to be accepted silently: now an error naming file and line, or a normalisation
that says so in a warning. Each error case runs the real ``nlpbook.train`` with model loading and
the Trainer replaced by functions that fail the test (``no_model_work``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from nlpbook.corpus import DataError, read_text_rows
from nlpbook.paircls.corpus import read_klue_nli
from nlpbook.tasks import get_task, task_names
from reliability.files import TASK_FILES, file_text, write
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


# --- CSV quotes -----------------------------------------------------------------------------------------
def quoted(line: str, before: str = "", after: str = "") -> str:
    text, rest = line.split(",", 1)
    return f"{before}{text}{after},{rest}"


CSV_QUOTE_CASES = {
    # a quote opened at line 3 and never closed: the lenient reader took the rest of the file as one text
    "never closed": (
        {3: ('"', "")},
        3,
        "a quoted field opens in this record and runs on to the end of the file",
    ),
    # closed by a stray quote at line 9: lines 3-9 became one example
    "closed by a stray quote": (
        {3: ('"', ""), 9: ('그 "', "")},
        3,
        "a quoted field opens in this record and runs on to line 9: an unbalanced quote",
    ),
    # quotes around part of a field: read as '인생 영화 강추', the quotes dropped
    "text after the closing quote": ({3: ('"인생 영화" ', "")}, 3, "text follows the closing quote"),
}


@pytest.mark.parametrize("case", list(CSV_QUOTE_CASES))
@pytest.mark.parametrize("task", TABLE_TASKS)
def test_unbalanced_csv_quote(task: str, case: str, tiny_bert: Path, tmp_path: Path) -> None:
    edits, line, expected = CSV_QUOTE_CASES[case]
    lines = table_lines(task, separator=",")
    for number, (before, after) in edits.items():
        lines[number - 1] = quoted(lines[number - 1], before, after)
    train, test = train_and_test(task, tmp_path, "\n".join(lines) + "\n", ".csv")
    assert_fails_before_training(arguments(task, tiny_bert, tmp_path, train, test), train, line, expected)


@pytest.mark.parametrize("task", TABLE_TASKS)
def test_closed_quotes_with_line_breaks_are_read_and_warned(
    task: str, tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Legal CSV: a quoted field holding a line break is one text. A pair of stray quotes that
    joins rows 3-9 is legal too, so both are read, and both are listed in a warning."""
    lines = table_lines(task, separator=",")
    lines[2] = quoted(lines[2], '"', '\n다시 볼래"')  # lines 3-4: one text with a line break
    lines[8] = quoted(lines[8], '"')  # opens at line 10 ...
    lines[14] = quoted(lines[14], "", '"')  # ... closes at line 16: lines 10-16 read as one row
    train, test = train_and_test(task, tmp_path, "\n".join(lines) + "\n", ".csv")
    args = arguments(task, tiny_bert, tmp_path, train, test)
    with caplog.at_level(logging.WARNING):
        examples = get_task(task).read(args, "train")
    assert len(examples) == 24 - 6 and examples[1].text_a.endswith("\n다시 볼래")
    assert "quoted line breaks: read as one row each, at lines ['3-4', '10-16']" in caplog.text


# --- JSON values that are not text ----------------------------------------------------------------------
def jsonl_text(lines: list[str]) -> str:
    header, *rows = (line.split("\t") for line in lines)
    return "".join(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False) + "\n" for row in rows)


@pytest.mark.parametrize(
    ("value", "kind"),
    [(["좋다", "싫다"], "array"), (12345, "number"), ({"a": 1}, "object"), (True, "boolean")],
)
@pytest.mark.parametrize("task", TABLE_TASKS)
def test_json_text_that_is_not_a_string(
    task: str, value: object, kind: str, tiny_bert: Path, tmp_path: Path
) -> None:
    records = [json.loads(line) for line in jsonl_text(table_lines(task)).splitlines()]
    key = TASK_FILES[task].header[TASK_FILES[task].text_column]
    records[2][key] = value  # line 3
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    train, test = train_and_test(task, tmp_path, text, ".jsonl")
    expected = rf"key '{key}' holds a JSON {kind} \(.*\), not text; expected a string"
    assert_fails_before_training(arguments(task, tiny_bert, tmp_path, train, test), train, 3, expected)


def test_json_number_labels_are_read_as_text(tiny_bert: Path, tmp_path: Path) -> None:
    records = [json.loads(line) for line in jsonl_text(table_lines("classification")).splitlines()]
    text = "".join(json.dumps({**r, "label": int(r["label"])}) + "\n" for r in records)
    train, test = train_and_test("classification", tmp_path, text, ".jsonl")
    args = arguments("classification", tiny_bert, tmp_path, train, test)
    task = get_task("classification")
    assert task.label_names(task.read(args, "train")) == ["0", "1"]


def test_klue_nli_and_prediction_inputs_refuse_non_text(tmp_path: Path) -> None:
    """The two readers that take text without a task's read_custom: KLUE-NLI's JSON list, and
    the input file of ``predict``."""
    klue = [
        {"premise": "영화 좋다", "hypothesis": "최고 영화", "gold_label": "entailment"},
        {"premise": ["영화", "좋다"], "hypothesis": "별로", "gold_label": "contradiction"},
    ]
    write(tmp_path / "klue-nli" / "klue_nli_train.json", json.dumps(klue, ensure_ascii=False, indent=1))
    with pytest.raises(DataError, match=r"klue_nli_train.json:7: key 'premise' holds a JSON array"):
        read_klue_nli(tmp_path, "train")
    inputs = write(tmp_path / "inputs.jsonl", '{"text": "좋다"}\n{"text": 5}\n')
    with pytest.raises(DataError, match=r"inputs.jsonl:2: key 'text' holds a JSON number \(5\)"):
        read_text_rows(inputs)


# --- NER entity types that differ only in case -----------------------------------------------------------
def test_ner_types_differing_in_case_become_one(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if "ner" not in task_names():
        pytest.skip("no NER task registered")
    lines = file_text("ner").split("\n")
    lower = [n for n, line in enumerate(lines, start=1) if line.endswith("B-PER")][:3]
    for n in lower:
        lines[n - 1] = lines[n - 1].replace("B-PER", "B-per")
    train = write(tmp_path / "train.conll", "\n".join(lines))
    args = arguments("ner", tiny_bert, tmp_path, train, train)
    task = get_task("ner")
    with caplog.at_level(logging.WARNING):
        examples = task.read(args, "train")
    assert {e.type for x in examples for e in x.entities} == {"LOC", "PER"}
    assert not any("per" in label for label in task.label_names(examples))
    assert "entity types {'PER': 21, 'per': 3} differ only in case; read as 'PER'" in caplog.text
    assert f"(other spellings at lines {{'per': {lower}}})" in caplog.text
