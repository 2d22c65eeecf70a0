"""A bounded KorSTS baseline: nlpbook vs Hugging Face ``Trainer``, same model, rows and schedule.

    python benchmarks/sts_baseline.py [--train_rows 5749] [--epochs 3] [--learning_rate 1e-4]
        [--batch_size 32] [--threads 2]

No pretrained weights are available offline, so both sides start from the same random weights:
kcbert-base's vocab and config cut to 4 layers x 256 (``common.SMALL_BERT``), one regression
output, written once with ``save_pretrained`` and loaded by both. The figures are a floor for
the task and a check that the two trainers agree, not what kcbert-base reaches.

- nlpbook: ``nlpbook.train(STSTrainArguments(...))`` on KorSTS ``sts-train`` (the first
  ``--train_rows``), validating on ``sts-dev`` each epoch and exporting the checkpoint with the
  best ``val_loss`` (its default ``--monitor``), then ``nlpbook.evaluate`` with
  ``test_file=<shared>/korpora/korsts/sts-test.tsv``.
- HF: the same rows tokenized by the same tokenizer as pairs (truncation at 128), ``Trainer`` with
  the same AdamW (fused, weight decay 0.01, none on biases/LayerNorm), learning rate, linear
  schedule with 10% warmup, clipping at 1.0, batch size, epochs and length-grouped batches;
  evaluation on ``sts-dev`` each epoch keeping the best ``eval_loss`` (as nlpbook), then
  ``predict`` on ``sts-test``; Pearson and Spearman with scipy.

Both run in one process with the same torch threads; each side's wall time covers reading,
training, validation, saving and the sts-test scoring. Runs from random weights differ in data
order and dropout between the two trainers, so expect the two sides within a few hundredths of
each other, not equal. Each side's sts-test MSE is printed beside the scores' variance: a side
whose MSE is near the variance has only learnt the mean score (too few rows or epochs), and its
correlations are noise. The last line is ``pearson_gap=<nlpbook - HF>``.
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SHARED_DATA, save_small_bert  # noqa: E402

import nlpbook  # noqa: E402
from nlpbook.corpus import read_table  # noqa: E402
from nlpbook.sts import STSTrainArguments  # noqa: E402
from nlpbook.sts.task import KORSTS_COLUMNS  # noqa: E402

KORSTS = SHARED_DATA / "korpora" / "korsts"
MAX_SEQ_LENGTH = 128
WEIGHT_DECAY = 0.01
WARMUP_RATIO = 0.1
SEED = 7


def korsts_rows(name: str, count: int | None = None) -> list[tuple[str, str, float]]:
    rows = read_table(KORSTS / name, KORSTS_COLUMNS)
    return [(r.values["sentence1"], r.values["sentence2"], float(r.values["score"])) for r in rows][:count]


def run_nlpbook(model_dir: Path, out: Path, options: argparse.Namespace) -> dict[str, float]:
    args = STSTrainArguments(
        pretrained_model_name=str(model_dir),
        downstream_corpus_root_dir=str(SHARED_DATA / "korpora"),
        downstream_model_dir=str(out),
        max_train_samples=options.train_rows,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        weight_decay=WEIGHT_DECAY,
        warmup_ratio=WARMUP_RATIO,
        max_seq_length=MAX_SEQ_LENGTH,
        epochs=options.epochs,
        seed=SEED,
        accelerator="cpu",
    )
    nlpbook.train(args)
    metrics = nlpbook.evaluate(STSTrainArguments(**{**vars(args), "test_file": str(KORSTS / "sts-test.tsv")}))
    return {key: metrics[key] for key in ("pearson", "spearman", "mse", "examples")}


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def run_hf(model_dir: Path, out: Path, options: argparse.Namespace) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def dataset(rows: list[tuple[str, str, float]]) -> ListDataset:
        encoded = tokenizer(
            [a for a, _, _ in rows], [b for _, b, _ in rows], truncation=True, max_length=MAX_SEQ_LENGTH
        )
        return ListDataset(
            [
                {"input_ids": ids, "token_type_ids": types, "labels": score}
                for ids, types, (_, _, score) in zip(
                    encoded["input_ids"], encoded["token_type_ids"], rows, strict=True
                )
            ]
        )

    train = dataset(korsts_rows("sts-train.tsv", options.train_rows))
    dev, test_rows = dataset(korsts_rows("sts-dev.tsv")), korsts_rows("sts-test.tsv")
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=1, problem_type="regression"
    )
    steps = math.ceil(len(train) / options.batch_size) * options.epochs
    arguments = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=2 * options.batch_size,
        learning_rate=options.learning_rate,
        weight_decay=WEIGHT_DECAY,
        optim="adamw_torch_fused",
        lr_scheduler_type="linear",
        warmup_steps=math.ceil(steps * WARMUP_RATIO),
        max_grad_norm=1.0,
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        greater_is_better=False,
        logging_steps=10,
        report_to="none",
        seed=SEED,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=dev,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    predicted = trainer.predict(dataset(test_rows)).predictions.reshape(-1).tolist()
    gold = [score for _, _, score in test_rows]
    return {
        "pearson": float(pearsonr(predicted, gold)[0]),
        "spearman": float(spearmanr(predicted, gold)[0]),
        "mse": statistics.fmean((p - g) ** 2 for p, g in zip(predicted, gold, strict=True)),
        "examples": len(gold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--train_rows", type=int, default=None, help="first N sts-train rows (default: all 5,749)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--learning_rate", type=float, default=1e-4, help="random weights learn faster than 5e-5"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    logging.basicConfig(level=logging.WARNING)
    for name in ("pytorch_lightning", "lightning", "nlpbook", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not (KORSTS / "sts-test.tsv").is_file():
        raise SystemExit(f"needs KorSTS at {KORSTS}")
    train_rows = len(korsts_rows("sts-train.tsv", options.train_rows))
    print(
        f"KorSTS: {train_rows} training rows, {options.epochs} epoch(s), batch {options.batch_size}, "
        f"lr {options.learning_rate}, {torch.get_num_threads()} threads; 4 x 256 random-init model"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="sts-baseline-") as tmp:
        from transformers import AutoModelForSequenceClassification

        model_dir = save_small_bert(Path(tmp) / "small-bert", AutoModelForSequenceClassification, 1)
        for name, run in (("hf_trainer", run_hf), ("nlpbook", run_nlpbook)):
            started = time.perf_counter()
            results[name] = run(model_dir, Path(tmp) / name, options)
            results[name]["seconds"] = time.perf_counter() - started
    for name, r in results.items():
        print(
            f"{name:10s} sts-test ({r['examples']} pairs): Pearson {r['pearson']:.4f}  "
            f"Spearman {r['spearman']:.4f}  MSE {r['mse']:.3f}  wall {r['seconds']:.1f}s"
        )
    # A model that has only learnt the mean score has an MSE near the scores' variance; its
    # correlations are then noise, and a gap between the two sides means nothing.
    variance = statistics.pvariance([score for _, _, score in korsts_rows("sts-test.tsv")])
    print(f"sts-test score variance {variance:.3f} (the MSE of always predicting the mean)")
    print(f"pearson_gap={results['nlpbook']['pearson'] - results['hf_trainer']['pearson']:+.4f}")


if __name__ == "__main__":
    main()
