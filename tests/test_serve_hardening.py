"""The serve app against hostile input: endless chunked bodies, pathological JSON, and the
requests a web page on another site can make a visitor's browser send to 127.0.0.1."""

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

import nlpbook.cli
from nlpbook.predictor import Predictor
from nlpbook.web.app import Limits, create_app

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


# --- what another site's page can make a browser send ----------------------------------------------
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_predict_takes_only_json(client: TestClient, content_type: str | None) -> None:
    """The content types a cross-site <form> or fetch can send without a CORS preflight."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/predict", content='{"text": "최고"}'.encode(), headers=headers)
    assert answer.status_code == 415 and "Content-Type: application/json" in answer.json()["detail"]
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/predict", content=b'{"text": "a"}', headers=with_charset).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "same-site"}, 403),  # another local port
        ({"Origin": "null"}, 403),  # a sandboxed iframe or a file:// page
        ({"Origin": LOCAL}, 200),  # the demo page itself
        ({"Origin": "https://127.0.0.1:8000"}, 200),  # Colab's service worker serves it over https
        ({"Origin": "https://demo.example", "Sec-Fetch-Site": "same-origin"}, 200),  # behind a proxy
        ({}, 200),  # curl, httpx, scripts: no Origin
    ],
)
def test_cross_origin_post_is_refused(client: TestClient, headers: dict[str, str], status: int) -> None:
    answer = client.post("/predict", json={"text": "최고"}, headers=headers)
    assert answer.status_code == status
    if status == 403:
        assert "cross-origin request from" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost:8000", 200),
        ("LOCALHOST", 200),
        ("[::1]:9000", 200),
        ("evil.example:8000", 403),  # DNS rebinding: evil.example now resolves to 127.0.0.1
        ("127.0.0.1.evil.example", 403),
        ("testserver", 403),
    ],
)
def test_host_header_is_checked(client: TestClient, host: str, status: int) -> None:
    for answer in (
        client.get("/health", headers={"Host": host}),
        client.get("/", headers={"Host": host}),
        client.post("/predict", json={"text": "최고"}, headers={"Host": host}),
    ):
        assert answer.status_code == status, (host, answer.request.url)
    if status == 403:
        assert "--allowed_hosts" in answer.json()["detail"]


def test_create_app_with_any_host(predictor: Predictor) -> None:
    with TestClient(create_app(predictor, allowed_hosts=["*"])) as anywhere:
        assert anywhere.get("/health", headers={"Host": "evil.example"}).status_code == 200


@pytest.mark.parametrize(
    ("options", "allowed", "refused"),
    [
        ([], ["127.0.0.1:8000", "localhost:8000"], ["evil.example", "192.168.0.5:8000"]),
        (["--host", "0.0.0.0"], ["192.168.0.5:8000", "evil.example"], []),
        (
            ["--host", "0.0.0.0", "--allowed_hosts", "demo.lan"],
            ["demo.lan:8000", "localhost"],
            ["evil.example"],
        ),
        (["--allowed_hosts", "*"], ["evil.example"], []),
    ],
    ids=["loopback", "0.0.0.0", "0.0.0.0 with --allowed_hosts", "--allowed_hosts *"],
)
def test_cli_serve_picks_hosts_from_the_bind_address(
    export: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], allowed: list[str], refused: list[str]
) -> None:
    """`nlpbook serve` end to end up to uvicorn.run, whose app is then asked with each Host."""
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: apps.append(app))
    assert nlpbook.cli.main(["serve", "--model_dir", str(export), "--device", "cpu", *options]) == 0
    with TestClient(apps[0]) as served:
        for host in allowed:
            assert served.get("/health", headers={"Host": host}).status_code == 200, host
        for host in refused:
            assert served.get("/health", headers={"Host": host}).status_code == 403, host
