"""Shared pieces of the benchmark scripts: the real tokenizer, a small from-config BERT, timing.

Benchmarks compare nlpbook's way (per-batch padding, length-grouped batches) with the baseline
ratsnlp used (every example padded to max_seq_length, random batches) on the same model, rows
and batch size, in the same process, alternating the two so that a busy machine hurts both alike.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nlpbook.data import make_loader
from nlpbook.tasks import Features

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KCBERT_DIR = SHARED_DATA / "models" / "kcbert-base"

# Small enough to train on a 2-core CPU, shaped like BERT (kcbert-base is 12 x 768).
SMALL_BERT = {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024}


def require_shared_data() -> Path:
    if not (KCBERT_DIR / "vocab.txt").is_file():
        raise SystemExit(f"needs the shared data (kcbert-base tokenizer) at {SHARED_DATA}")
    return SHARED_DATA


def kcbert_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(require_shared_data() / "models" / "kcbert-base")


def small_bert(model_class: Any, num_labels: int, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """kcbert-base's config (vocab, positions) with fewer/smaller layers, randomly initialised."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(KCBERT_DIR, num_labels=num_labels, **{**SMALL_BERT, **overrides})
    torch.manual_seed(seed)
    return model_class.from_config(config)


class Clock:
    """Wall and process CPU seconds of a block: on a shared machine CPU seconds vary less."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = -time.perf_counter(), -time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter()
        self.cpu += time.process_time()

    def __str__(self) -> str:
        return f"{self.wall:.1f}s ({self.cpu:.1f}s cpu)"


def model_flops_per_token(model: torch.nn.Module) -> float:
    """6 x non-embedding parameters: the usual estimate of training FLOPs per token."""
    embedding = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return 6.0 * (sum(p.numel() for p in model.parameters()) - embedding)


def loader_for(
    features: Sequence[Features],
    batch_size: int,
    pad_token_id: int,
    padded_to: int | None,
    shuffle: bool,
    seed: int = 0,
) -> Any:
    """nlpbook's loader (``padded_to=None``) or the padded baseline (``padded_to=max_seq_length``)."""
    return make_loader(
        features,
        batch_size,
        pad_token_id,
        shuffle=shuffle,
        group_by_length=padded_to is None,
        pad_to=padded_to,
        seed=seed,
    )


def time_loop(
    step: Callable[[dict[str, torch.Tensor]], None], loader: Any, max_batches: int | None, warmup: int = 2
) -> dict[str, float]:
    """Examples/s and tokens/s of ``step`` over the loader's batches, after ``warmup`` batches."""
    examples = tokens = real_tokens = 0
    started = None
    for index, batch in enumerate(loader):
        if max_batches is not None and index >= max_batches + warmup:
            break
        if index == warmup:
            started = time.perf_counter()
        step(batch)
        if index >= warmup:
            examples += batch["input_ids"].shape[0]
            tokens += batch["input_ids"].numel()
            real_tokens += int(batch["attention_mask"].sum())
    seconds = time.perf_counter() - (started or time.perf_counter())
    return {
        "examples": examples,
        "seconds": seconds,
        "examples_per_s": examples / max(seconds, 1e-9),
        "tokens_per_batch_row": tokens / max(examples, 1),
        "padding_share": 1 - real_tokens / max(tokens, 1),
    }


def training_step_fn(model: torch.nn.Module, learning_rate: float = 5e-5) -> Callable[[dict], None]:
    """One optimizer step, as nlpbook's TaskModule takes it (same AdamW settings)."""
    from nlpbook.module import make_optimizer

    optimizer = make_optimizer(model, learning_rate, weight_decay=0.01)
    model.train()

    def step(batch: dict[str, torch.Tensor]) -> None:
        inputs = {k: v for k, v in batch.items() if k != "feature_index"}
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inference_step_fn(model: torch.nn.Module) -> Callable[[dict], None]:
    model.eval()

    @torch.inference_mode()
    def step(batch: dict[str, torch.Tensor]) -> None:
        inputs = {k: v for k, v in batch.items() if k not in ("feature_index", "labels")}
        model(**inputs)

    return step


def compare(
    model: torch.nn.Module,
    features: Sequence[Features],
    pad_token_id: int,
    *,
    train: bool,
    batch_size: int,
    max_seq_length: int,
    max_batches: int | None,
    rounds: int = 2,
) -> dict[str, dict[str, float]]:
    """Best-of-``rounds`` throughput of nlpbook's batching vs padding to ``max_seq_length``.

    Both sides start from the same weights (a deep copy) and see the same rows.
    """
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, padded_to in (("padded", max_seq_length), ("dynamic", None)):
            copy_ = copy.deepcopy(model)
            step = training_step_fn(copy_) if train else inference_step_fn(copy_)
            loader = loader_for(features, batch_size, pad_token_id, padded_to, shuffle=train)
            result = time_loop(step, loader, max_batches)
            if name not in best or result["examples_per_s"] > best[name]["examples_per_s"]:
                best[name] = result
    return best


def save_small_bert(folder: Path, model_class: Any, num_labels: int, **overrides: Any) -> Path:
    """A folder that looks like a hub model (weights + kcbert tokenizer): ``nlpbook.train`` loads it
    through the same ``pretrained_model_name`` path a user's ``beomi/kcbert-base`` takes.
    ``overrides`` change ``SMALL_BERT``'s sizes."""
    small_bert(model_class, num_labels=num_labels, **overrides).save_pretrained(folder)
    kcbert_tokenizer().save_pretrained(folder)
    return folder


def report_throughput(
    model_class: Any,
    features: Sequence[Features],
    num_labels: int,
    pad_token_id: int,
    *,
    rows: int,
    max_seq_length: int,
    unit: str = "examples",
) -> None:
    """Training (batch 32) and prediction (batch 64, twice the rows) examples/s, nlpbook vs padded."""
    model = small_bert(model_class, num_labels=num_labels)
    print(
        f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{model.config.num_hidden_layers} layers x {model.config.hidden_size} hidden, random init; "
        f"{torch.get_num_threads()} threads"
    )
    for train, count, batch_size in ((True, rows, 32), (False, rows * 2, 64)):
        subset = features[:count]
        result = compare(
            model,
            subset,
            pad_token_id,
            train=train,
            batch_size=batch_size,
            max_seq_length=max_seq_length,
            max_batches=len(subset) // batch_size - 2,
        )
        name = "training  " if train else "prediction"
        for side, r in result.items():
            print(
                f"{name} {side:8s} {r['examples_per_s']:8.1f} examples/s  "
                f"{r['tokens_per_batch_row']:6.1f} tokens/row  padding {r['padding_share']:.0%}  "
                f"({r['examples']} {unit}, batch {batch_size})"
            )
        ratio = result["dynamic"]["examples_per_s"] / result["padded"]["examples_per_s"]
        print(f"{name.strip()}_speedup_vs_padded={ratio:.2f}")
