"""Training throughput on NSMC: nlpbook's batching vs padding every example to 128 (ratsnlp's way).

    python benchmarks/train_throughput.py [--rows 3200] [--batch_size 32]

Same model (a small from-config BERT on kcbert-base's vocab), same rows, same batch size, same
optimizer, same process. Also times featurization of all 29,999 training rows. The last line is
``speedup_vs_padded=<ratio>``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
from common import SHARED_DATA, compare, kcbert_tokenizer, small_bert
from transformers import AutoModelForSequenceClassification

from nlpbook.classification import TASK, ClassificationTrainArguments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=3200, help="training rows timed per side")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
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
        features = TASK.encode(examples, tokenizer, labels, options.max_seq_length)
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
    print(f"speedup_vs_padded={result['dynamic']['examples_per_s'] / result['padded']['examples_per_s']:.2f}")


if __name__ == "__main__":
    main()
