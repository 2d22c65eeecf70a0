"""Pair classification end to end on the tiny BERT: learning, export, resume, CLI, readers, errors."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import settings, write_tsv
from tiny_bert import FILLER, NEGATIVE, POSITIVE

import nlpbook
from nlpbook.arguments import ArgumentError
from nlpbook.cli import main
from nlpbook.corpus import DataError
from nlpbook.module import TaskModule
from nlpbook.paircls import TASK, ClassificationTrainArguments, PairClassificationTrainArguments
from nlpbook.paircls import corpus as paircls_corpus

HEADER = ["sentence1", "sentence2", "gold_label"]


def toy_pairs(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Both texts hold a polarity cue word; only text_b's decides the label.

    A model that ignored text_b, or could not tell the two segments apart (token_type_ids), would
    score about 50% or 75%; reaching ~100% needs the pair encoded as two segments.
    """
    rng = random.Random(seed)

    def sentence(cue: str) -> str:
        words = rng.sample(FILLER, rng.randint(1, 5))
        words.insert(rng.randrange(len(words) + 1), cue)
        return " ".join(words)

    rows = []
    for _ in range(n):
        positive = rng.random() < 0.5
        cue_b = rng.choice(POSITIVE if positive else NEGATIVE)
        rows.append(
            (
                sentence(rng.choice(POSITIVE + NEGATIVE)),
                sentence(cue_b),
                "entailment" if positive else "contradiction",
            )
        )
    return rows


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pairs")
    return (
        write_tsv(folder / "train.tsv", HEADER, toy_pairs(480, 1)),
        write_tsv(folder / "test.tsv", HEADER, toy_pairs(160, 2)),
    )


def pair_args(
    tiny_bert: Path, train: Path, test: Path, model_dir: Path, **overrides
) -> PairClassificationTrainArguments:
    values = dict(
        pretrained_model_name=str(tiny_bert),
        downstream_model_dir=str(model_dir),
        train_file=str(train),
        test_file=str(test),
        learning_rate=3e-3,
        epochs=3,
        batch_size=32,
        accelerator="cpu",
        log_every_n_steps=1,
    )
    return PairClassificationTrainArguments(**{**values, **overrides})


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, pair_files, tmp_path_factory) -> tuple[PairClassificationTrainArguments, Path]:
    args = pair_args(tiny_bert, *pair_files, tmp_path_factory.mktemp("paircls") / "run")
    return args, nlpbook.train(args)


def test_learns_pairs_far_above_chance(trained) -> None:
    args, export = trained
    metrics = nlpbook.evaluate(args)
    assert metrics["accuracy"] >= 0.9, metrics  # chance 0.5; ignoring segments ~0.75
    assert metrics["macro_f1"] >= 0.9
    assert metrics["confusion_matrix"]["labels"] == ["entailment", "contradiction"]  # NLI order
    assert np.sum(metrics["confusion_matrix"]["matrix"]) == 160
    assert json.loads((export / "evaluation.json").read_text(encoding="utf-8"))["examples"] == 160


