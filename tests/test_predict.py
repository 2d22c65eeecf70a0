"""Prediction from an export: Python API, files (streaming, order, atomic output), CLI, bad input.

One tiny classifier is trained once per session (``trained_classifier``, cached in pytest's
basetemp so test_serve*.py reuse it); tasks other than classification get an untrained export,
enough to prove the generic paths (inputs, files, output shape) work for them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import toy_sentiment_files, write_tsv
from tiny_bert import toy_sentiment

import nlpbook
from nlpbook.arguments import ArgumentError
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.cli import main
from nlpbook.corpus import DataError
from nlpbook.export import ExportError
from nlpbook.predictor import Predictor
from nlpbook.tasks import TASKS

LONG = " ".join(["정말 재밌다 영화"] * 40)  # far past the model's max_seq_length=32


def trained_classifier(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """Export of a tiny sentiment classifier (max_seq_length=32), trained once per session."""
    root = tmp_path_factory.getbasetemp() / "predict-classifier"
    export = root / "run" / "export"
    if (export / "nlpbook.json").is_file():
        return export
    args = ClassificationTrainArguments(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(root / "run"),
        **toy_sentiment_files(root, 400, 100),
        learning_rate=3e-3,
        epochs=5,  # 3 left the toy cues half learnt on some seeds (20 of 40 serve answers wrong)
        max_seq_length=32,
        save_every_n_minutes=None,
    )
    return nlpbook.train(args)


def untrained_export(task_name: str, tiny_bert: Path, folder: Path, label_names: list[str]) -> Path:
    """An export of ``task_name`` with an untrained head: for testing the generic plumbing."""
    from nlpbook.commands import load_pretrained
    from nlpbook.export import write_export
    from nlpbook.tasks import get_task

    task = get_task(task_name)
    args = task.arguments_class(
        pretrained_model_name=str(tiny_bert), downstream_model_dir=str(folder), max_seq_length=32
    )
    tokenizer, model = load_pretrained(args, task, label_names)
    return write_export(folder / "export", model, tokenizer, task, label_names, args)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    return trained_classifier(tmp_path_factory, tiny_bert)


@pytest.fixture(scope="module")
def predictor(export_dir: Path) -> Predictor:
    return Predictor.from_pretrained(export_dir, device="cpu", batch_size=4)


def test_prediction_over_several_batches_keeps_freed_memory(predictor: Predictor, monkeypatch) -> None:
    opened: list[int] = []

    @contextlib.contextmanager
    def recorded() -> Iterator[None]:
        opened.append(1)
        yield

    monkeypatch.setattr("nlpbook.inference.freed_memory_kept", recorded)
    predictor(["정말 최고 영화"] * 4)  # one batch of the fixture's 4: nothing to keep between batches
    assert opened == []
    predictor(["정말 최고 영화"] * 9)
    assert opened == [1]


def test_single_list_and_accuracy(predictor: Predictor) -> None:
    one = predictor("정말 최고 영화")
    assert set(one) == {"text", "label", "probabilities", "truncated"}
    assert one["label"] == "1" and abs(sum(one["probabilities"].values()) - 1) < 1e-6
    rows = toy_sentiment(60, seed=9)
    results = predictor([text for text, _ in rows])
    assert [r["text"] for r in results] == [text for text, _ in rows]  # input order kept
    accuracy = sum(r["label"] == label for r, (_, label) in zip(results, rows, strict=True)) / len(rows)
    assert accuracy >= 0.9


def test_length_sorted_batches_match_one_at_a_time(predictor: Predictor) -> None:
    """Per-batch padding and sorting by length must not change any prediction."""
    texts = [
        "최악",
        "오늘 친구 함께 극장 보고 왔는데 정말 감동 음악 결말",
        "지루 영화",
        LONG,
        "명작 배우 연기",
    ]
    batched = predictor(texts)
    for text, result in zip(texts, batched, strict=True):
        alone = predictor(text)
        assert alone["label"] == result["label"]
        for name, p in alone["probabilities"].items():
            assert abs(p - result["probabilities"][name]) < 1e-5


def test_truncation_is_reported(predictor: Predictor, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="nlpbook"):
        results = predictor([LONG, "짧은 영화"])
    assert [r["truncated"] for r in results] == [True, False]
    assert "1 of 2 input(s) were longer than max_seq_length=32" in caplog.text


def test_bad_python_inputs(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="input 1"):
        predictor(["좋다", "   "])
    with pytest.raises(ArgumentError, match="only offered on a CUDA GPU"):
        Predictor(predictor.export, device="cpu", dtype="bf16")
    if not torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="torch sees no CUDA GPU"):
            Predictor(predictor.export, device="cuda")


def test_predict_file_streams_in_order(predictor: Predictor, tmp_path: Path) -> None:
    rows = toy_sentiment(50, seed=5) + [(LONG, "1")]
    source = write_tsv(tmp_path / "in.tsv", ["id", "text"], [(str(i), t) for i, (t, _) in enumerate(rows)])
    out = tmp_path / "out" / "pred.jsonl"
    summary = predictor.predict_file(source, out, chunk_size=7, progress=False)  # 8 chunks
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert summary.examples == len(lines) == len(rows) and summary.truncated == 1
    assert [r["text"] for r in lines] == [t for t, _ in rows]
    assert [r["line"] for r in lines] == list(range(2, len(rows) + 2))  # header is line 1
    assert [r["label"] for r in lines] == [r["label"] for r in predictor([t for t, _ in rows])]
    assert sorted(p.name for p in out.parent.iterdir()) == ["pred.jsonl"]  # no temp file left


def test_txt_blank_lines_are_counted(
    predictor: Predictor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("정말 최고\n\n최악 영화\n  \n감동\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING, logger="nlpbook"):
        predictor.predict_file(source, out, progress=False)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in lines] == [1, 3, 5]
    assert "skipped 2 blank line(s) at line(s) [2, 4]" in caplog.text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.txt", "좋다\n".encode() + "café\n".encode("latin-1"), r"latin1.txt:2: not valid UTF-8"),
        ("columns.tsv", "review\tlabel\n좋다\t1\n".encode(), r"no text column 'text' or 'document'"),
        ("empty_text.tsv", "id\ttext\n1\t좋다\n2\t \n".encode(), r"empty_text.tsv:3: column 'text' is empty"),
        ("bad.jsonl", '{"text": "좋다"}\n{"text": \n'.encode(), r"bad.jsonl:2: invalid JSON"),
    ],
)
def test_bad_files_fail_before_any_output(
    predictor: Predictor, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises(DataError, match=message):
        predictor.predict_file(source, tmp_path / "out" / "pred.jsonl", progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failure_midway_leaves_old_output_untouched(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_tsv(tmp_path / "in.tsv", ["text"], [(t,) for t, _ in toy_sentiment(30, seed=3)])
    out = tmp_path / "pred.jsonl"
    out.write_text("previous complete output\n", encoding="utf-8")
    calls = []
    original = predictor.predict_examples

    def fail_on_third_chunk(examples: list) -> list:
        calls.append(len(examples))
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(examples)

    monkeypatch.setattr(predictor, "predict_examples", fail_on_third_chunk)
    with pytest.raises(RuntimeError, match="simulated crash"):
        predictor.predict_file(source, out, chunk_size=5, progress=False)
    assert out.read_text(encoding="utf-8") == "previous complete output\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_incomplete_model_folder(export_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    (broken / "model.safetensors").unlink()
    (broken / "nlpbook.json").unlink()
    with pytest.raises(ExportError, match=r"missing nlpbook.json, model.safetensors"):
        Predictor.from_pretrained(broken)


def test_cli_predict(export_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_tsv(tmp_path / "in.tsv", ["text"], [("정말 최고",), ("최악 졸작",)])
    out = tmp_path / "out.jsonl"
    common = ["predict", "--model_dir", str(export_dir.parent)]  # the run folder works too
    assert main([*common, "--input", str(source), "--output", str(out), "--no_progress"]) == 0
    assert [json.loads(line)["label"] for line in out.read_text(encoding="utf-8").splitlines()] == ["1", "0"]
    capsys.readouterr()
    assert main([*common, "--text", "정말 최고", "--text", "최악 졸작"]) == 0
    assert [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()] == ["1", "0"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give the inputs as --text TEXT (repeatable) or as --input FILE"),
        (
            ["--text_a", "a", "--text_b", "b"],
            "a classification model takes --text TEXT; got --text_a --text_b",
        ),
        (["--text", "좋다", "--input", "x.txt"], "give the inputs as --text TEXT"),
        (["--text", "좋다", "--bf16", "--device", "cpu"], "only offered on a CUDA GPU"),
    ],
)
def test_cli_predict_errors(
    export_dir: Path, caplog: pytest.LogCaptureFixture, extra: list[str], message: str
) -> None:
    assert main(["predict", "--model_dir", str(export_dir), *extra]) == 2
    assert message in caplog.text


def test_cli_missing_model_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    assert main(["predict", "--model_dir", str(tmp_path), "--text", "좋다"]) == 2
    assert "missing nlpbook.json, model.safetensors, tokenizer.json or vocab.txt" in caplog.text


@pytest.mark.skipif("paircls" not in TASKS, reason="pair classification task not registered yet")
def test_pair_inputs_api_file_and_cli(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = ["entailment", "neutral", "contradiction"]
    export = untrained_export("paircls", tiny_bert, tmp_path / "pair", labels)
    pair = Predictor.from_pretrained(export, device="cpu")
    one = pair(("나는 영화를 봤다", "나는 극장에 갔다"))  # a tuple is one pair
    assert one["text_b"] == "나는 극장에 갔다" and set(one["probabilities"]) == set(labels)
    many = pair([{"text_a": "가", "text_b": "나"}, ("다", LONG)])
    assert [r["text_a"] for r in many] == ["가", "다"] and [r["truncated"] for r in many] == [False, True]
    with pytest.raises(ValueError, match="input 0"):
        pair(["한 문장만"])
    source = write_tsv(tmp_path / "pairs.tsv", ["sentence1", "sentence2"], [("가", "나"), ("다", "라")])
    assert main(["predict", "--model_dir", str(export), "--input", str(source), "--no_progress"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["text_a"], r["line"]) for r in printed] == [("가", 2), ("다", 3)]
    assert main(["predict", "--model_dir", str(export), "--text_a", "가", "--text_b", "나"]) == 0
    assert json.loads(capsys.readouterr().out)["text_b"] == "나"


@pytest.mark.skipif("ner" not in TASKS, reason="NER task not registered yet")
def test_ner_inputs_api_and_file(tiny_bert: Path, tmp_path: Path) -> None:
    """Untrained tags, so only the shape is checked: spans inside the text, long text windowed whole."""
    labels = ["O", "B-LC", "I-LC", "B-PS", "I-PS"]
    export = untrained_export("ner", tiny_bert, tmp_path / "ner", labels)
    tagger = Predictor.from_pretrained(export, device="cpu", batch_size=2)
    long_text = " ".join(["이순신은 서울에서 태어났다"] * 20)  # several windows of 32 tokens
    for text, result in zip(
        ["세종은 한양에서 태어났다", long_text], tagger(["세종은 한양에서 태어났다", long_text]), strict=True
    ):
        assert result["text"] == text
        for entity in result["entities"]:
            assert entity["type"] in ("LC", "PS") and text[entity["start"] : entity["end"]] == entity["word"]
    source = tmp_path / "sentences.jsonl"
    source.write_text('{"text": "김구는 부산에 갔다"}\n{"text": "안중근"}\n', encoding="utf-8")
    out = tmp_path / "tags.jsonl"
    assert tagger.predict_file(source, out, progress=False).examples == 2
    assert [json.loads(line)["line"] for line in out.read_text(encoding="utf-8").splitlines()] == [1, 2]


def test_nsmc_own_file_is_read_by_its_document_column(predictor: Predictor, tmp_path: Path) -> None:
    """NSMC's ratings_test.txt is a table (id, document, label) with a .txt name: read line by line,
    its header and ids would be classified as reviews."""
    rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(6, seed=4), start=1)]
    source = write_tsv(tmp_path / "ratings_test.txt", ["id", "document", "label"], rows)
    out = tmp_path / "out.jsonl"
    assert predictor.predict_file(source, out, progress=False).examples == 6
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["text"], r["line"]) for r in lines] == [
        (text, n + 1) for n, (_, text, _) in enumerate(rows, 1)
    ]


def test_a_txt_table_without_its_text_column_is_refused(predictor: Predictor, tmp_path: Path) -> None:
    source = write_tsv(tmp_path / "reviews.txt", ["id", "review"], [("1", "좋다"), ("2", "싫다")])
    with pytest.raises(
        DataError, match=r"columns \['id', 'review'\] and no text column 'text' or 'document'"
    ):
        predictor.predict_file(source, tmp_path / "out.jsonl", progress=False)
    plain = tmp_path / "plain.txt"  # one text a line, no tabs: each line is a text
    plain.write_text("좋다\n싫다\n", encoding="utf-8")
    assert predictor.predict_file(plain, tmp_path / "out.jsonl", progress=False).examples == 2


def test_predict_file_refuses_chunk_size_0_and_a_folder(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("좋다\n", encoding="utf-8")
    with pytest.raises(ArgumentError, match="chunk_size must be an int of at least 1, got 0"):
        predictor.predict_file(source, tmp_path / "out.jsonl", chunk_size=0, progress=False)
    with pytest.raises(ArgumentError, match="output .* is a folder"):
        predictor.predict_file(source, tmp_path, progress=False)


def test_plain_transformers_pipeline_truncates_like_predict(export_dir: Path, predictor: Predictor) -> None:
    """The export's tokenizer is saved with model_max_length = max_seq_length (32), not the model's
    128 positions: pipeline(..., truncation=True) cuts where training and nlpbook.predict did."""
    from transformers import pipeline

    config = json.loads((export_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == 32
    classify = pipeline(
        "text-classification", model=str(export_dir), device="cpu", truncation=True, top_k=None
    )
    scores = {item["label"]: item["score"] for item in classify([LONG])[0]}
    ours = predictor(LONG)["probabilities"]
    assert scores.keys() == ours.keys()
    assert all(abs(scores[label] - ours[label]) < 1e-4 for label in ours)


def test_a_closed_pipe_ends_predict_quietly(export_dir: Path, tmp_path: Path) -> None:
    """`nlpbook predict ... | head -1`: the reader goes away; no BrokenPipeError traceback."""
    import subprocess
    import sys

    source = tmp_path / "many.txt"
    source.write_text("정말 최고 영화\n" * 20000, encoding="utf-8")
    command = [sys.executable, "-m", "nlpbook.cli", "-q", "predict", "--model_dir", str(export_dir),
               "--input", str(source), "--no_progress"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()  # what head does after its first line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141, stderr
    assert json.loads(first)["line"] == 1
    assert stderr == ""
