"""Batch prediction throughput: nlpbook's Predictor vs padding to 128 tokens, and float32 vs int8.

Two comparisons, chosen with ``--compare``:

``--compare padded`` (the default): nlpbook's Predictor vs padding every example to 128 tokens.
Same model (kcbert-base's config shrunk to ``common.SMALL_BERT``: 4 layers, hidden 256, 4 heads,
intermediate 1024, randomly initialised: no weights are available offline), same NSMC test rows,
same batch size, same process, the two sides alternated so a busy machine hurts both alike.

- nlpbook: ``Predictor.predict_file`` on a .txt of the rows -> JSON lines, the path
  ``nlpbook predict --input`` takes: tokenise with the task's encode, length-sorted batches padded
  per batch, results written back in input order.
- padded: the book's way, ``tokenizer(..., padding="max_length", max_length=128)`` on batches in
  file order, softmax, labels in a list (no file written: the baseline is given the easier job).

Both sides time everything from text to label. The last line is ``speedup_vs_padded=<ratio>``.
Run: ``python benchmarks/predict_throughput.py [--rows 25000] [--batch_size 64]``

``--compare int8``: ``Predictor(..., quantize="int8")`` (dynamic int8 Linear layers) vs the same
Predictor in float32, both through ``predict_file`` (text file in, JSON lines out), alternated in
one process. The model is kcbert-base's config (12 layers x 768, 110M parameters; ``--layers``
keeps the width and cuts the depth) trained first for ``--train_steps`` steps (batch 32, AdamW
as nlpbook's, peak lr ``--learning_rate`` with 10% linear warmup, then linear decay) on NSMC
training rows, so its predictions are not constant (random weights give one label for almost
every input, and agreement would mean nothing). It prints both sides' examples/s, each side's
test accuracy and share of positive predictions, and the share of rows where int8 gives the
same label as float32; the last two lines are ``int8_speedup=<ratio>`` and
``int8_same_labels=<share>``.
Run: ``python benchmarks/predict_throughput.py --compare int8 [--rows 25000] [--layers 12]
[--train_steps 300] [--threads 2]``. At full size this trains for several minutes and predicts the
24,998 test rows three times (warm-up excluded); ``--rows 3000 --layers 4`` runs in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import (  # noqa: E402
    KCBERT_DIR,
    SHARED_DATA,
    SMALL_BERT,
    kcbert_tokenizer,
    loader_for,
    small_bert,
)

import nlpbook.inference  # noqa: E402
from nlpbook.corpus import read_table  # noqa: E402
from nlpbook.export import Export  # noqa: E402
from nlpbook.predictor import Predictor  # noqa: E402
from nlpbook.pretrained import computing_less  # noqa: E402
from nlpbook.tasks import get_task  # noqa: E402

MAX_SEQ_LENGTH = 128
LABELS = ["negative", "positive"]
TRAIN_BATCH = 32


def nsmc_test_rows(rows: int) -> list[tuple[str, str]]:
    """(text, gold label) of the first ``rows`` non-empty NSMC test reviews."""
    path = SHARED_DATA / "korpora" / "nsmc" / "ratings_test.txt"
    table = read_table(path, ["id", "document", "label"])
    pairs = [(r.values["document"], r.values["label"]) for r in table]
    return [p for p in pairs if p[0].strip()][:rows]  # NSMC has a few empty reviews: nothing to predict


def nsmc_texts(rows: int) -> list[str]:
    return [text for text, _ in nsmc_test_rows(rows)]


def run_nlpbook(predictor: Predictor, source: Path, folder: Path) -> tuple[float, list[str]]:
    output = folder / "predictions.jsonl"
    started = time.perf_counter()
    predictor.predict_file(source, output, progress=False)
    seconds = time.perf_counter() - started
    labels = [json.loads(line)["label"] for line in output.read_text(encoding="utf-8").splitlines()]
    return seconds, labels


@torch.inference_mode()
def run_padded(
    model: torch.nn.Module, tokenizer: object, texts: list[str], batch_size: int
) -> tuple[float, list[str]]:
    started = time.perf_counter()
    labels: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            padding="max_length",
            truncation=True,
            max_length=MAX_SEQ_LENGTH,
            return_tensors="pt",
        )
        probabilities = model(**batch).logits.float().softmax(-1)
        labels += [LABELS[i] for i in probabilities.argmax(-1).tolist()]
    return time.perf_counter() - started, labels


def compare_padded(options: argparse.Namespace) -> None:
    texts = nsmc_texts(options.rows)
    tokenizer = kcbert_tokenizer()
    model = small_bert(get_task("classification").head.model_class(), num_labels=len(LABELS)).eval()
    export = Export(
        Path("(in memory)"), get_task("classification"), model, tokenizer, LABELS, MAX_SEQ_LENGTH, {}
    )
    predictor = Predictor(export, batch_size=options.batch_size, device="cpu")
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]]
    print(
        f"rows={len(texts)} batch_size={options.batch_size} model={SMALL_BERT} "
        f"torch_threads={torch.get_num_threads()} mean_tokens={sum(lengths) / len(lengths):.1f} "
        f"padding_share_if_padded={1 - sum(lengths) / (len(lengths) * MAX_SEQ_LENGTH):.1%}"
    )
    best = {"nlpbook": float("inf"), "padded": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "texts.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
        run_nlpbook(predictor, source, Path(folder))  # warm-up (allocator, kernels), untimed
        for round_ in range(options.rounds):
            padded_seconds, padded_labels = run_padded(model, tokenizer, texts, options.batch_size)
            nlpbook_seconds, nlpbook_labels = run_nlpbook(predictor, source, Path(folder))
            best["padded"] = min(best["padded"], padded_seconds)
            best["nlpbook"] = min(best["nlpbook"], nlpbook_seconds)
            agree = sum(a == b for a, b in zip(padded_labels, nlpbook_labels, strict=True)) / len(texts)
            print(
                f"round {round_ + 1}: padded {padded_seconds:.1f}s, nlpbook {nlpbook_seconds:.1f}s, "
                f"same label on {agree:.2%} of rows"
            )
    for name in ("padded", "nlpbook"):
        print(f"{name}: {len(texts) / best[name]:.1f} examples/s ({best[name]:.1f}s)")
    print(f"speedup_vs_padded={best['padded'] / best['nlpbook']:.2f}")


def trained_kcbert(layers: int, steps: int, learning_rate: float, tokenizer: object) -> torch.nn.Module:
    """kcbert-base's config (``layers`` deep), random init, trained ``steps`` steps of batch 32 on
    NSMC training rows: nlpbook's loader and AdamW, linear schedule with 10% warmup, clipping."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, get_linear_schedule_with_warmup

    from nlpbook.classification import TASK, ClassificationTrainArguments
    from nlpbook.module import make_optimizer

    args = ClassificationTrainArguments(
        downstream_corpus_root_dir=str(SHARED_DATA / "korpora"), downstream_model_dir="unused"
    )
    examples = TASK.read(args, "train")[: steps * TRAIN_BATCH]
    features = TASK.encode(examples, tokenizer, LABELS, args)  # nlpbook reads NSMC's 0/1 as these
    config = AutoConfig.from_pretrained(KCBERT_DIR, num_labels=2, num_hidden_layers=layers)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config).train()
    optimizer = make_optimizer(model, learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(0.1 * steps), steps)
    loader = loader_for(features, TRAIN_BATCH, tokenizer.pad_token_id, None, shuffle=True)
    started, losses, hits = time.perf_counter(), [], []
    for index, batch in enumerate(loader, start=1):
        output = model(**{k: v for k, v in batch.items() if k != "feature_index"})
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(output.loss.item())
        hits += (output.logits.argmax(-1) == batch["labels"]).tolist()
        if index % 50 == 0 or index == len(loader):
            loss, accuracy = statistics.fmean(losses[-50:]), statistics.fmean(hits[-50 * TRAIN_BATCH :])
            seconds = time.perf_counter() - started
            print(
                f"  train step {index}/{len(loader)}: last 50 steps' loss {loss:.3f}, "
                f"accuracy {accuracy:.1%}, {seconds:.0f}s",
                flush=True,
            )
    return model.eval()


