"""NER end to end on the tiny BERT: it learns, exports, reloads, resumes; readers and bad files."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import settings
from tiny_bert import FILLER, NAMES, PLACES
from transformers import AutoModelForTokenClassification, AutoTokenizer

import nlpbook
from nlpbook.cli import main
from nlpbook.corpus import DataError
from nlpbook.ner import Entity, NERExample, NERTrainArguments, read_ner_file
from nlpbook.ner.task import TASK
from nlpbook.predictor import Predictor, run_model

SEP = "\u241e"


def toy_ner(n: int, seed: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """Sentences of filler words with one name (PER) and maybe a place (LOC): learnable fast.

    Each sentence is a list of (word, type) with type "" for filler."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = [(w, "") for w in rng.sample(FILLER, rng.randint(2, 6))]
        words.insert(rng.randrange(len(words) + 1), (rng.choice(NAMES), "PER"))
        if rng.random() < 0.6:
            words.insert(rng.randrange(len(words) + 1), (rng.choice(PLACES), "LOC"))
        sentences.append(words)
    return sentences


def book_line(words: list[tuple[str, str]]) -> str:
    plain = " ".join(w for w, _ in words)
    annotated = " ".join(f"<{w}:{t}>" if t else w for w, t in words)
    return f"{plain}{SEP}{annotated}"


def conll_text(sentences: list[list[tuple[str, str]]]) -> str:
    return "\n\n".join("\n".join(f"{w}\t{'B-' + t if t else 'O'}" for w, t in s) for s in sentences) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def book_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book's layout: <root>/ner/train.txt and val.txt."""
    root = tmp_path_factory.mktemp("korpora-ner")
    for name, n, seed in (("train.txt", 320, 1), ("val.txt", 80, 2)):
        write(root / "ner" / name, "\n".join(book_line(s) for s in toy_ner(n, seed)) + "\n")
    return root


def ner_args(tiny_bert: Path, root: Path, model_dir: Path, **overrides: object) -> NERTrainArguments:
    values: dict[str, object] = dict(
        pretrained_model_name=str(tiny_bert),
        downstream_corpus_root_dir=str(root),
        downstream_model_dir=str(model_dir),
        max_seq_length=32,
        batch_size=16,
        learning_rate=3e-3,
        epochs=4,
        accelerator="cpu",
        seed=3,
    )
    values.update(overrides)
    return NERTrainArguments(**values)


@pytest.fixture(scope="module")
def trained(
    tiny_bert: Path, book_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, NERTrainArguments]:
    args = ner_args(tiny_bert, book_root, tmp_path_factory.mktemp("ner-run"))
    return nlpbook.train(args), args


def test_learns_entities_above_chance(trained: tuple[Path, NERTrainArguments]) -> None:
    export, args = trained
    metrics = nlpbook.evaluate(args)
    assert metrics["f1"] > 0.8, metrics  # an untrained tagger scores about 0
    assert metrics["span_f1"] > 0.8
    assert set(metrics["per_type"]) == {"PER", "LOC"}
    assert 0.9 < metrics["token_accuracy"] <= 1.0
    assert json.loads((export / "evaluation.json").read_text(encoding="utf-8"))["f1"] == metrics["f1"]


def test_predict_returns_character_spans(trained: tuple[Path, NERTrainArguments]) -> None:
    export, _ = trained
    text = "오늘 유관순 보고 부산 극장"
    result = nlpbook.predict(export, [text])[0]
    assert result["text"] == text
    found = {(e["type"], e["word"]) for e in result["entities"]}
    assert ("PER", "유관순") in found and ("LOC", "부산") in found
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["word"]


