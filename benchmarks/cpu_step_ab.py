"""A/B of three CPU training-step changes, each against what it replaced, in the same run.

    python benchmarks/cpu_step_ab.py [--layers 12] [--hidden 768] [--length 24] [--steps 8] [--threads 2]

A BERT sentence classifier of kcbert-base's shape (random weights, vocab 30,000, batch 32 of
``--length`` random tokens: NSMC's mean review is 19.7 tokens plus [CLS] and [SEP]) trains with
nlpbook's optimizer (fused AdamW) and clipping at 1.0, and its [CLS]-only last layer.

1. Dropout: torch's ``nn.Dropout`` vs ``nlpbook.cpu_dropout.CpuDropout``, switched every step in
   one process, so that both see the same moments of this shared machine; median step times.
2. glibc malloc: default vs ``nlpbook.process_memory.freed_memory_kept``, each in a fresh process
   (the setting is process-wide), alternating, ``--rounds`` of each; median step times and page
   faults per step.
3. Padding: transformers' ``BertEncoder`` vs ``nlpbook.skip_padding``'s encoder, switched every
   step in one process, on a batch whose rows are ``--length``, ``--length`` - 1 and ``--length``
   - 2 tokens long in turn (4% padding at 24 tokens, as length-grouped NSMC batches have), with
   ``CpuDropout`` and freed memory kept on both sides.

Last lines: ``cpu_dropout_speedup=<x>``, ``freed_memory_kept_speedup=<x>`` and
``skip_padding_speedup=<x>`` (above 1: faster).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nlpbook.cpu_dropout import CpuDropout  # noqa: E402
from nlpbook.first_token import read_first_token_only  # noqa: E402
from nlpbook.module import make_optimizer  # noqa: E402
from nlpbook.process_memory import freed_memory_kept  # noqa: E402
from nlpbook.skip_padding import PaddingSkippingBertEncoder, skip_padding  # noqa: E402


def model_and_step(
    options: argparse.Namespace, ragged: bool = False
) -> tuple[nn.Module, Callable[[], float]]:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30000,
        hidden_size=options.hidden,
        num_hidden_layers=options.layers,
        num_attention_heads=options.hidden // 64,
        intermediate_size=4 * options.hidden,
        max_position_embeddings=300,
    )
    model = read_first_token_only(BertForSequenceClassification(config)).train()
    optimizer = make_optimizer(model, 5e-5, 0.01, fused=True)
    ids = torch.randint(5, 30000, (32, options.length))
    mask = torch.ones_like(ids)
    if ragged:  # rows of length, length - 1, length - 2, ... tokens
        for row in range(len(mask)):
            mask[row, options.length - row % 3 :] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (32,))}

    def step() -> float:
        started = time.perf_counter()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - started

    return model, step


def set_dropout(model: nn.Module, kind: type) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.__class__ = kind


def alternating_medians(
    step: Callable[[], float], switches: list[Callable[[], None]], steps: int
) -> list[float]:
    """Median step time after each switch, switching before every step in turn (one warm-up step
    each first), so that all sides see the same moments of this shared machine."""
    times: list[list[float]] = [[] for _ in switches]
    for switch in switches:
        switch()
        step()
    for _ in range(steps):
        for switch, values in zip(switches, times, strict=True):
            switch()
            values.append(step())
    return [statistics.median(values) for values in times]


def compare_dropout(options: argparse.Namespace) -> float:
    model, step = model_and_step(options)
    torch_s, ours = alternating_medians(
        step, [lambda: set_dropout(model, nn.Dropout), lambda: set_dropout(model, CpuDropout)], options.steps
    )
    print(f"dropout: torch's {torch_s * 1000:.0f} ms/step, CpuDropout {ours * 1000:.0f} ms/step (medians)")
    return torch_s / ours


def one_process(options: argparse.Namespace) -> None:
    """A child of ``compare_malloc``: nlpbook's steps, with malloc as ``--malloc`` says."""
    model, step = model_and_step(options)
    set_dropout(model, CpuDropout)
    with freed_memory_kept() if options.malloc == "kept" else contextlib.nullcontext():
        for _ in range(3):  # the heap grows over the first steps
            step()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = [step() for _ in range(options.steps)]
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"seconds": statistics.median(times), "faults": faults / options.steps}))


def compare_malloc(options: argparse.Namespace) -> float:
    results: dict[str, list[dict[str, float]]] = {"default": [], "kept": []}
    for _ in range(options.rounds):
        for kind, values in results.items():
            command = [sys.executable, __file__, "--one_process", "--malloc", kind]
            for name in ("layers", "hidden", "length", "steps", "threads"):
                command += [f"--{name}", str(getattr(options, name))]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            values.append(json.loads(out.strip().splitlines()[-1]))
    medians = {kind: statistics.median(r["seconds"] for r in values) for kind, values in results.items()}
    for kind, values in results.items():
        faults = statistics.median(r["faults"] for r in values)
        print(
            f"malloc {kind:7s}: {medians[kind] * 1000:.0f} ms/step, {faults:.0f} page faults/step (medians)"
        )
    return medians["default"] / medians["kept"]


def compare_skip_padding(options: argparse.Namespace) -> float:
    from transformers.models.bert.modeling_bert import BertEncoder

    model, step = model_and_step(options, ragged=True)
    set_dropout(model, CpuDropout)
    skip_padding(model)
    encoder = model.bert.encoder

    def use(kind: type) -> Callable[[], None]:
        return lambda: setattr(encoder, "__class__", kind)

    with freed_memory_kept():
        padded, skipping = alternating_medians(
            step, [use(BertEncoder), use(PaddingSkippingBertEncoder)], options.steps
        )
    padding = sum(row % 3 for row in range(32)) / (32 * options.length)
    print(
        f"padding ({padding:.1%} of the batch): every row {padded * 1000:.0f} ms/step, "
        f"real tokens only {skipping * 1000:.0f} ms/step (medians)"
    )
    return padded / skipping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per side (per process for malloc)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per malloc setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one_process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--malloc", choices=("default", "kept"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    if options.one_process:
        one_process(options)
        return
    print(
        f"torch {torch.__version__}, {options.threads} threads, {options.layers} x {options.hidden}, "
        f"batch 32 x {options.length} tokens"
    )
    dropout = compare_dropout(options)
    malloc = compare_malloc(options)
    padding = compare_skip_padding(options)
    print(f"cpu_dropout_speedup={dropout:.3f}")
    print(f"freed_memory_kept_speedup={malloc:.3f}")
    print(f"skip_padding_speedup={padding:.3f}")


if __name__ == "__main__":
    main()
