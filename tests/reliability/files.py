"""Small valid training files for every registered task, as text, so tests can break them.

``TASK_FILES[task]`` knows how a good file of that task looks; bad-input tests mutate one line of
it. A task added to the registry without an entry here is reported by ``test_every_task_is_covered``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiny_bert import FILLER, NAMES, NEGATIVE, PLACES, POSITIVE, toy_sentiment, toy_squad


@dataclass(frozen=True)
class TaskFiles:
    suffix: str
    header: list[str] | None  # table tasks: the header line's columns; None: no header (NER)
    text_column: int | None  # which column holds text (for the empty-text cases)
    rows: Any  # (n, seed) -> list of lines without the header
    unseen_label_line: str | None  # a line whose label the model cannot take (None: no such line)
    arguments: dict[str, Any] = field(default_factory=dict)
    unseen_label_message: str = "is not one of the model's"


def classification_rows(n: int, seed: int) -> list[str]:
    return [f"{text}\t{label}" for text, label in toy_sentiment(n, seed)]


def pair_rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        label = rng.choice(["entailment", "contradiction"])
        cue = rng.choice(POSITIVE if label == "entailment" else NEGATIVE)
        lines.append(f"{' '.join(rng.sample(FILLER, 3))}\t{cue} {rng.choice(FILLER)}\t{label}")
    return lines


def sts_rows(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{' '.join(rng.sample(FILLER, 3))}\t{' '.join(rng.sample(FILLER, 2))}\t{rng.uniform(0, 5):.2f}"
        for _ in range(n)
    ]


def qa_rows(n: int, seed: int) -> list[str]:
    """A SQuAD-layout JSON file, pretty-printed, as lines (n // 6 articles of 3 paragraphs)."""
    document = {
        "version": "toy",
        "note": "한국어 예제 (line 3)",
        "data": toy_squad(max(1, n // 6), seed)["data"],
    }
    return json.dumps(document, ensure_ascii=False, indent=1).split("\n")


def ner_rows(n: int, seed: int) -> list[str]:
    """CoNLL sentences (``token\\tTAG`` lines), each ending with a blank line."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = [(w, "O") for w in rng.sample(FILLER, 3)]
        words.insert(rng.randrange(4), (rng.choice(NAMES), "B-PER"))
        words.insert(rng.randrange(5), (rng.choice(PLACES), "B-LOC"))
        lines += [f"{w}\t{t}" for w, t in words] + [""]
    return lines


TASK_FILES: dict[str, TaskFiles] = {
    "classification": TaskFiles(".tsv", ["text", "label"], 0, classification_rows, "영화 좋다\t2"),
    "paircls": TaskFiles(
        ".tsv", ["sentence1", "sentence2", "gold_label"], 0, pair_rows, "영화 좋다\t최고 영화\tneutral"
    ),
    "ner": TaskFiles(".conll", None, None, ner_rows, "세종\tB-ORG", {"ner_format": "conll"}),
    "sts": TaskFiles(
        ".tsv",
        ["sentence1", "sentence2", "score"],
        0,
        sts_rows,
        "영화 좋다\t최고 영화\t7.50",
        unseen_label_message="outside the declared range",
    ),
    "qa": TaskFiles(".json", None, None, qa_rows, None),
}


def file_text(task: str, n: int = 24, seed: int = 1, header: bool = True) -> str:
    spec = TASK_FILES[task]
    lines = spec.rows(n, seed)
    if spec.header and header:
        lines = ["\t".join(spec.header), *lines]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path