def test_export_reloads_with_identical_predictions(trained: tuple[Path, NERTrainArguments]) -> None:
    export, _ = trained
    meta = json.loads((export / "nlpbook.json").read_text(encoding="utf-8"))
    config = json.loads((export / "config.json").read_text(encoding="utf-8"))
    assert meta["label_names"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert config["id2label"] == {str(i): name for i, name in enumerate(meta["label_names"])}
    texts = [" ".join(w for w, _ in s) for s in toy_ner(20, 9)]
    first = Predictor.from_pretrained(export)
    second = Predictor.from_pretrained(export)
    assert first(texts) == second(texts)
    # plain transformers reads the same weights and gives the logits nlpbook decoded from
    model = AutoModelForTokenClassification.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    features = TASK.encode([NERExample(t) for t in texts[:3]], tokenizer, None, settings(32))
    with torch.inference_mode():
        plain = [model(torch.tensor([f["input_ids"]])).logits[0].numpy() for f in features]
    ours = run_model(TASK, first.export.model, features, tokenizer.pad_token_id)
    for a, b in zip(plain, ours, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_long_sentence_is_windowed_not_cut(trained: tuple[Path, NERTrainArguments]) -> None:
    export, _ = trained
    predictor = Predictor.from_pretrained(export)
    text = " ".join(["오늘 안중근 보고 제주 극장 정말"] * 12)  # far beyond max_seq_length=32
    features = TASK.encode([TASK.example_from_input(text)], predictor.export.tokenizer, None, settings(32))
    assert len(features) > 3 and all(len(f["input_ids"]) <= 32 for f in features)
    result = predictor(text)
    people = [e for e in result["entities"] if e["type"] == "PER"]
    assert len(people) >= 10, result["entities"]  # found in the last windows too
    assert max(e["start"] for e in people) > len(text) - 30


def test_resume_continues_at_the_right_step(tiny_bert: Path, book_root: Path, tmp_path: Path) -> None:
    args = ner_args(tiny_bert, book_root, tmp_path, epochs=1, max_train_samples=64, max_eval_samples=16)
    nlpbook.train(args)
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 4  # 64 / 16
    resumed = ner_args(
        tiny_bert, book_root, tmp_path, epochs=2, max_train_samples=64, max_eval_samples=16, resume=True
    )
    nlpbook.train(resumed)
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["global_step"] == 8


def test_cli_trains_and_predicts_conll(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    train = write(tmp_path / "train.conll", conll_text(toy_ner(48, 5)))
    test = write(tmp_path / "test.conll", conll_text(toy_ner(16, 6)))
    model_dir = tmp_path / "run"
    common = ["--pretrained_model_name", str(tiny_bert), "--downstream_model_dir", str(model_dir)]
    files = ["--train_file", str(train), "--test_file", str(test), "--ner_format", "conll"]
    assert main(["train", "ner", *common, *files, "--max_steps", "3", "--accelerator", "cpu"]) == 0
    assert (model_dir / "export" / "model.safetensors").is_file()
    capsys.readouterr()
    assert main(["predict", "ner", "--model_dir", str(model_dir), "--text", "오늘 세종 보고"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == "오늘 세종 보고" and isinstance(result["entities"], list)


# --- readers -----------------------------------------------------------------------------------
def spans(example: NERExample) -> list[tuple[str, str]]:
    return [(e.type, example.text[e.start : e.end]) for e in example.entities or ()]


def test_book_format(tmp_path: Path) -> None:
    path = write(
        tmp_path / "train.txt", f"이순신은 조선의 장군이다{SEP}<이순신:PER>은 <조선:LOC>의 장군이다\n\n"
    )
    [example] = read_ner_file(path, "book")
    assert example.text == "이순신은 조선의 장군이다"
    assert example.entities == (Entity("PER", 0, 3), Entity("LOC", 5, 7))


def test_naver_format(tmp_path: Path) -> None:
    text = (
        "1\t이순신\tPER_B\n2\t장군은\t-\n3\t한산\tLOC_B\n4\t앞바다\tLOC_I\n\n1\t세종\tPER_B\n2\t대왕\tPER_I\n"
    )
    first, second = read_ner_file(write(tmp_path / "train_data", text), "naver")
    assert first.text == "이순신 장군은 한산 앞바다"
    assert spans(first) == [("PER", "이순신"), ("LOC", "한산 앞바다")]
    assert spans(second) == [("PER", "세종 대왕")] and second.row is not None and second.row.line == 6


def test_klue_format_keeps_spaces(tmp_path: Path) -> None:
    text = "## 컬럼명 : CHAR\tNE_TAG\n## id\t<이순신:PS>은 <조선:LC>\n"
    text += "이\tB-PS\n순\tI-PS\n신\tI-PS\n은\tO\n \tO\n조\tB-LC\n선\tI-LC\n"
    [example] = read_ner_file(write(tmp_path / "klue.tsv", text))  # "auto" recognises KLUE
    assert example.text == "이순신은 조선"
    assert spans(example) == [("PS", "이순신"), ("LC", "조선")]


def test_conll_format_and_auto_detection(tmp_path: Path) -> None:
    text = "-DOCSTART- -X- O\n\n세종 NNP B-PER\n대왕 NNP I-PER\n만세 NNG O\n"
    [example] = read_ner_file(write(tmp_path / "x.conll", text))
    assert example.text == "세종 대왕 만세" and spans(example) == [("PER", "세종 대왕")]
    naver = write(tmp_path / "naver", "1\t세종\tPER_B\n2\t만세\t-\n")
    assert spans(read_ner_file(naver)[0]) == [("PER", "세종")]


def test_corpus_layouts(tmp_path: Path) -> None:
    """naver_changwon_ner holds out every 10th sentence of train_data; klue-ner reads its two files."""
    sentences = "\n".join(f"1\t이름{i}\tPER_B\n2\t만세\t-\n" for i in range(20))
    write(tmp_path / "naver_changwon_ner" / "train_data", sentences)
    args = NERTrainArguments(
        downstream_corpus_name="naver_changwon_ner",
        downstream_corpus_root_dir=str(tmp_path),
        downstream_model_dir="x",
    )
    train, test = TASK.read(args, "train"), TASK.read(args, "test")
    assert len(train) == 18 and [e.text for e in test] == ["이름9 만세", "이름19 만세"]
    for split, name in (("train", "klue-ner-v1.1_train.tsv"), ("dev", "klue-ner-v1.1_dev.tsv")):
        write(tmp_path / "klue-ner" / name, f"## {split}\n{split[0]}\tB-PS\n다\tO\n")
    args = NERTrainArguments(
        downstream_corpus_name="klue-ner", downstream_corpus_root_dir=str(tmp_path), downstream_model_dir="x"
    )
    assert [e.text for e in TASK.read(args, "test")] == ["d다"]
    # KLUE-NER cannot be downloaded by nlpbook: force_download must not delete the user's only copy.
    forced = NERTrainArguments(
        downstream_corpus_name="klue-ner",
        downstream_corpus_root_dir=str(tmp_path),
        downstream_model_dir="x",
        force_download=True,
    )
    assert [e.text for e in TASK.read(forced, "test")] == ["d다"]
    # no book corpus: say which file (the split's own: evaluate needs no training file)
    with pytest.raises(DataError, match=r"ner/val\.txt: file not found"):
        TASK.read(
            NERTrainArguments(downstream_corpus_root_dir=str(tmp_path), downstream_model_dir="x"), "test"
        )


# --- bad input: an error naming file and line, before training ---------------------------------
BAD_FILES = [
    ("naver", "1\t이순신\tPER_B\n2\t장군\n", 2, "expected 3 tab-separated columns"),
    ("klue", "이\tB-PS\n순\tI-PS\tX\n", 2, "expected 2 tab-separated columns"),
    ("klue", "이\tB-PS\n\n \tO\n \tO\n", 3, "empty sentence"),
    ("conll", "세종\tB-PER\n대왕\n", 2, "expected a token and a tag"),
    ("conll", "세종\tO\n대왕\tI-PER\n", 2, "must open with B-PER"),
    ("conll", "세종\tB-LOC\n대왕\tI-PER\n", 2, "follows B-LOC"),
    ("naver", "1\t세종\t-\n2\t대왕\tPER_I\n", 2, "must open with B-PER"),
    ("conll", "세종\tPER_B\n", 1, "not BIO.*ner_format='naver'"),
    ("conll", "세종\tS-PER\n", 1, "not BIO"),
    ("naver", "1\t세종\tB-PER\n", 1, "not Naver's"),
    ("klue", "이순\tB-PS\n", 1, "expected one character"),
    ("book", f"이순신{SEP}<이순신:PER\n", 1, "differs from the plain sentence"),
    ("book", f"ok{SEP}ok\n이순신 장군\n", 2, "separator"),
    ("book", f"{SEP}\n", 1, "empty sentence"),
    ("book", f"이순신{SEP}< :PER>이순신\n", 1, "empty entity"),
]


@pytest.mark.parametrize(("fmt", "text", "line", "message"), BAD_FILES)
def test_bad_file_names_file_and_line(tmp_path: Path, fmt: str, text: str, line: int, message: str) -> None:
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError, match=message) as error:
        read_ner_file(path, fmt)  # type: ignore[arg-type]
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_repair_tags_reads_orphan_i_as_b_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "x.conll", "세종\tO\n대왕\tI-PER\n")
    with caplog.at_level(logging.WARNING):
        [example] = read_ner_file(path, "conll", repair=True)
    assert spans(example) == [("PER", "대왕")]
    assert "line(s) [2]" in caplog.text


def test_unknown_label_at_evaluation_fails_before_training(tiny_bert: Path, tmp_path: Path) -> None:
    train = write(tmp_path / "train.conll", conll_text(toy_ner(8, 1)))
    test = write(tmp_path / "test.conll", "세종\tB-PER\n\n부산\tB-ORG\n")
    args = NERTrainArguments(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(tmp_path / "run"),
        train_file=str(train),
        test_file=str(test),
    )
    with pytest.raises(DataError, match=rf"{test}:3: entity type 'ORG' is not one of the model's types"):
        nlpbook.train(args)
    assert not (tmp_path / "run" / "last.ckpt").exists()
