"""KorSTS sentence similarity end to end on the tiny BERT: the regression task learns, exports a
model plain transformers reads as regression, evaluates, predicts and serves; bad scores fail with
file and line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import write_tsv
from fastapi.testclient import TestClient
from tiny_bert import FILLER, toy_sentiment
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import nlpbook
from nlpbook.cli import main
from nlpbook.corpus import DataError
from nlpbook.logs import training_log
from nlpbook.predictor import Predictor
from nlpbook.sts import TASK, STSTrainArguments
from nlpbook.web.app import create_app

KORSTS_HEADER = ["genre", "filename", "year", "id", "score", "sentence1", "sentence2"]


def toy_sts(n: int, seed: int) -> list[tuple[str, ...]]:
    """KorSTS-layout rows whose score follows a cue word in the second sentence: learnable fast."""
    rng = random.Random(seed)
    rows = []
    for i, (text, _) in enumerate(toy_sentiment(n, seed)):
        score = rng.choice([0.5, 2.5, 4.5])
        cue = {4.5: "최고", 0.5: "최악"}.get(score, rng.choice(FILLER))
        second = f"{rng.choice(FILLER)} {cue} {rng.choice(FILLER)}"
        rows.append(("main-captions", "toy", "2024", f"{i:04d}", f"{score:.3f}", text, second))
    return rows


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[STSTrainArguments, Path]:
    """Trained through the command line, on a toy corpus in Korpora's KorSTS layout."""
    root = tmp_path_factory.mktemp("korpora-sts")
    for name, n, seed in (("sts-train.tsv", 480, 1), ("sts-dev.tsv", 120, 2), ("sts-test.tsv", 90, 3)):
        write_tsv(root / "korsts" / name, KORSTS_HEADER, toy_sts(n, seed))
    options = {
        "pretrained_model_name": str(tiny_bert),
        "downstream_corpus_root_dir": str(root),
        "downstream_model_dir": str(tmp_path_factory.mktemp("run") / "sts"),
        "learning_rate": 5e-3,
        "batch_size": 16,
        "epochs": 3,
        "max_seq_length": 32,
        "log_every_n_steps": 1,
        "monitor": "max val_spearman",
    }
    argv = [item for key, value in options.items() for item in (f"--{key}", str(value))]
    assert main(["train", "sts", *argv]) == 0
    return STSTrainArguments(**options), Path(options["downstream_model_dir"]) / "export"


def test_learns_scores_and_exports_a_regression_model(trained) -> None:
    args, export = trained
    pearson = [row["val_pearson"] for row in training_log(args.model_dir) if "val_pearson" in row]
    assert len(pearson) == 3 and pearson[-1] > 0.8
    model = AutoModelForSequenceClassification.from_pretrained(export)
    assert model.config.problem_type == "regression" and model.config.id2label == {0: "score"}
    tokenizer = AutoTokenizer.from_pretrained(export)
    with torch.inference_mode():
        plain = model(**tokenizer("영화 배우", "정말 최고 연기", return_tensors="pt")).logits[0, 0].item()
    ours = nlpbook.predict(export, [("영화 배우", "정말 최고 연기")])[0]
    assert ours == {
        "text_a": "영화 배우",
        "text_b": "정말 최고 연기",
        "score": pytest.approx(plain, abs=1e-5),
        "truncated": False,
    }


def test_predictions_follow_the_cue(trained) -> None:
    _, export = trained
    high, middle, low = Predictor.from_pretrained(export)(
        [
            {"text_a": "영화", "text_b": "정말 최고 다시"},
            ("영화", "정말 극장 다시"),
            ("영화", "정말 최악 다시"),
        ]
    )
    assert high["score"] > middle["score"] > low["score"]


def test_evaluate_on_dev_and_on_the_test_file(trained) -> None:
    args, export = trained
    dev = nlpbook.evaluate(args)
    assert dev["pearson"] > 0.8 and dev["spearman"] > 0.8 and dev["mse"] < 1.0 and dev["examples"] == 120
    test_file = args.corpus_root / "korsts" / "sts-test.tsv"
    test = nlpbook.evaluate(STSTrainArguments(**{**vars(args), "test_file": str(test_file)}))
    assert test["examples"] == 90
    assert json.loads((export / "evaluation.json").read_text(encoding="utf-8"))["pearson"] == test["pearson"]


def test_cli_predict_and_web_api(trained, capsys: pytest.CaptureFixture[str]) -> None:
    _, export = trained
    assert (
        main(["predict", "sts", "--model_dir", str(export), "--text_a", "영화", "--text_b", "최고 배우"]) == 0
    )
    line = json.loads(capsys.readouterr().out.strip())
    assert set(line) == {"text_a", "text_b", "score", "truncated"}
    client = TestClient(create_app(Predictor.from_pretrained(export)), base_url="http://127.0.0.1:8000")
    health = client.get("/health").json()
    assert [field["name"] for field in health["input_fields"]] == ["text_a", "text_b"]
    answer = client.post("/predict", json={"text_a": "영화", "text_b": "최고 배우"}).json()
    assert answer["score"] == pytest.approx(line["score"], abs=1e-5)


@pytest.mark.parametrize(
    ("score", "message"),
    [
        ("높음", "score '높음' is not a number"),
        ("5.5", "score 5.5 is outside the declared range 0 to 5"),
        ("nan", "score nan is outside"),
    ],
)
def test_bad_scores_name_the_file_and_line(tmp_path: Path, score: str, message: str) -> None:
    rows = [("가", "나", "1.0"), ("다", "라", score)]
    path = write_tsv(tmp_path / "train.tsv", ["sentence1", "sentence2", "score"], rows)
    args = STSTrainArguments(downstream_model_dir=str(tmp_path / "run"), train_file=str(path))
    with pytest.raises(DataError, match=f"train.tsv:3: {message}"):
        TASK.read(args, "train")


def test_the_real_korsts_files_read(shared_data: Path) -> None:
    args = STSTrainArguments(
        downstream_model_dir="unused", downstream_corpus_root_dir=str(shared_data / "korpora")
    )
    train, dev = TASK.read(args, "train"), TASK.read(args, "test")
    assert (len(train), len(dev)) == (5749, 1500)
    assert min(float(e.label) for e in train) == 0.0 and max(float(e.label) for e in train) == 5.0
