"""Batch prediction throughput: nlpbook's Predictor vs padding every example to 128 tokens.

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
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import SHARED_DATA, SMALL_BERT, kcbert_tokenizer, small_bert  # noqa: E402

from nlpbook.corpus import read_table  # noqa: E402
from nlpbook.export import Export  # noqa: E402
from nlpbook.predictor import Predictor  # noqa: E402
from nlpbook.tasks import get_task  # noqa: E402

MAX_SEQ_LENGTH = 128
LABELS = ["negative", "positive"]


def nsmc_texts(rows: int) -> list[str]:
    path = SHARED_DATA / "korpora" / "nsmc" / "ratings_test.txt"
    texts = [r.values["document"] for r in read_table(path, ["id", "document", "label"])]
    return [t for t in texts if t.strip()][:rows]  # NSMC has a few empty reviews: nothing to predict


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=25_000, help="NSMC test rows (all 25,000 by default)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best of each is kept")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)

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


if __name__ == "__main__":
    main()