def compare_int8(options: argparse.Namespace) -> None:
    rows = nsmc_test_rows(options.rows)
    texts, gold = [t for t, _ in rows], [LABELS[int(label)] for _, label in rows]
    tokenizer = kcbert_tokenizer()
    print(
        f"training kcbert-base-size model ({options.layers} layers x 768) for {options.train_steps} steps, "
        f"batch {TRAIN_BATCH}, lr {options.learning_rate}, {torch.get_num_threads()} threads",
        flush=True,
    )
    model = trained_kcbert(options.layers, options.train_steps, options.learning_rate, tokenizer)
    model = computing_less(model)  # as read_export loads an export for Predictor
    if options.int8_engine:
        nlpbook.inference.INT8_ENGINE = options.int8_engine
    task = get_task("classification")
    export = Export(Path("(in memory)"), task, model, tokenizer, LABELS, MAX_SEQ_LENGTH, {})
    sides = {
        "fp32": Predictor(export, batch_size=options.batch_size, device="cpu"),
        "int8": Predictor(export, batch_size=options.batch_size, device="cpu", quantize="int8"),
    }
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"rows={len(texts)} batch_size={options.batch_size} model={params:.1f}M parameters", flush=True)
    best = {name: float("inf") for name in sides}
    labels: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "texts.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
        warmup = Path(folder) / "warmup.txt"
        warmup.write_text("\n".join(texts[:256]) + "\n", encoding="utf-8")
        for predictor in sides.values():
            run_nlpbook(predictor, warmup, Path(folder))  # untimed: allocator, kernels, packing
        for round_ in range(options.rounds):
            for name, predictor in sides.items():
                seconds, labels[name] = run_nlpbook(predictor, source, Path(folder))
                best[name] = min(best[name], seconds)
                print(f"round {round_ + 1}: {name} {seconds:.1f}s", flush=True)
    same = sum(a == b for a, b in zip(labels["fp32"], labels["int8"], strict=True)) / len(texts)
    for name in sides:
        accuracy = sum(p == g for p, g in zip(labels[name], gold, strict=True)) / len(texts)
        positive = labels[name].count("positive") / len(texts)
        print(
            f"{name}: {len(texts) / best[name]:.1f} examples/s ({best[name]:.1f}s), "
            f"test accuracy {accuracy:.1%}, predicted positive {positive:.1%}"
        )
    engine = options.int8_engine or nlpbook.inference.INT8_ENGINE
    print(f"int8 weights packed for torch's {engine!r} quantized engine")
    print(f"int8_speedup={best['fp32'] / best['int8']:.2f}")
    print(f"int8_same_labels={same:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", choices=("padded", "int8"), default="padded")
    parser.add_argument("--rows", type=int, default=25_000, help="NSMC test rows (all 25,000 by default)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best of each is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--layers", type=int, default=12, help="int8: encoder layers (kcbert-base: 12)")
    parser.add_argument("--train_steps", type=int, default=300, help="int8: training steps before measuring")
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="int8: training learning rate")
    parser.add_argument(
        "--int8_engine", default=None, help="int8: torch quantized engine to pack for (default: nlpbook's)"
    )
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    (compare_int8 if options.compare == "int8" else compare_padded)(options)


if __name__ == "__main__":
    main()
