"""Training throughput on NSMC: nlpbook's batching vs padding every example to 128 (ratsnlp's way).

    python benchmarks/train_throughput.py [--rows 3200] [--batch_size 32] [--end_to_end_rows 960]

Same model (a small from-config BERT on kcbert-base's vocab), same rows, same batch size, same
optimizer, same process. Three measurements:

1. featurization of all 29,999 training rows;
2. training steps (nlpbook's loader, AdamW, clipping) in a plain loop, best of 2 alternating
   rounds: the model's own examples/s with each batching;
3. end to end, ``nlpbook.train`` itself (Lightning, logging, checkpoints, validation, export)
   with ``padding="max_length", group_by_length=False`` against the defaults, wall-clock: what
   a user waits for. Fixed costs (loading, export) weigh on both sides, so this ratio is lower.

The last line is ``speedup_vs_padded=<ratio>`` of measurement 2.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from common import SHARED_DATA, compare, kcbert_tokenizer, save_small_bert, small_bert
from transformers import AutoModelForSequenceClassification

import nlpbook
from nlpbook.classification import TASK, ClassificationTrainArguments


def end_to_end(rows: int, batch_size: int, max_seq_length: int) -> float:
    """Wall-clock seconds of ``nlpbook.train`` on ``rows`` NSMC rows, padded vs default; returns the ratio."""
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        base = save_small_bert(Path(tmp) / "small-bert", AutoModelForSequenceClassification, 2)
        for name, options in (
            ("padded", {"padding": "max_length", "group_by_length": False}),
            ("dynamic", {}),
        ):
            args = ClassificationTrainArguments(
                pretrained_model_name=str(base),
                downstream_corpus_root_dir=str(SHARED_DATA / "korpora"),
                downstream_model_dir=str(Path(tmp) / name),
                max_train_samples=rows,
                max_eval_samples=256,
                batch_size=batch_size,
                max_seq_length=max_seq_length,
                epochs=1,
                accelerator="cpu",
                **options,
            )
            started = time.perf_counter()
            nlpbook.train(args)
            seconds[name] = time.perf_counter() - started
            print(
                f"nlpbook.train {name:8s} {seconds[name]:6.1f}s wall, {rows} training + 256 validation rows "
                f"= {rows / seconds[name]:6.1f} training rows/s end to end"
            )
    return seconds["padded"] / seconds["dynamic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3200, help="training rows timed per side")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument(
        "--end_to_end_rows", type=int, default=960, help="rows for the nlpbook.train comparison (0: skip)"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(SHARED_DATA / "korpora"), downstream_model_dir="unused"
    )
    tokenizer = kcbert_tokenizer()
    examples = TASK.read(args, "train")
    labels = TASK.label_names(examples)

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        features = TASK.encode(
            examples, tokenizer, labels, SimpleNamespace(max_seq_length=options.max_seq_length)
        )
        timings.append(time.perf_counter() - started)
    lengths = sorted(len(f["input_ids"]) for f in features)
    print(
        f"featurization: {len(features)} rows in {min(timings):.2f}s (best of 3) = "
        f"{len(features) / min(timings):,.0f} rows/s"
    )
    print(
        f"token lengths: median {statistics.median(lengths)}, p90 {lengths[int(0.9 * len(lengths))]}, "
        f"p99 {lengths[int(0.99 * len(lengths))]}, mean {statistics.fmean(lengths):.1f}"
    )

    torch.set_num_threads(torch.get_num_threads())
    model = small_bert(AutoModelForSequenceClassification, num_labels=len(labels))
    subset = features[: options.rows]
    print(
        f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
        f"{model.config.num_hidden_layers} layers x {model.config.hidden_size} hidden; "
        f"{torch.get_num_threads()} threads; {len(subset)} rows, batch {options.batch_size}"
    )
    batches = len(subset) // options.batch_size - 2
    result = compare(
        model,
        subset,
        tokenizer.pad_token_id,
        train=True,
        batch_size=options.batch_size,
        max_seq_length=options.max_seq_length,
        max_batches=batches,
    )
    for name, r in result.items():
        print(
            f"{name:8s} {r['examples_per_s']:8.1f} examples/s  {r['tokens_per_batch_row']:6.1f} tokens/row  "
            f"padding {r['padding_share']:.0%}"
        )
    if options.end_to_end_rows:
        ratio = end_to_end(options.end_to_end_rows, options.batch_size, options.max_seq_length)
        print(f"end_to_end_speedup_vs_padded={ratio:.2f}")
    print(f"speedup_vs_padded={result['dynamic']['examples_per_s'] / result['padded']['examples_per_s']:.2f}")


if __name__ == "__main__":
    main()
