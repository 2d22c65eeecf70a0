"""The FastAPI app behind ``nlpbook serve``: written once for every task.

The request body is handed to the task's own ``example_from_input`` (the same function
``Predictor`` uses), so a task that accepts ``{"text": ...}`` or ``{"text_a": ..., "text_b": ...}``
in Python accepts the same JSON here, with no per-task code in the server. Everything a client
can get wrong is answered with a 4xx and a message that says what to send instead; the server
keeps serving.

Concurrency: FastAPI runs requests concurrently, but one model call runs at a time behind a lock
(a torch model is not safe to call from several threads at once, and on CPU parallel calls only
compete for the same cores). A batch of texts in one request (``{"texts": [...]}``) is one model
call, which is the way to get throughput from this server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from nlpbook.predictor import Predictor

__all__ = ["Limits", "create_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so that a single client cannot tie the model up for minutes."""

    max_text_chars: int = 5000  # longer than any max_seq_length of tokens; protects the tokenizer
    max_batch_size: int = 64
    max_body_bytes: int = 1_000_000


def create_app(predictor: Predictor, limits: Limits | None = None) -> FastAPI:
    """An app serving ``predictor``: ``GET /`` (demo page), ``GET /health``, ``POST /predict``."""
    limits = limits or Limits()
    task = predictor.task
    lock = threading.Lock()
    app = FastAPI(title=f"nlpbook {task.name}", description=f"Predictions of {predictor.export.path}")

    def run_locked(examples: list[Any]) -> list[dict[str, Any]]:
        with lock:
            return predictor.predict_examples(examples)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "task": task.name,
            "labels": predictor.label_names,
            "max_seq_length": predictor.max_seq_length,
            **asdict(limits),
        }

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """``{"text": ...}`` (pairs: ``{"text_a": ..., "text_b": ...}``) -> one prediction;
        ``{"texts": [item, ...]}`` -> ``{"results": [...]}`` in the same order."""
        body = await _json_body(request, limits)
        single = "texts" not in body
        items = [body] if single else _batch_items(body, limits)
        examples = []
        for position, item in enumerate(items):
            where = "" if single else f"texts[{position}]: "
            _check_sizes(item, limits, where)
            try:
                examples.append(task.example_from_input(tuple(item) if isinstance(item, list) else item))
            except ValueError as error:
                raise HTTPException(422, f"{where}{error}") from None
        results = await run_in_threadpool(run_locked, examples)
        return results[0] if single else {"results": results}

    return app


async def _json_body(request: Request, limits: Limits) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {limits.max_body_bytes}")
    raw = await request.body()
    if len(raw) > limits.max_body_bytes:
        raise HTTPException(413, f"request body is {len(raw)} bytes; the limit is {limits.max_body_bytes}")
    if not raw.strip():
        raise HTTPException(400, 'empty request body; send JSON such as {"text": "..."}')
    try:
        body = json.loads(raw.decode("utf-8"))  # JSON over HTTP is UTF-8 (RFC 8259)
    except UnicodeDecodeError as error:
        raise HTTPException(400, f"request body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise HTTPException(
            400, f"malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    if not isinstance(body, dict):
        raise HTTPException(
            422, f'expected a JSON object such as {{"text": "..."}}, got a JSON {type(body).__name__}'
        )
    return body


def _batch_items(body: dict[str, Any], limits: Limits) -> list[Any]:
    items = body["texts"]
    if len(body) > 1:
        others = sorted(k for k in body if k != "texts")
        raise HTTPException(422, f"'texts' (a batch) cannot be combined with other fields {others}")
    if not isinstance(items, list) or not items:
        raise HTTPException(422, "'texts' must be a non-empty JSON list of inputs")
    if len(items) > limits.max_batch_size:
        raise HTTPException(
            413, f"'texts' holds {len(items)} inputs; this server takes at most {limits.max_batch_size}"
        )
    return items


def _check_sizes(item: Any, limits: Limits, where: str) -> None:
    """Oversized strings anywhere in one input (a text, a pair, a dict of fields) -> 413."""
    values = item.values() if isinstance(item, dict) else item if isinstance(item, list) else [item]
    for value in values:
        if isinstance(value, str) and len(value) > limits.max_text_chars:
            raise HTTPException(
                413,
                f"{where}text is {len(value)} characters; this server takes at most "
                f"{limits.max_text_chars} (models read only the first max_seq_length tokens anyway)",
            )
