"""Every bad data file fails before any model work, naming the file, the line and what was expected.

Each case runs the real ``nlpbook.train``/``nlpbook.evaluate`` with model loading and the Trainer
replaced by functions that fail the test: the error must come from reading the data, and nothing
(checkpoint, logs, arguments) may be written into the model folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nlpbook
from nlpbook import commands
from nlpbook.corpus import DataError
from nlpbook.export import EXPORT_DIR, write_export
from nlpbook.tasks import get_task, task_names
from reliability.files import TASK_FILES, file_text, write

TABLE_TASKS = [name for name, spec in TASK_FILES.items() if spec.header]


@pytest.fixture
def no_model_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("bad data reached model loading or the Trainer")

    monkeypatch.setattr(commands, "load_pretrained", forbidden)
    monkeypatch.setattr(commands, "build_trainer", forbidden)


def arguments(task: str, tiny_bert: Path, out: Path, train: Path, test: Path, **extra: object):
    return get_task(task).arguments_class(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(out / "model"),
        train_file=str(train),
        test_file=str(test),
        **{**TASK_FILES[task].arguments, **extra},
    )


def assert_fails_before_training(args, path: Path, line: int | None, expected: str) -> None:
    with pytest.raises(DataError) as caught:
        nlpbook.train(args)
    message = str(caught.value)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert message.startswith(where), message
    assert re.search(expected, message), message
    written = [p.name for p in args.model_dir.iterdir()] if args.model_dir.exists() else []
    assert set(written) <= {".nlpbook.lock"}, f"files written before the data was checked: {written}"


def test_every_task_is_covered() -> None:
    assert set(task_names()) <= set(TASK_FILES), "add a TaskFiles entry for the new task in files.py"


# --- cases for every task ------------------------------------------------------------------------
def broken_line(task: str) -> str:
    """Line 3 of a good file, made invalid as UTF-8 (cp949 bytes, as Excel on Korean Windows saves)."""
    return file_text(task).split("\n")[2]


COMMON_CASES = {
    "missing file": (None, None, "file not found"),
    "empty file": (b"", None, "file is empty"),
    "only blank lines": (b"\n  \n\t\n", None, "file is empty"),
    "not UTF-8": ("cp949", 3, r"not valid UTF-8 \(byte 0x[0-9a-f]{2}\); re-save the file as UTF-8"),
}


@pytest.mark.parametrize("case", list(COMMON_CASES))
@pytest.mark.parametrize("task", sorted(TASK_FILES))
def test_unusable_training_file(task: str, case: str, tiny_bert: Path, tmp_path: Path, no_model_work) -> None:
    content, line, expected = COMMON_CASES[case]
    suffix = TASK_FILES[task].suffix
    test = write(tmp_path / f"test{suffix}", file_text(task, seed=2))
    train = tmp_path / f"train{suffix}"
    if content == "cp949":
        lines = file_text(task).split("\n")
        data = "\n".join(lines[:2]).encode() + b"\n" + lines[2].encode("cp949") + b"\n"
        write(train, data + "\n".join(lines[3:]).encode())
    elif content is not None:
        write(train, content)
    assert_fails_before_training(arguments(task, tiny_bert, tmp_path, train, test), train, line, expected)


@pytest.mark.parametrize("task", sorted(TASK_FILES))
def test_unseen_label_in_the_test_file_fails_before_training(
    task: str, tiny_bert: Path, tmp_path: Path, no_model_work
) -> None:
    spec = TASK_FILES[task]
    if spec.unseen_label_line is None:
        pytest.skip(f"{task} has no label a model cannot take")
    train = write(tmp_path / f"train{spec.suffix}", file_text(task))
    test_lines = file_text(task, seed=2).split("\n")
    test_lines.insert(2, spec.unseen_label_line)  # becomes line 3
    test = write(tmp_path / f"test{spec.suffix}", "\n".join(test_lines) + "\n")
    args = arguments(task, tiny_bert, tmp_path, train, test)
    assert_fails_before_training(args, test, 3, spec.unseen_label_message)


@pytest.mark.parametrize("task", sorted(TASK_FILES))
def test_unseen_label_at_evaluation_names_file_and_line(task: str, tiny_bert: Path, tmp_path: Path) -> None:
    """evaluate() scores an export; a test label the export cannot predict is named, not skipped."""
    spec = TASK_FILES[task]
    if spec.unseen_label_line is None:
        pytest.skip(f"{task} has no label a model cannot take")
    train = write(tmp_path / f"train{spec.suffix}", file_text(task))
    test_lines = file_text(task, seed=2).split("\n")
    test_lines.insert(2, spec.unseen_label_line)
    test = write(tmp_path / f"test{spec.suffix}", "\n".join(test_lines) + "\n")
    args = arguments(task, tiny_bert, tmp_path, train, test)
    task_ = get_task(task)
    labels = task_.label_names(task_.read(args, "train"))
    from transformers import AutoTokenizer

    model = task_.head.model_class().from_pretrained(tiny_bert, num_labels=len(labels))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    write_export(args.model_dir / EXPORT_DIR, model, tokenizer, task_, labels, args)
    with pytest.raises(DataError, match=rf"^{re.escape(str(test))}:3: .*{spec.unseen_label_message}"):
        nlpbook.evaluate(args)
    assert not (args.model_dir / EXPORT_DIR / "evaluation.json").exists()


@pytest.mark.parametrize("task", sorted(TASK_FILES))
def test_crlf_and_bom_read_like_plain_utf8(task: str, tiny_bert: Path, tmp_path: Path) -> None:
    spec = TASK_FILES[task]
    path = tmp_path / f"train{spec.suffix}"
    args = arguments(task, tiny_bert, tmp_path, path, path)
    write(path, file_text(task))
    plain = get_task(task).read(args, "train")
    write(path, ("\ufeff" + file_text(task).replace("\n", "\r\n")).encode("utf-8"))
    assert get_task(task).read(args, "train") == plain


# --- table tasks (classification, paircls): header, columns, empty cells --------------------------
def table_case(task: str, case: str) -> tuple[str, int, str]:
    """(file text, bad line, expected message) for a table file broken at line 3 (or its header)."""
    spec = TASK_FILES[task]
    assert spec.header is not None and spec.text_column is not None
    lines = file_text(task).rstrip("\n").split("\n")
    columns = lines[2].split("\t")
    n = len(spec.header)
    if case == "no header":
        return "\n".join(lines[1:]), 1, r"header is missing column\(s\)"
    if case == "other header":
        lines[0] = "\t".join(["sentence", *spec.header[1:]])
        return "\n".join(lines), 1, rf"header is missing column\(s\) \['{spec.header[0]}'\]"
    if case == "too few columns":
        lines[2] = "\t".join(columns[:-1])
        return "\n".join(lines), 3, f"expected {n} tab-separated columns .*found {n - 1}"
    if case == "too many columns":
        lines[2] = "\t".join([*columns, "extra"])
        return "\n".join(lines), 3, f"expected {n} tab-separated columns .*found {n + 1}"
    if case in ("empty text", "whitespace text"):
        columns[spec.text_column] = "" if case == "empty text" else "  \u3000 "
        lines[2] = "\t".join(columns)
        return "\n".join(lines), 3, rf"column '{spec.header[spec.text_column]}' is empty; expected text"
    if case == "empty label":
        columns[-1] = " "
        lines[2] = "\t".join(columns)
        return "\n".join(lines), 3, "is empty; expected a label"
    raise ValueError(case)


TABLE_CASES = [
    "no header",
    "other header",
    "too few columns",
    "too many columns",
    "empty text",
    "whitespace text",
    "empty label",
]


@pytest.mark.parametrize("case", TABLE_CASES)
@pytest.mark.parametrize("task", TABLE_TASKS)
def test_bad_table_line(task: str, case: str, tiny_bert: Path, tmp_path: Path, no_model_work) -> None:
    text, line, expected = table_case(task, case)
    train = write(tmp_path / "train.tsv", text + "\n")
    test = write(tmp_path / "test.tsv", file_text(task, seed=2))
    assert_fails_before_training(arguments(task, tiny_bert, tmp_path, train, test), train, line, expected)


# --- NER: tags --------------------------------------------------------------------------------------
NER_CASES = {
    "token without tag": ("세종\tB-PER\n대왕\n", 2, "expected a token and a tag"),
    "I- without B-": ("세종\tO\n대왕\tI-PER\n", 2, "must open with B-PER"),
    "I- of another type": ("세종\tB-LOC\n대왕\tI-PER\n", 2, "follows B-LOC"),
    "unknown scheme (BIOES)": ("세종\tS-PER\n", 1, r"not BIO \(O, B-TYPE or I-TYPE\)"),
    "Naver tags in a CoNLL file": ("세종\tPER_B\n", 1, "ner_format='naver'"),
}


@pytest.mark.parametrize("case", list(NER_CASES))
def test_bad_ner_tags(case: str, tiny_bert: Path, tmp_path: Path, no_model_work) -> None:
    if "ner" not in task_names():
        pytest.skip("no NER task registered")
    text, line, expected = NER_CASES[case]
    train = write(tmp_path / "train.conll", text)
    test = write(tmp_path / "test.conll", file_text("ner", seed=2))
    assert_fails_before_training(arguments("ner", tiny_bert, tmp_path, train, test), train, line, expected)
