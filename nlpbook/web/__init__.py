"""``nlpbook serve``: a web demo and JSON API for an export folder, on any task.

``nlpbook.serve(model_dir, host, port)`` blocks while serving (as the CLI does). From a notebook
(Colab included) run it in a background thread; see docs/predict-and-serve.md.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str | None = None,
    batch_size: int = 64,
    bf16: bool = False,
    quantize: str | None = None,
    max_text_chars: int = 5000,
    max_batch_size: int = 64,
    allowed_hosts: Sequence[str] | None = None,
    log_level: str = "info",
) -> None:
    """Load the export in ``model_dir`` and serve ``GET /``, ``GET /health`` and ``POST /predict``.

    Loopback (127.0.0.1) by default: the demo has no authentication, so opening it to other
    machines (``host="0.0.0.0"``) is a choice the caller makes explicitly.

    ``allowed_hosts``: names a request's ``Host`` header may carry besides 127.0.0.1, localhost
    and [::1] (``["*"]``: any). By default none on a loopback ``host`` (a web page that re-points
    its DNS name at 127.0.0.1 is refused), any on another ``host`` (the server is open anyway).

    ``quantize="int8"``: serve a dynamically int8-quantized copy of the model (CPU only; see
    ``Predictor``).
    """
    import uvicorn  # imported here so `import nlpbook` does not pay for the web stack

    from nlpbook.predictor import Predictor
    from nlpbook.web.app import LOOPBACK_HOSTS, Limits, create_app

    if allowed_hosts is None:
        allowed_hosts = [host] if _is_loopback(host) else ["*"]
    hosts = [*LOOPBACK_HOSTS, *allowed_hosts]

    predictor = Predictor.from_pretrained(
        model_dir, device=device, batch_size=batch_size, dtype="bf16" if bf16 else None, quantize=quantize
    )
    limits = Limits(max_text_chars=max_text_chars, max_batch_size=max_batch_size)
    app = create_app(predictor, limits, allowed_hosts=hosts)
    logger.info("serving the %s model in %s at http://%s:%d/", predictor.task.name, model_dir, host, port)
    logger.info("accepting requests for Host %s", "any" if "*" in hosts else ", ".join(hosts))
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: resolved by uvicorn, not guessed here
        return False
