"""The FastAPI app behind ``nlpbook serve``: written once for every task.

The request body is handed to the task's own ``example_from_input`` (the same function
``Predictor`` uses), and ``/health`` publishes the task's declared input fields, from which the
page builds its boxes: a task that takes ``{"text": ...}``, ``{"text_a": ..., "text_b": ...}`` or
``{"question": ..., "context": ...}`` in Python takes the same JSON here, with no per-task code in
the server or the page. Everything a client
can get wrong is answered with a 4xx and a message that says what to send instead; the server
keeps serving.

Concurrency: one worker task owns the model, so calls never overlap (a torch model is not safe
to call from several threads at once, and on CPU parallel calls only compete for the same cores).
Requests that arrive while the model is busy wait in a queue, and the worker takes all of them
(up to ``max_batch_size`` inputs) as one length-sorted batch: under load, concurrent requests are
batched together; when idle, a request runs at once with no waiting window.

Browsers: the server has no authentication, so it refuses what a page on another site could make
a visitor's browser send. ``POST /predict`` takes only ``Content-Type: application/json`` (415
otherwise; a cross-origin JSON POST needs a CORS preflight, which this server never grants) and
only from its own origin (403 when ``Origin`` names another site). Every request must name an
allowed host in ``Host`` (403 otherwise): a site that re-points its DNS name at 127.0.0.1 (DNS
rebinding) makes its requests same-origin, but they still carry its own name.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from nlpbook.predictor import Predictor

__all__ = ["Limits", "MicroBatcher", "create_app", "STATIC_DIR", "LOOPBACK_HOSTS"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
# Host names that only this machine can be reached by. A page elsewhere cannot make a browser send
# them: its requests carry its own name. Any port is accepted (a local reverse proxy may use another).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class Limits:
    """Bounds on one request, so that a single client cannot tie the model up for minutes."""

    max_text_chars: int = 5000  # longer than any max_seq_length of tokens; protects the tokenizer
    max_batch_size: int = 64
    max_body_bytes: int = 1_000_000


class MicroBatcher:
    """The one caller of the model: queued requests are run together, in arrival order."""

    def __init__(self, predictor: Predictor, max_batch_size: int) -> None:
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[list[Any], asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None

    async def predict(self, examples: list[Any]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first request on this event loop: start its worker
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._work(self._queue))  # referenced: not collected
        future = loop.create_future()
        await self._queue.put((examples, future))
        return await future

    async def _work(self, queue: asyncio.Queue[tuple[list[Any], asyncio.Future]]) -> None:
        carry = None  # a request that did not fit into the last batch goes first in the next
        while True:
            waiting = [carry or await queue.get()]
            carry, size = None, len(waiting[0][0])
            while not queue.empty():
                request = queue.get_nowait()
                if size + len(request[0]) > self.max_batch_size:
                    carry = request
                    break
                waiting.append(request)
                size += len(request[0])
            await self._run(waiting)

    async def _run(self, waiting: list[tuple[list[Any], asyncio.Future]]) -> None:
        examples = [example for request, _ in waiting for example in request]
        try:
            results = await run_in_threadpool(self.predictor.predict_examples, examples)
        except Exception as error:
            if len(waiting) > 1:  # run them one by one, so only the request at fault fails
                for one in waiting:
                    await self._run([one])
                return
            logger.exception("prediction failed")
            if not waiting[0][1].done():
                waiting[0][1].set_exception(error)
            return
        start = 0
        for request, future in waiting:
            if not future.done():  # a client that went away has a cancelled future
                future.set_result(results[start : start + len(request)])
            start += len(request)


def create_app(
    predictor: Predictor, limits: Limits | None = None, *, allowed_hosts: Sequence[str] = LOOPBACK_HOSTS
) -> FastAPI:
    """An app serving ``predictor``: ``GET /`` (demo page), ``GET /health``, ``POST /predict``.

    ``allowed_hosts``: the names a request's ``Host`` header may carry (any port); ``"*"`` accepts
    any. The default, loopback only, suits a server bound to 127.0.0.1; ``nlpbook.serve`` picks
    the list from the address it binds.
    """
    limits = limits or Limits()
    task = predictor.task
    batcher = MicroBatcher(predictor, limits.max_batch_size)
    app = FastAPI(title=f"nlpbook {task.name}", description=f"Predictions of {predictor.export.path}")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "task": task.name,
            "input_fields": [asdict(field) for field in task.input_fields],
            "labels": predictor.label_names,
            "max_seq_length": predictor.max_seq_length,
            **asdict(limits),
        }

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        """One input (a JSON object with the task's input fields, see ``/health``) -> one
        prediction; ``{"texts": [item, ...]}`` -> ``{"results": [...]}`` in the same order."""
        body = await _json_body(request, limits)
        single = "texts" not in body
        items = [body] if single else _batch_items(body, limits)
        examples = []
        for position, item in enumerate(items):
            where = "" if single else f"texts[{position}]: "
            _check_sizes(item, limits, where)
            try:
                examples.append(task.example_from_input(item))
            except ValueError as error:
                raise HTTPException(422, f"{where}{error}") from None
        results = await batcher.predict(examples)
        return results[0] if single else {"results": results}

    app.add_middleware(_HostCheck, allowed_hosts=allowed_hosts)
    return app


class _HostCheck:
    """403 for a request whose ``Host`` is not one of ``allowed_hosts`` (names, any port; ``*``: any)."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = {_host_name(host) for host in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            host = Headers(scope=scope).get("host", "")
            if _host_name(host) not in self.allowed:
                detail = (
                    f"Host {host!r} is not allowed (this server answers to {sorted(self.allowed)}); "
                    f"to reach it by that name, serve with --allowed_hosts {_host_name(host) or '<name>'} "
                    "(allowed_hosts= in Python)"
                )
                await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _host_name(authority: str) -> str:
    """``Example.com:8000`` -> ``example.com``, ``[::1]:8000`` -> ``[::1]``, ``::1`` -> ``[::1]``."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    if authority.count(":") > 1:  # a bare IPv6 address (as given to --host)
        return f"[{authority}]"
    return authority.split(":")[0].rstrip(".")


def _authority(origin_or_host: str) -> str:
    """``https://Example.com:443`` and ``example.com`` -> ``example.com``, to compare Origin with Host."""
    authority = urlsplit(origin_or_host).netloc if "//" in origin_or_host else origin_or_host
    return authority.strip().lower().removesuffix(":80").removesuffix(":443")


def _check_browser_post(request: Request) -> None:
    """Refuse the POSTs a page on another site can make a browser send (no preflight needed)."""
    origin = request.headers.get("origin")
    # Sec-Fetch-Site is set by the browser and cannot be forged by a page; "same-origin" keeps the
    # demo working behind a reverse proxy that rewrites Host (nginx sends the upstream's by default).
    same_origin = request.headers.get("sec-fetch-site") == "same-origin"
    if (
        origin is not None
        and not same_origin
        and _authority(origin) != _authority(request.headers.get("host", ""))
    ):
        raise HTTPException(
            403, f"cross-origin request from {origin} refused: the demo only answers its own page"
        )
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise HTTPException(
            415,
            f"Content-Type is {content_type or 'missing'!r}; send JSON with Content-Type: application/json "
            "(curl: -H 'Content-Type: application/json')",
        )


def _too_large(message: str) -> HTTPException:
    # Connection: close, so the server drops the rest of the body instead of reading it to discard
    # it (uvicorn 0.54 reads a body the app left unread to the end when the connection stays open).
    return HTTPException(413, message, headers={"Connection": "close"})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read chunk by chunk and abandoned as soon as it passes ``limit``: a chunked upload
    has no Content-Length to check first, and reading it whole would hold all of it in memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"request body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async with aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise _too_large(f"request body is over {limit} bytes; the limit is {limit}")
    return bytes(body)


async def _json_body(request: Request, limits: Limits) -> dict[str, Any]:
    _check_browser_post(request)
    raw = await _read_body(request, limits.max_body_bytes)
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
    except RecursionError:  # [[[[...]]]] deeper than the parser's recursion limit
        raise HTTPException(
            400, 'JSON nested too deeply; send a flat object such as {"text": "..."}'
        ) from None
    except ValueError as error:  # Python's limit on int digits (4300): a number no input needs
        raise HTTPException(400, f"unusable JSON: {str(error).split(';')[0]}") from None
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
