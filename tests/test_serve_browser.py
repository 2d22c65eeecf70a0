"""End to end: `nlpbook serve` in a subprocess on loopback, its page driven in headless Chromium.

Uses Debian's Chromium (``.ci/install-browser.sh``) through Playwright's ``executable_path``;
``playwright install`` is not needed. Skipped, with the reason, when /usr/bin/chromium is absent.
Set NLPBOOK_SCREENSHOT=/some/file.png to keep a screenshot of the page after a prediction.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from test_predict import trained_classifier, untrained_export

from nlpbook.tasks import TASKS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}: run .ci/install-browser.sh (Debian chromium)"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model_dir: Path) -> Iterator[str]:
    """Run the real CLI (`python -m nlpbook.cli serve`) and yield its URL once /health answers."""
    port = free_port()
    command = [sys.executable, "-m", "nlpbook.cli", "serve", "--model_dir", str(model_dir)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"nlpbook serve exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(url + "health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("nlpbook serve did not answer /health within 90 s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Iterator[str]:
    yield from start_server(trained_classifier(tmp_path_factory, tiny_bert))


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def open_page(browser, url: str):  # noqa: ANN001, ANN201 (Playwright types)
    page = browser.new_page(viewport={"width": 900, "height": 700})
    page.goto(url)
    page.wait_for_function("!document.getElementById('predict').disabled", timeout=10_000)
    return page


def test_page_shows_the_api_answer(server: str, browser) -> None:  # noqa: ANN001
    sentence = "오늘 친구 함께 본 영화 정말 최고 명작"
    api = httpx.post(server + "predict", json={"text": sentence}).json()
    page = open_page(browser, server)
    assert "task: classification" in page.text_content("#info")
    page.fill("#field-text", sentence)
    page.click("#predict")
    page.wait_for_selector("#result:not([hidden])", timeout=10_000)
    assert page.text_content("#label") == api["label"] == "1"
    bars = page.locator(".bar-row")
    assert bars.count() == 2 and bars.first.get_attribute("data-label") == api["label"]  # best first
    if os.environ.get("NLPBOOK_SCREENSHOT"):
        page.screenshot(path=os.environ["NLPBOOK_SCREENSHOT"], full_page=True)

    page.fill("#field-text", "   ")  # the server's 422 message is shown, and the page keeps working
    page.click("#predict")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert "non-empty text" in page.text_content("#error")
    page.fill("#field-text", "최악 졸작 지루")
    page.click("#predict")
    page.wait_for_function("document.getElementById('label').textContent === '0'", timeout=10_000)
    assert page.is_hidden("#error")
    page.close()


def test_concurrent_load_on_loopback(server: str) -> None:
    texts = [f"{word} 영화 {i}" for i, word in enumerate(["최고", "최악", "감동", "지루"] * 10)]
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: client.post(server + "predict", json={"text": t}), texts))
    assert [a.status_code for a in answers] == [200] * len(texts)
    assert [a.json()["text"] for a in answers] == texts
    assert [a.json()["label"] for a in answers] == ["1", "0", "1", "0"] * 10


def serve_in_thread(model_dir: Path, bias_toward: str | None = None) -> Iterator[str]:
    """The app in a uvicorn thread of this process (as in Colab): no second Python to start."""
    import threading

    import uvicorn

    from nlpbook.predictor import Predictor
    from nlpbook.web.app import create_app

    predictor = Predictor.from_pretrained(model_dir, device="cpu")
    if bias_toward is not None:  # make an untrained head predict this label everywhere
        predictor.export.model.classifier.bias.data[predictor.label_names.index(bias_toward)] += 20
    app = create_app(predictor)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn thread did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.skipif("paircls" not in TASKS, reason="pair classification task not registered yet")
def test_pair_page_has_two_boxes(tmp_path: Path, tiny_bert: Path, browser) -> None:  # noqa: ANN001
    export = untrained_export("paircls", tiny_bert, tmp_path / "pair", ["entailment", "contradiction"])
    for url in serve_in_thread(export):
        api = httpx.post(url + "predict", json={"text_a": "나는 영화를 봤다", "text_b": "극장에 갔다"}).json()
        page = open_page(browser, url)
        assert (
            page.is_visible("#field-text_a")
            and page.is_visible("#field-text_b")
            and page.is_hidden("#field-text")
        )
        page.fill("#field-text_a", "나는 영화를 봤다")
        page.fill("#field-text_b", "극장에 갔다")
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])", timeout=10_000)
        assert page.text_content("#label") == api["label"]
        page.close()


@pytest.mark.skipif("ner" not in TASKS, reason="NER task not registered yet")
def test_ner_page_highlights_entities(tmp_path: Path, tiny_bert: Path, browser) -> None:  # noqa: ANN001
    """Untrained tagger: whatever spans the API returns, the page marks exactly those."""
    export = untrained_export("ner", tiny_bert, tmp_path / "ner", ["O", "B-PS", "I-PS", "B-LC", "I-LC"])
    sentence = "이순신은 한양에서 태어났다"
    for url in serve_in_thread(export, bias_toward="B-PS"):  # every token its own PS entity
        api = httpx.post(url + "predict", json={"text": sentence}).json()
        assert len(api["entities"]) >= 3
        page = open_page(browser, url)
        page.fill("#field-text", sentence)
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])", timeout=10_000)
        marks = page.locator("#entities mark")
        assert [marks.nth(i).get_attribute("data-type") for i in range(marks.count())] == [
            e["type"] for e in api["entities"]
        ]
        text = page.evaluate(
            "[...document.getElementById('entities').childNodes]"
            ".map(n => n.nodeType === 3 ? n.textContent : n.firstChild.textContent).join('')"
        )
        assert text == sentence
        if os.environ.get("NLPBOOK_SCREENSHOT"):
            page.screenshot(path=os.environ["NLPBOOK_SCREENSHOT"].replace(".png", "-ner.png"), full_page=True)
        page.close()


def test_score_page_shows_the_score(tmp_path: Path, tiny_bert: Path, browser) -> None:  # noqa: ANN001
    """A regression model: the boxes come from the task's input fields, the answer is a number."""
    export = untrained_export("sts", tiny_bert, tmp_path / "sts", ["score"])
    for url in serve_in_thread(export):
        api = httpx.post(
            url + "predict", json={"text_a": "남자가 기타를 친다", "text_b": "남자가 연주한다"}
        ).json()
        page = open_page(browser, url)
        assert page.text_content("label[for=field-text_a]") == "문장 1 (text_a)"
        page.fill("#field-text_a", "남자가 기타를 친다")
        page.fill("#field-text_b", "남자가 연주한다")
        page.click("#predict")
        page.wait_for_selector("#result:not([hidden])", timeout=10_000)
        assert page.text_content("#label") == f"{api['score']:.3f}"
        page.close()
