"""The serve app through FastAPI's TestClient: health, page, predict, every validation error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_predict import LONG, trained_classifier, untrained_export

from nlpbook.predictor import Predictor
from nlpbook.tasks import TASKS
from nlpbook.web.app import Limits, create_app

# The address `nlpbook serve` answers on by default; TestClient's own Host, testserver, gets 403.
LOCAL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Predictor:
    return Predictor.from_pretrained(trained_classifier(tmp_path_factory, tiny_bert), device="cpu")


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(
        create_app(predictor, Limits(max_text_chars=500, max_batch_size=4)), base_url=LOCAL
    ) as client:
        yield client  # one event loop for all requests, as under uvicorn


def test_health_and_page(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["task"] == "classification"
    assert health["labels"] == ["0", "1"] and health["max_text_chars"] == 500
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="predict"' in page.text and "http" not in page.text.split("<script>")[1]  # no CDN


def test_predict_single_and_batch(client: TestClient, predictor: Predictor) -> None:
    answer = client.post("/predict", json={"text": "정말 최고 영화"})
    assert answer.status_code == 200
    assert answer.json() == predictor("정말 최고 영화")
    texts = ["최악 졸작", "명작 감동", LONG]
    batch = client.post("/predict", json={"texts": texts}).json()["results"]
    assert [r["text"] for r in batch] == texts and [r["label"] for r in batch[:2]] == ["0", "1"]
    assert batch[2]["truncated"] is True


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"text": "good"', 400, "malformed JSON at line 1"),
        (b"", 400, "empty request body"),
        (b'{"text": "\xff"}', 400, "not UTF-8"),
        (b'["a"]', 422, "expected a JSON object"),
        (b'{"txt": "a"}', 422, "classification predicts from text"),
        (b'{"text": "   "}', 422, "holding non-empty text"),
        (b'{"text": 5}', 422, "holding non-empty text"),
        (b'{"texts": []}', 422, "non-empty JSON list"),
        (b'{"texts": "a"}', 422, "non-empty JSON list"),
        (b'{"texts": ["a"], "text": "b"}', 422, "cannot be combined"),
        (b'{"texts": ["a", ""]}', 422, "texts[1]: classification predicts from text"),
        (b'{"texts": ["a", "b", "c", "d", "e"]}', 413, "at most 4"),
        (('{"text": "' + "가" * 501 + '"}').encode(), 413, "501 characters"),
        (b'{"texts": ["ok", "' + b"a" * 600 + b'"]}', 413, "texts[1]: text is 600"),
    ],
)
def test_bad_requests_get_4xx_and_server_keeps_serving(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == status
    assert message in answer.json()["detail"]
    assert client.post("/predict", json={"text": "최고"}).status_code == 200


def test_oversized_body_refused_before_reading(predictor: Predictor) -> None:
    with TestClient(create_app(predictor, Limits(max_body_bytes=100)), base_url=LOCAL) as small:
        answer = small.post("/predict", json={"texts": ["좋다"] * 50})
    assert answer.status_code == 413 and "limit is 100" in answer.json()["detail"]


def test_concurrent_requests_get_their_own_answers(client: TestClient, predictor: Predictor) -> None:
    texts = [f"{word} 영화 {i}" for i, word in enumerate(["최고", "최악", "감동", "지루"] * 6)]
    expected = [r["label"] for r in predictor(texts)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: client.post("/predict", json={"text": t}).json(), texts))
    assert [a["text"] for a in answers] == texts and [a["label"] for a in answers] == expected


def test_concurrent_requests_are_batched_and_isolated(predictor: Predictor, monkeypatch) -> None:  # noqa: ANN001
    """Requests queued while the model is busy share one call; a failing input fails only its request."""
    calls: list[list[str]] = []
    original = predictor.predict_examples

    def slow(examples: list) -> list:
        calls.append([e.text_a for e in examples])
        time.sleep(0.05)  # a busy model: the other requests arrive meanwhile
        if any(e.text_a == "boom" for e in examples):
            raise RuntimeError("model failure")
        return original(examples)

    monkeypatch.setattr(predictor, "predict_examples", slow)
    texts = [f"최고 영화 {i}" for i in range(15)] + ["boom"]
    app = create_app(predictor, Limits(max_batch_size=8))
    with (
        TestClient(app, base_url=LOCAL, raise_server_exceptions=False) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        answers = list(pool.map(lambda t: client.post("/predict", json={"text": t}), texts))
    assert [a.status_code for a in answers] == [200] * 15 + [500]
    assert [a.json()["text"] for a in answers[:15]] == texts[:15]
    assert max(len(call) for call in calls) > 1 and all(len(call) <= 8 for call in calls)


@pytest.mark.skipif("paircls" not in TASKS, reason="pair classification task not registered yet")
def test_pair_model_api(tiny_bert: Path, tmp_path: Path) -> None:
    export = untrained_export("paircls", tiny_bert, tmp_path / "pair", ["entailment", "contradiction"])
    with TestClient(create_app(Predictor.from_pretrained(export, device="cpu")), base_url=LOCAL) as pair:
        check_pair_api(pair)


def check_pair_api(pair: TestClient) -> None:
    assert pair.get("/health").json()["task"] == "paircls"
    one = pair.post("/predict", json={"text_a": "가", "text_b": "나"}).json()
    assert one["text_a"] == "가" and set(one["probabilities"]) == {"entailment", "contradiction"}
    batch = pair.post("/predict", json={"texts": [["가", "나"], {"text_a": "다", "text_b": "라"}]}).json()
    assert [r["text_b"] for r in batch["results"]] == ["나", "라"]
    missing = pair.post("/predict", json={"text": "한 문장"})
    assert missing.status_code == 422 and "text_a" in missing.json()["detail"]


@pytest.mark.skipif("ner" not in TASKS, reason="NER task not registered yet")
def test_ner_model_api(tiny_bert: Path, tmp_path: Path) -> None:
    export = untrained_export("ner", tiny_bert, tmp_path / "ner", ["O", "B-PS", "I-PS"])
    with TestClient(create_app(Predictor.from_pretrained(export, device="cpu")), base_url=LOCAL) as ner:
        check_ner_api(ner)


def check_ner_api(ner: TestClient) -> None:
    answer = ner.post("/predict", json={"text": "이순신은 서울에서 태어났다"}).json()
    assert answer["text"] == "이순신은 서울에서 태어났다" and isinstance(answer["entities"], list)
    assert ner.post("/predict", json={"text": ""}).status_code == 422
