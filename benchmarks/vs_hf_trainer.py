"""Whole training runs: ``nlpbook.train`` vs Hugging Face ``Trainer``, and training FLOP/s vs peak.

    python benchmarks/vs_hf_trainer.py [--train_rows 3200] [--eval_rows 1000] [--repeats 3]
        [--threads 2] [--precision fp32|bf16] [--flops_steps 20] [--flops_layers 12]

1. Both sides train the same model folder (kcbert-base's vocab and config cut to 4 layers x 256,
   random weights written with ``save_pretrained``) on the same first ``--train_rows`` NSMC
   training rows for 1 epoch, batch 32, and score the first ``--eval_rows`` NSMC test rows at the
   end, with the same torch threads. Runs alternate (HF, nlpbook, HF, ...), each in a fresh Python
   process so that nothing one run leaves set in its process (the allocator's thresholds, the
   garbage collector, caches) carries over to the next; each side's median wall time of
   ``--repeats`` runs is kept. Each run is timed whole inside its process, from reading the rows
   to the model written on disk (imports and the process start are not counted):

   - nlpbook: one ``nlpbook.train(ClassificationTrainArguments(...))`` call with its defaults
     (AdamW with no decay on biases/LayerNorm, weight decay 0.01, lr 5e-5, linear schedule with
     10% warmup, clipping at 1.0, per-batch padding, length-grouped batches, validation at the
     end of the epoch, checkpoints, export).
   - HF: read the same rows, tokenize them with the same tokenizer (truncation at 128), build a
     ``Trainer`` with the same settings (``optim="adamw_torch_fused"``, whose parameter groups also
     leave biases and LayerNorm undecayed; weight decay 0.01; ``lr_scheduler_type="linear"`` with
     the same warmup steps; ``max_grad_norm=1.0``; ``DataCollatorWithPadding``), length-grouped
     batches (``train_sampling_strategy="group_by_length"``: transformers 5 renamed the old
     ``group_by_length=True`` to this), ``train()``, ``evaluate()`` (accuracy) and ``save_model``.

   ``--precision bf16`` runs both sides in bf16 autocast (HF ``bf16=True``, nlpbook
   ``precision="bf16-mixed"``); a side that fails is reported and the other still measured.
   The last line is ``ratio_vs_hf_trainer=<HF median seconds / nlpbook median seconds>``
   (above 1: nlpbook is faster).

2. Real-token training FLOP/s at kcbert-base size (its config, ``--flops_layers`` deep, random
   weights): ``nlpbook.train`` for ``--flops_steps`` timed steps of batch 32 on NSMC rows (after 3
   untimed ones), timed with hooks on nlpbook's LightningModule from the first timed batch's start
   to the last one's end, less the peak samples below, so whatever nlpbook does per step is
   counted. FLOP/s is
   6 x N x real (non-padding) tokens / s with N the non-embedding parameters, shown as a share of
   the fp32 matmul peak measured in the same script: a 0.5 s 2048 x 2048 matmul loop after each
   timed step (outside its timing), each step's FLOP/s over the sample right after it, median over
   the steps. ``--flops_steps 0`` skips this part. The code is in ``flops_share.py``. 6 x N counts
   the whole last layer, whose non-[CLS] rows nlpbook leaves out (``nlpbook/first_token.py``): the
   FLOP/s actually run, without them, are printed as ``executed_flops_share_of_peak`` before the
   last line.

Timings are wall-clock: on a machine shared with other jobs both sides slow down, and the
interleaving keeps the ratio meaningful while the absolute figures are not.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SHARED_DATA, save_small_bert  # noqa: E402
from flops_share import BATCH_SIZE, SEED, training_flops  # noqa: E402

import nlpbook  # noqa: E402
from nlpbook.classification import ClassificationTrainArguments  # noqa: E402
from nlpbook.corpus import read_table  # noqa: E402

LEARNING_RATE = 5e-5
WEIGHT_DECAY = 0.01
WARMUP_RATIO = 0.1
MAX_SEQ_LENGTH = 128
LABELS = ["negative", "positive"]  # what nlpbook reads NSMC's 0/1 as


def nsmc_rows(split: str, count: int) -> list[tuple[str, int]]:
    """The first ``count`` non-empty NSMC reviews of a split: the rows nlpbook.train takes with
    ``max_train_samples``/``max_eval_samples`` (it skips empty reviews too)."""
    path = SHARED_DATA / "korpora" / "nsmc" / f"ratings_{split}.txt"
    rows = [
        (r.values["document"], int(r.values["label"])) for r in read_table(path, ["id", "document", "label"])
    ]
    return [row for row in rows if row[0].strip()][:count]


def run_nlpbook(model_dir: Path, out: Path, options: argparse.Namespace) -> dict[str, Any]:
    args = ClassificationTrainArguments(
        pretrained_model_name=str(model_dir),
        downstream_corpus_root_dir=str(SHARED_DATA / "korpora"),
        downstream_model_dir=str(out),
        max_train_samples=options.train_rows,
        max_eval_samples=options.eval_rows,
        batch_size=BATCH_SIZE,
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        warmup_ratio=WARMUP_RATIO,
        max_seq_length=MAX_SEQ_LENGTH,
        epochs=1,
        seed=SEED,
        accelerator="cpu",
        precision="bf16-mixed" if options.precision == "bf16" else None,
    )
    export = nlpbook.train(args)
    return {"export": str(export)}


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def run_hf(model_dir: Path, out: Path, options: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def dataset(split: str, count: int) -> ListDataset:
        rows = nsmc_rows(split, count)
        encoded = tokenizer([text for text, _ in rows], truncation=True, max_length=MAX_SEQ_LENGTH)
        return ListDataset(
            [
                {"input_ids": ids, "token_type_ids": types, "labels": label}
                for ids, types, (_, label) in zip(
                    encoded["input_ids"], encoded["token_type_ids"], rows, strict=True
                )
            ]
        )

    train, evaluation = dataset("train", options.train_rows), dataset("test", options.eval_rows)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    steps = math.ceil(len(train) / BATCH_SIZE)
    arguments = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=1,
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=2 * BATCH_SIZE,  # nlpbook's default eval_batch_size
        learning_rate=LEARNING_RATE,
        weight_decay=WEIGHT_DECAY,
        optim="adamw_torch_fused",
        lr_scheduler_type="linear",
        warmup_steps=math.ceil(steps * WARMUP_RATIO),  # as nlpbook rounds it
        max_grad_norm=1.0,
        train_sampling_strategy="group_by_length",
        eval_strategy="no",  # one evaluation at the end, below
        save_strategy="no",
        logging_steps=10,
        report_to="none",
        seed=SEED,
        use_cpu=True,
        bf16=options.precision == "bf16",
        dataloader_num_workers=0,
    )

    def accuracy(prediction: Any) -> dict[str, float]:
        return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}

    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=accuracy,
    )
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model(str(out / "model"))
    return {"eval_accuracy": metrics.get("eval_accuracy"), "eval_loss": metrics.get("eval_loss")}


SIDES: dict[str, Callable[[Path, Path, argparse.Namespace], dict[str, Any]]] = {
    "hf_trainer": run_hf,
    "nlpbook": run_nlpbook,
}


def run_in_fresh_process(
    name: str, model_dir: Path, out: Path, options: argparse.Namespace
) -> tuple[float, dict[str, Any]]:
    """One side's run in a new Python process, timed there: whatever a run leaves set in its
    process (the allocator's thresholds, the collector, caches) cannot favour the next side."""
    command = [sys.executable, __file__, "--one_run", name, "--model_dir", str(model_dir), "--out", str(out)]
    command += ["--train_rows", str(options.train_rows), "--eval_rows", str(options.eval_rows)]
    command += ["--precision", options.precision, "--threads", str(torch.get_num_threads())]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode:
        raise RuntimeError(f"exit {child.returncode}: {child.stderr.strip()[-3000:]}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    return report["seconds"], report["result"]


def one_run(options: argparse.Namespace) -> None:
    """The child side of ``run_in_fresh_process``: one run, then a JSON line with its time.

    Both sides' libraries are imported first, untimed, as they were by the time a run started when
    both sides shared one process."""
    import pytorch_lightning  # noqa: F401
    import transformers.trainer  # noqa: F401

    import nlpbook.commands  # noqa: F401

    torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # torch's thread pool and kernels start untimed
    started = time.perf_counter()
    result = SIDES[options.one_run](Path(options.model_dir), Path(options.out), options)
    print(json.dumps({"seconds": time.perf_counter() - started, "result": result}))


def compare_whole_runs(options: argparse.Namespace) -> float | None:
    seconds: dict[str, list[float]] = {name: [] for name in SIDES}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vs-hf-") as tmp:
        from transformers import AutoModelForSequenceClassification

        model_dir = save_small_bert(Path(tmp) / "small-bert", AutoModelForSequenceClassification, 2)
        for repeat in range(options.repeats):
            for name in SIDES:
                if name in failed:
                    continue
                try:
                    elapsed, result = run_in_fresh_process(
                        name, model_dir, Path(tmp) / f"{name}-{repeat}", options
                    )
                except RuntimeError as error:  # reported, and the other side still runs
                    failed[name] = str(error)
                    print(f"{name} failed in {options.precision}: {failed[name]}", flush=True)
                    continue
                seconds[name].append(elapsed)
                print(
                    f"run {repeat + 1} {name:10s} {elapsed:6.1f}s "
                    f"= {options.train_rows / elapsed:6.1f} training rows/s end to end  {result}",
                    flush=True,
                )
    medians = {name: statistics.median(values) for name, values in seconds.items() if values}
    for name, median in medians.items():
        print(
            f"{name:10s} median {median:6.1f}s of {len(seconds[name])} "
            f"({options.train_rows / median:6.1f} training rows/s, {options.precision})"
        )
    if len(medians) < 2:
        return None
    return medians["hf_trainer"] / medians["nlpbook"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train_rows", type=int, default=3200)
    parser.add_argument("--eval_rows", type=int, default=1000)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per side, interleaved; the median is kept"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--flops_steps", type=int, default=20, help="timed kcbert-base steps (0: skip)")
    parser.add_argument("--flops_layers", type=int, default=12, help="kcbert-base: 12")
    parser.add_argument("--one_run", choices=sorted(SIDES), help=argparse.SUPPRESS)  # a child's side
    parser.add_argument("--model_dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    logging.basicConfig(level=logging.WARNING)
    for name in ("pytorch_lightning", "lightning", "nlpbook", "transformers"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if options.one_run:
        one_run(options)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, precision {options.precision}")

    if options.flops_steps:
        training_flops(options)
    if not options.repeats:
        return
    ratio = compare_whole_runs(options)
    if ratio is None:
        print("ratio_vs_hf_trainer=nan (a side failed; see above)")
    else:
        print(f"ratio_vs_hf_trainer={ratio:.2f}")


if __name__ == "__main__":
    main()
