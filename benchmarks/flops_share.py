"""Real-token training FLOP/s at kcbert-base size, as a share of the CPU's fp32 matmul peak.

Run through ``python benchmarks/vs_hf_trainer.py --repeats 0 --flops_steps 20`` (its part 2).
``training_flops`` times ``--flops_steps`` steps of ``nlpbook.train`` (batch 32, NSMC rows, after 3
untimed ones) with hooks on nlpbook's LightningModule, so whatever nlpbook does per step is counted,
and divides 6 x N x real tokens/s (N: non-embedding parameters) by the fp32 matmul peak. This
shared machine's speed moves by a quarter within seconds, so a peak taken at other moments than the
steps misstates the share: a 0.5 s loop of 2048 x 2048 matmuls runs after each timed step (outside
its timing), and ``training_flops_share_of_peak`` is the median over the steps of each step's
FLOP/s over the peak sampled right after it. The whole window's FLOP/s against the median sample
and against the best of two 2-second loops before and after the steps are printed too. It also
prints the FLOP/s nlpbook actually runs: 6 x N counts the whole last layer, whose non-[CLS] rows
nlpbook leaves out (``nlpbook/first_token.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from common import KCBERT_DIR, SHARED_DATA, kcbert_tokenizer, model_flops_per_token

import nlpbook
from nlpbook.classification import ClassificationTrainArguments
from nlpbook.first_token import read_first_token_only

BATCH_SIZE = 32
SEED = 7


def matmul_peak_gflops(size: int = 2048, seconds: float = 2.0, rounds: int = 3) -> float:
    """Best fp32 GFLOP/s of ``size`` x ``size`` matmuls over ``rounds`` loops of ``seconds``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    best = 0.0
    for _ in range(rounds):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.mm(a, b, out=out)
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - started) / 1e9)
    return best


@contextlib.contextmanager
def step_timer(warmup: int, steps: int, between: Callable[[], float]) -> Iterator[list[dict[str, float]]]:
    """Time ``steps`` training batches of nlpbook's LightningModule after ``warmup`` untimed ones,
    one record per step, and call ``between`` after each, outside the timing (a matmul peak sample:
    this machine is shared, and its speed moves within seconds). A step counts everything nlpbook
    does from the end of the previous one to its own end (optimizer step, logging, the next batch)."""
    from nlpbook.module import TaskModule

    records: list[dict[str, float]] = []
    mark = [math.nan]
    original_start, original_end = TaskModule.on_train_batch_start, TaskModule.on_train_batch_end

    def on_start(self: Any, batch: Any, batch_idx: int) -> Any:
        if batch_idx == warmup:
            mark[0] = time.perf_counter()
        if warmup <= batch_idx < warmup + steps:
            mask = batch["attention_mask"]
            records.append({"tokens": float(mask.sum()), "rows": float(mask.shape[0])})
        return original_start(self, batch, batch_idx)

    def on_end(self: Any, outputs: Any, batch: Any, batch_idx: int) -> Any:
        result = original_end(self, outputs, batch, batch_idx)
        if warmup <= batch_idx < warmup + steps:
            records[-1]["seconds"] = time.perf_counter() - mark[0]
            records[-1]["peak"] = between()
            mark[0] = time.perf_counter()
        return result

    TaskModule.on_train_batch_start, TaskModule.on_train_batch_end = on_start, on_end
    try:
        yield records
    finally:
        TaskModule.on_train_batch_start, TaskModule.on_train_batch_end = original_start, original_end


def training_flops(options: argparse.Namespace) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    warmup = 3
    config = AutoConfig.from_pretrained(KCBERT_DIR, num_labels=2, num_hidden_layers=options.flops_layers)
    model = read_first_token_only(AutoModelForSequenceClassification.from_config(config))
    flops_per_token = model_flops_per_token(model)
    # FLOPs per token that nlpbook does not run: the last layer's rows other than [CLS] (first_token.py)
    last = model.bert.encoder.layer[-1]
    skipped = [
        last.attention.self.query,
        last.attention.output.dense,
        last.intermediate.dense,
        last.output.dense,
    ]
    skipped_per_token = 6.0 * sum(p.numel() for m in skipped for p in m.parameters())
    peak_before = matmul_peak_gflops()
    print(
        f"fp32 matmul peak (2048 x 2048, {torch.get_num_threads()} threads): {peak_before:.1f} GFLOP/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="flops-") as tmp:
        folder = Path(tmp) / "kcbert-config"
        config.save_pretrained(folder)
        kcbert_tokenizer().save_pretrained(folder)
        args = ClassificationTrainArguments(
            pretrained_model_name=str(folder),
            random_init=True,  # kcbert-base's config; no weights are available offline
            downstream_corpus_root_dir=str(SHARED_DATA / "korpora"),
            downstream_model_dir=str(Path(tmp) / "run"),
            max_train_samples=(warmup + options.flops_steps) * BATCH_SIZE,
            max_eval_samples=BATCH_SIZE,
            batch_size=BATCH_SIZE,
            max_steps=warmup + options.flops_steps,
            epochs=1,
            seed=SEED,
            accelerator="cpu",
        )
        peak_sample = functools.partial(matmul_peak_gflops, seconds=0.5, rounds=1)
        with step_timer(warmup, options.flops_steps, peak_sample) as steps:
            nlpbook.train(args)
    peak_after = matmul_peak_gflops()
    peaks = [step["peak"] for step in steps]
    print(
        f"fp32 matmul peak after the steps: {peak_after:.1f} GFLOP/s; sampled after each step: "
        f"{min(peaks):.1f}-{max(peaks):.1f}, median {statistics.median(peaks):.1f}"
    )
    tokens, seconds = sum(step["tokens"] for step in steps), sum(step["seconds"] for step in steps)
    gflops = flops_per_token * tokens / seconds / 1e9
    print(
        f"kcbert-base size ({options.flops_layers} layers x 768, N = {flops_per_token / 6 / 1e6:.1f}M "
        f"non-embedding parameters): {len(steps)} nlpbook training steps of batch {BATCH_SIZE} "
        f"in {seconds:.1f}s, {tokens / seconds:.0f} real tokens/s = {gflops:.1f} GFLOP/s "
        f"(6 x N x real tokens/s): {gflops / statistics.median(peaks):.0%} of the median peak sample, "
        f"{gflops / max(peak_before, peak_after):.0%} of the best peak before or after"
    )

    def share(flops_of_step: Callable[[dict[str, float]], float]) -> float:
        """Median over the steps of each step's FLOP/s over the peak sampled right after it."""
        return statistics.median(flops_of_step(step) / step["seconds"] / 1e9 / step["peak"] for step in steps)

    def executed(step: dict[str, float]) -> float:  # without the last layer's non-[CLS] rows
        return flops_per_token * step["tokens"] - skipped_per_token * (step["tokens"] - step["rows"])

    paired, paired_executed = share(lambda step: flops_per_token * step["tokens"]), share(executed)
    print(
        f"each step against the peak sampled right after it, median: {paired:.0%} (6 x N); "
        f"{paired_executed:.0%} for the FLOPs nlpbook actually runs "
        f"(executed_flops_share_of_peak={paired_executed:.3f})"
    )
    print(f"training_flops_share_of_peak={paired:.3f}")
