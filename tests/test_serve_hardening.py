"""The serve app against hostile input: endless chunked bodies and pathological JSON."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from test_predict import trained_classifier

from nlpbook.predictor import Predictor
from nlpbook.serve.app import Limits, create_app

LOCAL = "http://127.0.0.1:8000"
CHUNK = 64 * 1024
HUGE = 200 * 1024 * 1024 // CHUNK  # chunks in a 200 MiB upload


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    return trained_classifier(tmp_path_factory, tiny_bert)


@pytest.fixture(scope="module")
def predictor(export: Path) -> Predictor:
    return Predictor.from_pretrained(export, device="cpu")


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> Iterator[TestClient]:
    with TestClient(create_app(predictor), base_url=LOCAL) as client:
        yield client


def counted_chunks(consumed: list[int], n: int = HUGE) -> Iterator[bytes]:
    """A JSON body that never ends in time: ``{"text": "aaaa...`` in 64 KiB pieces."""
    yield b'{"text": "'
    for _ in range(n):
        consumed[0] += 1
        yield b"a" * CHUNK


# --- body size ------------------------------------------------------------------------------------
def test_chunked_body_is_cut_off_at_the_limit(predictor: Predictor) -> None:
    """No Content-Length: the app reads chunks only until the limit, then answers 413 and closes."""
    limit = 1_000_000
    app = create_app(predictor, Limits(max_body_bytes=limit))
    consumed = [0]
    body = counted_chunks(consumed)
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive() -> dict[str, Any]:
        chunk = next(body, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"limit is 1000000" in sent[1]["body"]
    assert consumed[0] <= limit // CHUNK + 1  # 16 of the 3,200 chunks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def live_server(predictor: Predictor) -> Iterator[str]:
    """The app under uvicorn on loopback, as `nlpbook serve` runs it."""
    port = free_port()
    config = uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_chunked_upload_over_a_socket_stops_early(live_server: str) -> None:
    """A 200 MiB chunked upload to the real server: 413, and the server hangs up after ~1 MB
    instead of reading (and before this change, holding) all of it."""
    consumed = [0]
    try:
        answer = httpx.post(
            live_server + "predict",
            content=counted_chunks(consumed),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except httpx.TransportError:  # the hang-up can reach the client before the 413 does
        answer = None
    assert consumed[0] < HUGE // 10, f"the server read {consumed[0] * CHUNK >> 20} MiB"
    if answer is not None:
        assert answer.status_code == 413 and "limit is 1000000" in answer.json()["detail"]
    assert httpx.post(live_server + "predict", json={"text": "최고"}).status_code == 200


# --- JSON the parser cannot take --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"text": "a", "n": ' + b"7" * 5000 + b"}", "unusable JSON: Exceeds the limit (4300 digits)"),
    ],
    ids=["100000 deep", "deep inside an object", "5000-digit integer"],
)
def test_pathological_json_gets_400(client: TestClient, body: bytes, message: str) -> None:
    answer = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and message in answer.json()["detail"]
    assert client.post("/predict", json={"text": "최고"}).status_code == 200
