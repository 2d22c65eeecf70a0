"""Hugging Face's extractive-QA recipe, batched: ``run_qa.py``'s ``prepare_train_features`` /
``prepare_validation_features``, ``Trainer``, and ``utils_qa.postprocess_qa_predictions`` (SQuAD
v1: no null answer), re-written against plain transformers for ``qa_benchmark.py``.

Taken from the recipe as it is: the question (left-stripped) and the context tokenised as a pair
with ``truncation="only_second"``, overflowing windows padded to ``max_seq_length``, labels at the
first/last token covering the answer or at [CLS] when the window does not hold all of it, and at
prediction the ``n_best`` highest start and end logits of *all* positions, pairs over non-context
tokens dropped. Two choices so the windows are nlpbook's: HF's ``stride`` is the overlap of
consecutive windows, so it is set per question to ``room - doc_stride`` (one tokenizer call per
question length); and the question is *not* cut to ``max_query_length`` (run_qa has no such
setting), so a question longer than that gets a window with less context than nlpbook's.

Its labels differ from nlpbook's on a few KorQuAD answers (4 of the 3,986 training questions of
articles :100 whose windows are the same, 5 windows): an answer ending in a space
(``'장수명 아파트 인증제 '``) is labelled up to the next word (``도입``), since the end loop stops at
the first token that ends before ``end_char``, which points past the space; and an answer whose
first token is the window's last context token gets start 127, end 126 (``'영국'``), since the
``(0, 0)`` offsets of [SEP] and padding pass the start loop's ``offsets[i][0] <= start_char``.

Reads the SQuAD JSON directly (as ``datasets``' squad loader does), not through nlpbook's reader.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "read_examples",
    "hf_features",
    "train_trainer",
    "postprocess",
    "compare_windows",
    "long_questions",
]

MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")


def read_examples(path: Path, articles: slice) -> list[dict[str, Any]]:
    """``{"id", "question", "context", "answers": {"text", "answer_start"}}`` per question."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"][articles]
    return [
        {
            "id": qa["id"],
            "question": qa["question"],
            "context": paragraph["context"],
            "answers": {
                "text": [a["text"] for a in qa["answers"]],
                "answer_start": [a["answer_start"] for a in qa["answers"]],
            },
        }
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def hf_features(
    examples: list[dict[str, Any]], tokenizer: Any, max_seq_length: int, doc_stride: int, train: bool
) -> list[dict[str, Any]]:
    """run_qa's features, in example order; ``example_index`` names each window's question. Training
    features carry ``start_positions``/``end_positions``, evaluation ones ``offset_mapping`` (None
    outside the context)."""
    questions = [e["question"].lstrip() for e in examples]  # run_qa strips leading spaces too
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    special = tokenizer.num_special_tokens_to_add(pair=True)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, length in enumerate(lengths):
        by_length[length].append(index)
    features: list[dict[str, Any]] = []
    for length, indices in by_length.items():
        room = max_seq_length - length - special
        if room < doc_stride:
            raise SystemExit(f"a question of {length} tokens leaves {room} < doc_stride {doc_stride} tokens")
        encoded = tokenizer(
            [questions[i] for i in indices],
            [examples[i]["context"] for i in indices],
            truncation="only_second",
            max_length=max_seq_length,
            stride=room - doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="max_length",
        )
        for window, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            example_index = indices[sample]
            feature = {key: encoded[key][window] for key in MODEL_INPUTS}
            feature["example_index"] = example_index
            sequence = encoded.sequence_ids(window)
            offsets = encoded["offset_mapping"][window]
            if train:
                answers = examples[example_index]["answers"]
                start = answers["answer_start"][0]
                feature["start_positions"], feature["end_positions"] = _positions(
                    sequence, offsets, start, start + len(answers["text"][0])
                )
            else:
                feature["offset_mapping"] = [
                    o if s == 1 else None for o, s in zip(offsets, sequence, strict=True)
                ]
            features.append(feature)
    features.sort(key=lambda f: f["example_index"])  # stable: a question's windows keep their order
    return features


def _positions(sequence: list[int | None], offsets: list[tuple[int, int]], start_char: int, end_char: int):
    """prepare_train_features' labels: [CLS] (0) unless the window's context covers the answer."""
    first = sequence.index(1)
    last = len(sequence) - 1 - sequence[::-1].index(1)
    if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
        return 0, 0
    while first < len(offsets) and offsets[first][0] <= start_char:
        first += 1
    while offsets[last][1] >= end_char:
        last -= 1
    return first - 1, last + 1


def train_trainer(model: Any, features: list[dict[str, Any]], folder: Path, options: Any) -> Any:
    """``Trainer`` on the training windows with nlpbook's optimizer settings; returns the trainer."""
    from transformers import PrinterCallback, Trainer, TrainingArguments, default_data_collator

    keys = (*MODEL_INPUTS, "start_positions", "end_positions")
    dataset = [{key: f[key] for key in keys} for f in features]
    arguments = TrainingArguments(
        output_dir=str(folder),
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.eval_batch_size,
        learning_rate=options.learning_rate,
        weight_decay=0.01,
        warmup_steps=0.1,  # a float below 1 is a ratio: ceil(0.1 x total steps), as nlpbook's
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=options.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=default_data_collator)
    trainer.remove_callback(PrinterCallback)  # a line per logged step otherwise (logging_steps=1)
    trainer.train()
    return trainer


def postprocess(
    examples: list[dict[str, Any]],
    features: list[dict[str, Any]],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, str]:
    """utils_qa.postprocess_qa_predictions for SQuAD v1: question id -> the best span's text."""
    windows: dict[int, list[int]] = defaultdict(list)
    for row, feature in enumerate(features):
        windows[feature["example_index"]].append(row)
    predictions = {}
    for index, example in enumerate(examples):
        candidates = []
        for row in windows[index]:
            offsets = features[row]["offset_mapping"]
            starts = np.argsort(start_logits[row])[-1 : -n_best - 1 : -1].tolist()
            ends = np.argsort(end_logits[row])[-1 : -n_best - 1 : -1].tolist()
            for s in starts:
                for e in ends:
                    if offsets[s] is None or offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[row][s] + end_logits[row][e]
                    candidates.append((score, offsets[s][0], offsets[e][1]))
        candidates.sort(key=lambda c: c[0], reverse=True)  # stable, as sorted() in the recipe
        best = candidates[0] if candidates else None  # none valid: the recipe answers "empty"
        predictions[example["id"]] = example["context"][best[1] : best[2]] if best else "empty"
    return predictions


def long_questions(examples, tokenizer, limit: int) -> int:
    """Questions over ``max_query_length`` sub-tokens: nlpbook cuts them, run_qa does not."""
    lengths = tokenizer([e.question for e in examples], add_special_tokens=False)["input_ids"]
    return sum(len(ids) > limit for ids in lengths)


def compare_windows(ours: list[dict], theirs: list[dict], labelled: bool) -> str:
    """How many questions get the same windows (token ids, and labels when training) from nlpbook's
    ``encode`` (``ours``) and from :func:`hf_features` (``theirs``)."""

    def by_question(features: list[dict]) -> dict[int, list[tuple]]:
        grouped = defaultdict(list)
        for f in features:
            ids = f["input_ids"][: sum(f["attention_mask"])] if "attention_mask" in f else f["input_ids"]
            labels = (f["start_positions"], f["end_positions"]) if labelled else ()
            grouped[f["example_index"]].append((ids, labels))
        return grouped

    mine, other = by_question(ours), by_question(theirs)
    same_ids = sum([w[0] for w in mine[q]] == [w[0] for w in other[q]] for q in mine)
    text = f"{len(ours)} vs {len(theirs)} windows; same windows for {same_ids}/{len(mine)} questions"
    if labelled:
        text += f", same windows and labels for {sum(mine[q] == other[q] for q in mine)}"
    return text
