"""Pair classification on real KorNLI: throughput (dynamic vs padded) and a bounded-budget baseline.

    python benchmarks/paircls_benchmark.py [--rows 384] [--steps 78]

Data: the shared KorNLI files (the training files are not available offline): train on
``xnli.dev.ko.tsv`` (2,490 pairs), evaluate on ``xnli.test.ko.tsv`` (5,010 pairs), tokenized by the
real kcbert-base tokenizer. Model: kcbert-base's config cut to 4 layers x 256 hidden (common.SMALL_BERT),
randomly initialised (no pretrained weights can be had offline).

1. Throughput, training and prediction examples/s: nlpbook's batching (pad each batch to its
   longest pair, length-grouped batches) vs every pair padded to max_seq_length=128 in random
   batches (ratsnlp's way). Same model weights, same rows, same batch size, same process.
2. Accuracy / macro F1 reached by ``nlpbook.train`` (the real command: Lightning, AdamW, warmup,
   linear decay) on the same small random-init BERT for a fixed budget of optimizer steps (default
   78 = one epoch of xnli.dev at batch 32), then ``nlpbook.evaluate`` on xnli.test. Without pretraining,
   expect little above chance (33%): this is a floor later work can compare against, not a
   measure of what kcbert-base reaches.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from common import SHARED_DATA, kcbert_tokenizer, report_throughput, save_small_bert
from transformers import AutoModelForSequenceClassification

import nlpbook
from nlpbook.paircls import TASK, PairClassificationTrainArguments

KORNLI = SHARED_DATA / "korpora" / "kornli"


def bounded_training(options) -> None:
    with tempfile.TemporaryDirectory(prefix="paircls-bench-") as tmp:
        base = save_small_bert(Path(tmp) / "small-bert", AutoModelForSequenceClassification, 3)
        args = PairClassificationTrainArguments(
            pretrained_model_name=str(base),
            downstream_model_dir=str(Path(tmp) / "run"),
            train_file=str(KORNLI / "xnli.dev.ko.tsv"),
            test_file=str(KORNLI / "xnli.test.ko.tsv"),
            max_seq_length=options.max_seq_length,
            batch_size=32,
            learning_rate=options.learning_rate,
            epochs=100,
            max_steps=options.steps,
            accelerator="cpu",
            seed=7,
            log_every_n_steps=20,
        )
        started = time.perf_counter()
        nlpbook.train(args)
        seconds = time.perf_counter() - started
        metrics = nlpbook.evaluate(args)
        epochs = options.steps * 32 / 2490
        print(
            f"bounded run: {options.steps} steps of batch 32 (~{epochs:.1f} epochs of xnli.dev), "
            f"lr {options.learning_rate}, warmup 10%, train+validate {seconds / 60:.1f} min on CPU"
        )
        print(
            f"xnli.test: accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} "
            f"({metrics['examples']} pairs; chance 0.333)"
        )
        matrix = metrics["confusion_matrix"]
        print(f"confusion (rows gold, cols predicted) {matrix['labels']}: {matrix['matrix']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=384, help="training pairs timed per side (prediction: twice as many)"
    )
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=78, help="optimizer steps of the bounded run")
    parser.add_argument("--learning_rate", type=float, default=3e-4)
    parser.add_argument("--skip_training", action="store_true", help="throughput only")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tokenizer = kcbert_tokenizer()
    args = PairClassificationTrainArguments(
        downstream_model_dir="unused", train_file=str(KORNLI / "xnli.dev.ko.tsv")
    )
    examples = TASK.read(args, "train")
    labels = TASK.label_names(examples)
    features = TASK.encode(
        examples, tokenizer, labels, SimpleNamespace(max_seq_length=options.max_seq_length)
    )
    lengths = sorted(len(f["input_ids"]) for f in features)
    print(
        f"xnli.dev.ko.tsv: {len(features)} pairs, [CLS] a [SEP] b [SEP] lengths with kcbert-base: "
        f"median {statistics.median(lengths)}, p90 {lengths[int(0.9 * len(lengths))]}, "
        f"p99 {lengths[int(0.99 * len(lengths))]}, max {lengths[-1]}, "
        f"at the {options.max_seq_length} limit: {sum(n >= options.max_seq_length for n in lengths)}"
    )
    report_throughput(
        AutoModelForSequenceClassification,
        features,
        len(labels),
        tokenizer.pad_token_id,
        rows=options.rows,
        max_seq_length=options.max_seq_length,
        unit="pairs",
    )
    if not options.skip_training:
        bounded_training(options)


if __name__ == "__main__":
    main()
