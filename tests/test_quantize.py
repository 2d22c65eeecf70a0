"""int8 prediction on CPU: the caller's choice, CPU only, close to float32, the export untouched."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from test_predict import trained_classifier
from tiny_bert import toy_sentiment

from nlpbook import serve
from nlpbook.arguments import ArgumentError
from nlpbook.cli import main
from nlpbook.cli_predict import QUANTIZE_CHOICES as CLI_CHOICES
from nlpbook.inference import QUANTIZE_CHOICES, int8_linears, quantize_model
from nlpbook.predictor import Predictor


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    return trained_classifier(tmp_path_factory, tiny_bert)


def folder_digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()
    }


def test_int8_quantizes_every_linear_and_keeps_the_labels(export_dir: Path) -> None:
    before = folder_digest(export_dir)
    fp32 = Predictor.from_pretrained(export_dir, device="cpu")
    int8 = Predictor.from_pretrained(export_dir, quantize="int8")  # device defaults to the CPU
    assert int8.device.type == "cpu" and int8.quantize == "int8" and fp32.quantize is None

    linears = [n for n, m in fp32.export.model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert sorted(int8_linears(int8.export.model)) == sorted(linears) and linears
    assert int8_linears(fp32.export.model) == []

    texts = [text for text, _ in toy_sentiment(200, seed=11)]
    same = sum(a["label"] == b["label"] for a, b in zip(fp32(texts), int8(texts), strict=True))
    assert same / len(texts) >= 0.95
    assert folder_digest(export_dir) == before  # nothing about int8 is written to the export


def test_quantizing_leaves_the_given_export_in_float32(export_dir: Path) -> None:
    fp32 = Predictor.from_pretrained(export_dir, device="cpu")
    engine = torch.backends.quantized.engine
    int8 = Predictor(fp32.export, quantize="int8")
    assert int8_linears(int8.export.model) and int8_linears(fp32.export.model) == []
    assert torch.backends.quantized.engine == engine  # packed for oneDNN; torch's setting put back


def test_int8_refused_off_the_cpu_and_for_unknown_kinds(export_dir: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ArgumentError, match="runs on the CPU only"):
        quantize_model(model, "int8", torch.device("cuda"))
    with pytest.raises(ArgumentError, match="quantize must be one of"):
        quantize_model(model, "int4", torch.device("cpu"))
    assert quantize_model(model, None, torch.device("cpu")) is model
    if torch.cuda.is_available():
        with pytest.raises(ArgumentError, match="runs on the CPU only"):
            Predictor.from_pretrained(export_dir, device="cuda", quantize="int8")
    assert CLI_CHOICES == QUANTIZE_CHOICES


def test_cli_predict_and_serve_take_quantize(
    export_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["predict", "--model_dir", str(export_dir), "--text", "정말 최고", "--text", "최악 졸작"]
    with caplog.at_level(logging.INFO, logger="nlpbook"):
        assert main([*args, "--quantize", "int8"]) == 0
    assert [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()] == ["1", "0"]
    assert "Linear layers dynamically quantized" in caplog.text
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        main([*args, "--quantize", "int4"])
    if torch.cuda.is_available():
        assert main([*args, "--quantize", "int8", "--device", "cuda"]) == 2
        assert "runs on the CPU only" in caplog.text

    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(app=app))
    serve(export_dir, quantize="int8")
    response = TestClient(served["app"], base_url="http://127.0.0.1:8000").post(
        "/predict", json={"text": "정말 최고"}
    )
    assert response.status_code == 200 and response.json()["label"] == "1"
