"""KorQuAD-style question answering end to end on the tiny BERT: trained from the command line on a
corpus in KorQuAD's layout whose contexts need several windows, it learns, evaluates with
KorQuAD's metric, predicts (Python, CLI, files), serves, agrees with transformers' own
question-answering pipeline, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from tiny_bert import build_tiny_bert, qa_corpus_text, toy_squad

import nlpbook
from nlpbook.cli import main
from nlpbook.logs import training_log
from nlpbook.predictor import Predictor
from nlpbook.qa import QATrainArguments
from nlpbook.web.app import create_app

WINDOWS = {"max_seq_length": 48, "doc_stride": 16, "max_query_length": 12}


def write_json(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def qa_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with the toy questions' words in its vocabulary (a few seconds to build)."""
    return build_tiny_bert(tmp_path_factory.mktemp("qa-bert"), texts=qa_corpus_text())


@pytest.fixture(scope="module")
def trained(qa_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[QATrainArguments, Path]:
    root = tmp_path_factory.mktemp("korpora-qa")
    write_json(root / "korquad" / "KorQuAD_v1.0_train.json", toy_squad(36, seed=1))
    write_json(root / "korquad" / "KorQuAD_v1.0_dev.json", toy_squad(12, seed=2))
    options = {
        "pretrained_model_name": str(qa_bert),
        "downstream_corpus_root_dir": str(root),
        "downstream_model_dir": str(tmp_path_factory.mktemp("run") / "qa"),
        "learning_rate": 3e-3,
        "batch_size": 8,
        "epochs": 3,
        "log_every_n_steps": 5,
        "monitor": "max val_f1",
        **WINDOWS,
    }
    argv = [item for key, value in options.items() for item in (f"--{key}", str(value))]
    assert main(["train", "qa", *argv]) == 0
    return QATrainArguments(**options), Path(options["downstream_model_dir"]) / "export"


def test_learns_to_answer_across_windows(trained) -> None:
    args, _ = trained
    rows = training_log(args.model_dir)
    f1 = [row["val_f1"] for row in rows if "val_f1" in row]
    assert len(f1) == 3 and f1[-1] > 90 and f1[-1] > f1[0]
    contexts = [p["context"] for a in toy_squad(12, seed=2)["data"] for p in a["paragraphs"]]
    tokenizer = Predictor.from_pretrained(args.model_dir).export.tokenizer
    assert max(len(tokenizer(c)["input_ids"]) for c in contexts) > WINDOWS["max_seq_length"], "no windows"


def test_evaluate_from_the_command_line(trained, capsys: pytest.CaptureFixture[str]) -> None:
    args, export = trained
    argv = [
        "--downstream_model_dir",
        str(args.model_dir),
        "--downstream_corpus_root_dir",
        str(args.corpus_root),
    ]
    assert main(["evaluate", "qa", *argv]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["exact_match"] > 80 and metrics["f1"] > 90 and metrics["questions"] == 72
    assert json.loads((export / "evaluation.json").read_text(encoding="utf-8")) == metrics


def test_predict_returns_a_span_of_the_context(trained, tmp_path: Path, capsys) -> None:
    _, export = trained
    context = " ".join(
        [
            "영화 정말 너무 그냥 배우 연기 스토리 감독 음악 결말 장면",
            "처음 다시 친구 함께 세종 씨가 부산 에서 태어났다",
        ]
    )
    who, where = nlpbook.predict(
        export,
        [
            {"question": "누가 태어났나?", "context": context},
            {"question": "어디에서 태어났나?", "context": context},
        ],
    )
    assert set(who) == {"answer", "start", "end", "score"} and 0 < who["score"] <= 1
    assert (who["answer"], where["answer"]) == ("세종", "부산")
    assert context[who["start"] : who["end"]] == who["answer"]

    assert (
        main(["predict", "--model_dir", str(export), "--question", "누가 태어났나?", "--context", context])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["answer"] == "세종"
    source = tmp_path / "questions.jsonl"
    lines = [
        {"question": "어디에서 태어났나?", "context": context},
        {"question": "누가 태어났나?", "context": context},
    ]
    source.write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n", encoding="utf-8"
    )
    output = tmp_path / "answers.jsonl"
    assert main(["predict", "--model_dir", str(export), "--input", str(source), "--output", str(output)]) == 0
    answers = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [a["answer"] for a in answers] == ["부산", "세종"] and [a["line"] for a in answers] == [1, 2]


def test_web_api_takes_the_declared_fields(trained) -> None:
    _, export = trained
    client = TestClient(create_app(Predictor.from_pretrained(export)), base_url="http://127.0.0.1:8000")
    fields = client.get("/health").json()["input_fields"]
    assert [(f["name"], f["multiline"]) for f in fields] == [("question", False), ("context", True)]
    answer = client.post(
        "/predict", json={"question": "누가 태어났나?", "context": "김구 씨가 서울 에서 태어났다"}
    )
    assert answer.json()["answer"] == "김구"


def test_plain_transformers_recipe_finds_the_same_spans(trained) -> None:
    """The export is a plain transformers QA model: Hugging Face's own recipe (run_qa's windows and
    post-processing; transformers 5 removed the question-answering pipeline), told the same window
    sizes, answers like nlpbook on the held-out questions."""
    from hf_qa_reference import hf_answer
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    args, export = trained
    model = AutoModelForQuestionAnswering.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    examples = [
        (q["question"], p["context"])
        for a in toy_squad(12, seed=2)["data"]
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    ours = nlpbook.predict(export, [{"question": q, "context": c} for q, c in examples])
    theirs = [
        hf_answer(
            model, tokenizer, q, c, args.max_seq_length, args.doc_stride, args.n_best, args.max_answer_length
        )
        for q, c in examples
    ]
    agree = sum((o["start"], o["end"]) == (t["start"], t["end"]) for o, t in zip(ours, theirs, strict=True))
    assert agree == len(examples), [(o["answer"], t["answer"]) for o, t in zip(ours, theirs, strict=True)]


def test_resume_continues_at_the_saved_step(qa_bert: Path, tmp_path: Path) -> None:
    data = write_json(tmp_path / "train.json", toy_squad(6, seed=3))
    common = dict(
        pretrained_model_name=str(qa_bert),
        downstream_model_dir=str(tmp_path / "run"),
        train_file=str(data),
        test_file=str(data),
        test_articles="4:",
        batch_size=8,
        epochs=3,
        **WINDOWS,
    )
    nlpbook.train(QATrainArguments(**common, max_steps=3))
    nlpbook.train(QATrainArguments(**common, max_steps=7, resume=True))
    last = torch.load(tmp_path / "run" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 7
