"""Bounded loopback load on `nlpbook serve`: latency percentiles and errors.

Starts the real CLI (``python -m nlpbook.cli serve``) on 127.0.0.1 at a free port, sends
``--requests`` single-text POST /predict requests (NSMC test reviews) from ``--concurrency``
client threads, and reports p50/p90/p99 latency, requests/s and the error count. Baseline in the
same run: the same model called in-process, one text at a time (no HTTP): the last lines say
what HTTP and queueing add to latency, and what batching concurrent requests gains in throughput.

Only loopback is ever contacted. Without ``--model_dir`` an export is built from kcbert-base's
tokenizer and a from-config BERT (``common.SMALL_BERT``, random weights).
Run: ``python benchmarks/serve_load.py [--requests 1000] [--concurrency 8] [--model_dir DIR]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import KCBERT_DIR, kcbert_tokenizer, require_shared_data, small_bert  # noqa: E402
from predict_throughput import nsmc_texts  # noqa: E402

HOST = "127.0.0.1"  # loopback only, never another machine


def build_export(folder: Path) -> Path:
    """A classification export of the from-config small BERT with the real kcbert tokenizer."""
    from nlpbook.classification import ClassificationTrainArguments
    from nlpbook.export import write_export
    from nlpbook.tasks import get_task

    require_shared_data()
    task = get_task("classification")
    labels = ["negative", "positive"]
    args = ClassificationTrainArguments(
        pretrained_model_name=str(KCBERT_DIR), downstream_model_dir=str(folder), random_init=True
    )
    model = small_bert(task.head.model_class(), num_labels=len(labels))
    return write_export(folder / "export", model, kcbert_tokenizer(), task, labels, args)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def wait_for_health(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"nlpbook serve exited with {process.returncode}")
        try:
            if httpx.get(url + "health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit("nlpbook serve did not answer /health in time")


def load(url: str, texts: list[str], concurrency: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(text: str) -> tuple[float, bool]:
            started = time.perf_counter()
            try:
                ok = client.post(url + "predict", json={"text": text}).status_code == 200
            except httpx.HTTPError:
                ok = False
            return time.perf_counter() - started, ok

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for seconds, ok in pool.map(one, texts):
                latencies.append(seconds)
                errors += not ok
        wall = time.perf_counter() - started
    return latencies, errors, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model_dir", type=Path, help="an export to serve (default: build a small one)")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads, server and baseline alike (OMP_NUM_THREADS)"
    )
    options = parser.parse_args()
    env = dict(os.environ)
    if options.threads:
        env["OMP_NUM_THREADS"] = str(options.threads)
        torch.set_num_threads(options.threads)
    texts = (nsmc_texts(options.requests) * (options.requests // 1000 + 1))[: options.requests]

    with tempfile.TemporaryDirectory() as folder:
        model_dir = options.model_dir or build_export(Path(folder))
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        url = f"http://{HOST}:{port}/"
        command = [sys.executable, "-m", "nlpbook.cli", "serve", "--model_dir", str(model_dir)]
        process = subprocess.Popen(
            [*command, "--host", HOST, "--port", str(port), "--device", "cpu"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            wait_for_health(url, process)
            load(url, texts[:20], options.concurrency)  # warm-up
            latencies, errors, wall = load(url, texts, options.concurrency)
        finally:
            process.terminate()
            process.wait(timeout=30)

        from nlpbook.predictor import Predictor

        predictor = Predictor.from_pretrained(model_dir, device="cpu")
        direct = []
        for text in texts[: min(200, len(texts))]:
            started = time.perf_counter()
            predictor(text)
            direct.append(time.perf_counter() - started)

    ms = [1000 * s for s in latencies]
    threads = options.threads or torch.get_num_threads()
    print(f"requests={len(texts)} concurrency={options.concurrency} torch_threads={threads} errors={errors}")
    print(
        f"http latency ms: p50={percentile(ms, 50):.1f} p90={percentile(ms, 90):.1f} "
        f"p99={percentile(ms, 99):.1f} max={max(ms):.1f} mean={statistics.mean(ms):.1f}"
    )
    print(f"throughput={len(texts) / wall:.1f} requests/s over {wall:.1f}s")
    direct_ms = 1000 * statistics.median(direct)
    print(f"baseline in-process single-text p50={direct_ms:.1f} ms (no HTTP, no queue)")
    sequential = 1000 / (1000 * statistics.mean(direct))
    print(f"baseline in-process sequential throughput={sequential:.1f} texts/s")
    print(f"p50_vs_in_process={percentile(ms, 50) / direct_ms:.2f}")
    print(f"throughput_vs_in_process_sequential={len(texts) / wall / sequential:.2f}")
    print(f"errors={errors}")


if __name__ == "__main__":
    main()