def test_export_predictions_equal_the_trained_weights(trained, pair_files) -> None:
    """The best checkpoint's weights, run through plain transformers, give predict()'s numbers."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    args, export = trained
    pairs = [(a, b) for a, b, _ in toy_pairs(24, 3)]
    best = next(p for p in args.model_dir.glob("epoch=*.ckpt"))
    state = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(export))
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(args.pretrained_model_name)
    batch = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch.softmax(model(**batch).logits, -1).numpy()

    results = nlpbook.predict(export, pairs)
    names = ["entailment", "contradiction"]
    got = np.array([[r["probabilities"][n] for n in names] for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["label"] for r in results] == [names[i] for i in expected.argmax(-1)]
    assert results[0]["text_a"] == pairs[0][0] and results[0]["text_b"] == pairs[0][1]

    predictor = nlpbook.Predictor.from_pretrained(export)
    single = predictor(pairs[0])  # one tuple -> one dict
    as_dict = predictor({"text_a": pairs[0][0], "text_b": pairs[0][1]})
    assert single["probabilities"] == pytest.approx(results[0]["probabilities"], abs=1e-6)
    assert as_dict["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)


def test_resume_continues_at_the_saved_global_step(tiny_bert, pair_files, tmp_path, monkeypatch) -> None:
    small = dict(max_train_samples=64, max_eval_samples=32, batch_size=16)  # 4 steps per epoch
    nlpbook.train(pair_args(tiny_bert, *pair_files, tmp_path, epochs=1, **small))
    last = tmp_path / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    with pytest.raises(ArgumentError, match="resume"):
        nlpbook.train(pair_args(tiny_bert, *pair_files, tmp_path, epochs=2, **small))

    steps: list[int] = []
    original = TaskModule.training_step

    def counting(self, batch, batch_idx):
        steps.append(self.global_step)
        return original(self, batch, batch_idx)

    monkeypatch.setattr(TaskModule, "training_step", counting)
    nlpbook.train(pair_args(tiny_bert, *pair_files, tmp_path, epochs=2, resume=True, **small))
    assert steps == [4, 5, 6, 7]  # continued; a restart would have run steps 0..7
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 8


def test_cli_trains_and_predicts_pair_files(tiny_bert, pair_files, trained, tmp_path) -> None:
    train, test = pair_files
    run = tmp_path / "cli-run"
    code = main(
        [
            "train",
            "paircls",
            "--pretrained_model_name",
            str(tiny_bert),
            "--downstream_model_dir",
            str(run),
            "--train_file",
            str(train),
            "--test_file",
            str(test),
            "--max_steps",
            "2",
            "--max_train_samples",
            "64",
            "--max_eval_samples",
            "16",
            "--accelerator",
            "cpu",
        ]
    )
    assert code == 0
    assert json.loads((run / "export" / "nlpbook.json").read_text(encoding="utf-8"))["task"] == "paircls"

    pairs = [(a, b) for a, b, _ in toy_pairs(5, 4)]
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text(
        "".join(json.dumps({"text_a": a, "text_b": b}, ensure_ascii=False) + "\n" for a, b in pairs),
        encoding="utf-8",
    )
    output = tmp_path / "out.jsonl"
    _, export = trained
    assert (
        main(
            [
                "predict",
                "paircls",
                "--model_dir",
                str(export),
                "--input",
                str(inputs),
                "--output",
                str(output),
            ]
        )
        == 0
    )
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    expected = nlpbook.predict(export, pairs)
    assert [(r["text_a"], r["text_b"], r["label"]) for r in lines] == [
        (r["text_a"], r["text_b"], r["label"]) for r in expected
    ]
    flags = [arg for a, b in pairs[:2] for arg in ("--text_a", a, "--text_b", b)]
    assert main(["predict", "--model_dir", str(export), *flags, "--output", str(output)]) == 0
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 2
    for got, want in zip(lines, expected, strict=False):
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)


# --- readers and errors ----------------------------------------------------------------------
GOOD = "sentence1\tsentence2\tgold_label\n가 나\t다 라\tentailment\n마 바\t사 아\tcontradiction\n"


@pytest.mark.parametrize(
    ("name", "text", "message", "line"),
    [
        ("empty", "", "file is empty", None),
        ("no_column", "sentence1\tgold_label\n가\tentailment\n", "missing column(s) ['sentence2']", 1),
        ("columns", GOOD + "자\t차\n", "expected 3 tab-separated columns", 4),
        ("empty_a", GOOD + "\t차\tentailment\n", "column 'sentence1' is empty", 4),
        ("blank_b", GOOD + "자\t  \tentailment\n", "column 'sentence2' is empty", 4),
        ("no_label", GOOD + "자\t차\t\n", "expected a label", 4),
        ("one_label", GOOD.replace("contradiction", "entailment"), "at least 2 different labels", None),
    ],
)
def test_bad_training_file_fails_before_the_model_loads(tmp_path, name, text, message, line) -> None:
    bad = tmp_path / f"{name}.tsv"
    bad.write_text(text, encoding="utf-8")
    good = tmp_path / "good.tsv"
    good.write_text(GOOD, encoding="utf-8")
    args = pair_args(Path("/no/such/model"), bad, good, tmp_path / "run")  # loading it would fail
    with pytest.raises(
        DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ) as error:
        nlpbook.train(args)
    assert error.value.path == str(bad) and error.value.line == line


def test_unknown_label_at_evaluation_and_missing_file_are_named(tmp_path) -> None:
    good = tmp_path / "good.tsv"
    good.write_text(GOOD, encoding="utf-8")
    test = tmp_path / "test.tsv"
    test.write_text(GOOD + "자\t차\tneutral\n", encoding="utf-8")
    with pytest.raises(DataError, match="label 'neutral' is not one of the model's labels") as error:
        nlpbook.train(pair_args(Path("/no/such/model"), good, test, tmp_path / "run"))
    assert (error.value.path, error.value.line) == (str(test), 4)
    with pytest.raises(DataError, match="file not found") as error:
        nlpbook.train(pair_args(Path("/no/such/model"), tmp_path / "missing.tsv", test, tmp_path / "run"))
    assert error.value.path.endswith("missing.tsv")


def test_crlf_bom_csv_and_jsonl_files_read(tmp_path) -> None:
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes("\ufeff".encode() + GOOD.replace("\n", "\r\n").encode())
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        'sentence1,sentence2,gold_label\n"가, 나",다 라,entailment\n마,바,contradiction\n', encoding="utf-8"
    )
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"a": "가 나", "b": "다 라", "y": "entailment"}\n', encoding="utf-8")
    args = PairClassificationTrainArguments(downstream_model_dir="unused", train_file=str(crlf))
    examples = TASK.read(args, "train")
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("가 나", "다 라", "entailment"),
        ("마 바", "사 아", "contradiction"),
    ]
    args = PairClassificationTrainArguments(downstream_model_dir="unused", train_file=str(csv_file))
    assert TASK.read(args, "train")[0].text_a == "가, 나"
    args = PairClassificationTrainArguments(
        downstream_model_dir="unused",
        train_file=str(jsonl),
        text_a_column="a",
        text_b_column="b",
        label_column="y",
    )
    assert TASK.read(args, "train")[0].label == "entailment"


def _kornli_root(tmp_path: Path, snli_extra: str = "") -> Path:
    folder = tmp_path / "kornli"
    folder.mkdir()
    (folder / "multinli.train.ko.tsv").write_text(GOOD, encoding="utf-8")
    (folder / "snli_1.0_train.ko.tsv").write_text(GOOD.replace("가 나", "하") + snli_extra, encoding="utf-8")
    (folder / "xnli.dev.ko.tsv").write_text(GOOD + "자\t차\tneutral\n", encoding="utf-8")
    return tmp_path


def test_kornli_layout_read_offline(tmp_path, monkeypatch, caplog) -> None:
    def no_network(*_):
        raise AssertionError("Korpora must not be asked when the files are there")

    monkeypatch.setattr(paircls_corpus, "korpora_fetch", no_network)
    root = _kornli_root(tmp_path, snli_extra="자\t차\t-\n")
    args = ClassificationTrainArguments(downstream_model_dir="unused", downstream_corpus_root_dir=str(root))
    assert (args.task, args.downstream_corpus_name) == ("paircls", "kornli")  # the book's cell
    with caplog.at_level(logging.WARNING):
        train = TASK.read(args, "train")
    assert len(train) == 4 and train[2].text_a == "하"
    assert "left out 1 row(s) with gold label '-'" in caplog.text and "[4]" in caplog.text
    test = TASK.read(args, "test")  # ratsnlp's validation file: xnli.dev.ko.tsv
    assert [e.label for e in test] == ["entailment", "contradiction", "neutral"]
    assert TASK.label_names(test) == ["entailment", "neutral", "contradiction"]

    other = tmp_path / "xnli.test.ko.tsv"
    other.write_text(GOOD, encoding="utf-8")
    args = ClassificationTrainArguments(
        downstream_model_dir="unused", downstream_corpus_root_dir=str(root), test_file=str(other)
    )
    assert TASK.read(args, "test")[0].row.path == str(other)  # --test_file wins over the corpus


def test_kornli_bad_label_and_missing_file(tmp_path, monkeypatch) -> None:
    def offline(*_):
        raise OSError("offline")

    monkeypatch.setattr(paircls_corpus, "korpora_fetch", offline)
    root = _kornli_root(tmp_path, snli_extra="자\t차\tneutrall\n")
    args = PairClassificationTrainArguments(
        downstream_model_dir="unused", downstream_corpus_root_dir=str(root)
    )
    with pytest.raises(DataError, match="gold label 'neutrall'") as error:
        TASK.read(args, "train")
    assert error.value.path.endswith("snli_1.0_train.ko.tsv") and error.value.line == 4
    (root / "kornli" / "snli_1.0_train.ko.tsv").unlink()
    with pytest.raises(DataError, match="download of 'kornli' failed") as error:
        TASK.read(args, "train")
    assert error.value.path.endswith("snli_1.0_train.ko.tsv")


def test_klue_nli_json_layout(tmp_path) -> None:
    folder = tmp_path / "klue-nli"
    folder.mkdir()
    records = [
        {
            "guid": f"g{i}",
            "source": "x",
            "premise": f"전제 {i}",
            "hypothesis": f"가설 {i}",
            "gold_label": label,
        }
        for i, label in enumerate(["neutral", "contradiction", "entailment"])
    ]
    (folder / "klue_nli_train.json").write_text(json.dumps(records, ensure_ascii=False, indent=4), "utf-8")
    args = PairClassificationTrainArguments(
        downstream_model_dir="unused",
        downstream_corpus_name="klue-nli",
        downstream_corpus_root_dir=str(tmp_path),
    )
    train = TASK.read(args, "train")
    assert [(e.text_a, e.text_b) for e in train][0] == ("전제 0", "가설 0")
    assert TASK.label_names(train) == ["entailment", "neutral", "contradiction"]
    with pytest.raises(DataError, match="file not found") as error:
        TASK.read(args, "test")
    assert error.value.path.endswith("klue-nli/klue_nli_dev.json")
    records[1]["gold_label"] = "모순"
    text = json.dumps(records, ensure_ascii=False, indent=4)
    (folder / "klue_nli_dev.json").write_text(text, "utf-8")
    with pytest.raises(DataError, match="gold label '모순'") as error:
        TASK.read(args, "test")
    starts = [n for n, line in enumerate(text.split("\n"), start=1) if line.strip() == "{"]
    assert error.value.line == starts[1]  # the line the JSON record starts on, not its index
    with pytest.raises(ArgumentError, match="downstream_corpus_name"):
        PairClassificationTrainArguments(downstream_model_dir="unused", downstream_corpus_name="nsmc")


def test_prediction_inputs() -> None:
    for good in (
        ("가", "나"),
        ["가", "나"],
        {"text_a": "가", "text_b": "나"},
        {"premise": "가", "hypothesis": "나"},
    ):
        example = TASK.example_from_input(good)
        assert (example.text_a, example.text_b, example.label) == ("가", "나", None)
    for bad in ("가", ("가",), ("가", " "), {"text_a": "가"}, ("가", "나", "다")):
        with pytest.raises(ValueError, match="paircls predicts from text_a, text_b"):
            TASK.example_from_input(bad)


def test_prediction_file_columns(tmp_path) -> None:
    tsv = tmp_path / "kornli.tsv"
    tsv.write_text(GOOD, encoding="utf-8")  # KorNLI's own header predicts as it is
    assert [(e.text_a, e.text_b) for e in TASK.examples_from_file(str(tsv))][1] == ("마 바", "사 아")
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n가\t나\n", encoding="utf-8")
    with pytest.raises(DataError, match="expected columns text_a/text_b"):
        TASK.examples_from_file(str(bad))


def test_pair_encoding_with_kcbert(kcbert_dir) -> None:
    """[CLS] a [SEP] b [SEP], segments 0 then 1; a long first text is cut, the second kept."""
    from transformers import AutoTokenizer

    from nlpbook.classification import TextExample

    tokenizer = AutoTokenizer.from_pretrained(kcbert_dir)
    long_a = "이순신은 조선 중기의 무신이었다 " * 10
    feature = TASK.encode(
        [TextExample(long_a, "그는 장군이었다", "entailment")],
        tokenizer,
        ["entailment", "neutral", "contradiction"],
        settings(24),
    )[0]
    tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    assert len(tokens) == 24 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and tokens.count("[SEP]") == 2
    second = tokens.index("[SEP]") + 1
    assert tokenizer.convert_tokens_to_string(tokens[second:-1]) == "그는 장군이었다"
    assert feature["token_type_ids"] == [0] * second + [1] * (24 - second)
    assert feature["labels"] == 0


def test_real_kornli_dev_reads(shared_data) -> None:
    args = PairClassificationTrainArguments(
        downstream_model_dir="unused", downstream_corpus_root_dir=str(shared_data / "korpora")
    )
    examples = TASK.read(args, "test")
    assert len(examples) == 2490
    assert TASK.label_names(examples) == ["entailment", "neutral", "contradiction"]
