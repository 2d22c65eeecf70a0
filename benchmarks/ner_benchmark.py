"""NER on real KLUE-NER: throughput (dynamic vs padded) and a bounded-budget baseline.

    python benchmarks/ner_benchmark.py [--rows 1600] [--steps 600]

Data: the shared KLUE-NER files, ``klue-ner-mini_train.tsv`` (the first 5,000 of 21,008 training
sentences) and ``klue-ner-v1.1_dev.tsv`` (5,000), tokenized by the real kcbert-base tokenizer.
Model: kcbert-base's config cut to 4 layers x 256 hidden (common.SMALL_BERT), randomly
initialised (no pretrained weights can be had offline), with a token-classification head.

1. Throughput, training and prediction examples/s: nlpbook's batching (pad each batch to its
   longest sentence, length-grouped batches) vs every window padded to max_seq_length=128 in
   random batches (ratsnlp's way). Same model weights, same rows, same batch size, same process.
2. Entity F1 reached by ``nlpbook.train`` (the real command: Lightning, AdamW, warmup, linear
   decay) on the same small random-init BERT within a fixed budget of optimizer steps, then
   ``nlpbook.evaluate`` on the dev file: seqeval entity F1 over sub-token tags, and ``span_f1``,
   exact character spans as predict returns them. Without pretraining this is a floor for later
   work to compare against, not what kcbert-base reaches.
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
from transformers import AutoModelForTokenClassification

import nlpbook
from nlpbook.ner import NERTrainArguments, read_ner_file
from nlpbook.ner.task import TASK

KLUE = SHARED_DATA / "klue"
TRAIN, DEV = KLUE / "klue-ner-mini_train.tsv", KLUE / "klue-ner-v1.1_dev.tsv"


def bounded_training(labels, options) -> None:
    with tempfile.TemporaryDirectory(prefix="ner-bench-") as tmp:
        base = save_small_bert(Path(tmp) / "small-bert", AutoModelForTokenClassification, len(labels))
        args = NERTrainArguments(
            pretrained_model_name=str(base),
            downstream_model_dir=str(Path(tmp) / "run"),
            train_file=str(TRAIN),
            test_file=str(DEV),
            ner_format="klue",
            max_seq_length=options.max_seq_length,
            batch_size=32,
            learning_rate=options.learning_rate,
            epochs=100,
            max_steps=options.steps,
            max_eval_samples=options.eval_sentences,
            accelerator="cpu",
            seed=7,
            log_every_n_steps=20,
        )
        started = time.perf_counter()
        nlpbook.train(args)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        metrics = nlpbook.evaluate(args)
        evaluated = time.perf_counter() - started
        epochs = options.steps * 32 / 5000
        print(
            f"bounded run: {options.steps} steps of batch 32 (~{epochs:.1f} epochs of the 5,000 training "
            f"sentences), lr {options.learning_rate}, warmup 10%, "
            f"train+validate {seconds / 60:.1f} min on CPU"
        )
        print(
            f"dev ({metrics['examples']} sentences, evaluate {evaluated:.0f}s): "
            f"entity f1={metrics['f1']:.4f} "
            f"precision={metrics['precision']:.4f} recall={metrics['recall']:.4f} "
            f"span_f1={metrics['span_f1']:.4f} token_accuracy={metrics['token_accuracy']:.4f}"
        )
        per_type = ", ".join(
            f"{k} {v['f1']:.3f} ({v['support']})" for k, v in sorted(metrics["per_type"].items())
        )
        print(f"per type f1 (support): {per_type}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1600, help="training sentences timed per side")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps of the bounded run")
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--eval_sentences", type=int, default=2000, help="dev sentences scored")
    parser.add_argument("--skip_training", action="store_true", help="throughput only")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    tokenizer = kcbert_tokenizer()
    started = time.perf_counter()
    examples = read_ner_file(TRAIN, "klue")
    labels = TASK.label_names(examples)
    features = TASK.encode(
        examples, tokenizer, labels, SimpleNamespace(max_seq_length=options.max_seq_length)
    )
    seconds = time.perf_counter() - started
    lengths = sorted(len(f["input_ids"]) for f in features)
    print(
        f"{TRAIN.name}: {len(examples)} sentences read and encoded in {seconds:.1f}s -> {len(features)} "
        f"windows of <= {options.max_seq_length} sub-tokens; lengths with kcbert-base: median "
        f"{statistics.median(lengths)}, p90 {lengths[int(0.9 * len(lengths))]}, "
        f"p99 {lengths[int(0.99 * len(lengths))]}, max {lengths[-1]}; labels {labels}"
    )
    report_throughput(
        AutoModelForTokenClassification,
        features,
        len(labels),
        tokenizer.pad_token_id,
        rows=options.rows,
        max_seq_length=options.max_seq_length,
        unit="sentences",
    )
    if not options.skip_training:
        bounded_training(labels, options)


if __name__ == "__main__":
    main()
