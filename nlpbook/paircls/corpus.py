"""Readers for the book's pair corpora: KorNLI (Korpora's layout) and KLUE-NLI (JSON list).

Both corpora are read offline when their files are in place. KorNLI is downloaded through Korpora
only when a file is missing (Korpora goes online before it reads local files, so it is never asked
to read them); KLUE-NLI has no downloader here, so a missing file is an error that names it.

Rows of a known corpus that cannot teach anything are left out and logged, not fatal: SNLI (half
of KorNLI's training data) marks pairs whose annotators did not agree with the gold label ``-``,
and the usual practice is to drop them; an empty sentence is dropped the same way. Any other label
is an error naming the file and line, since it means the file is not what we think it is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from nlpbook.corpus import DataError, Row, korpora_fetch, read_table, require_files, text_value
from nlpbook.tasks import Split
from nlpbook.text import TextExample

__all__ = ["NLI_LABELS", "KORNLI_FILES", "KLUE_NLI_FILES", "read_kornli", "read_klue_nli", "nli_examples"]

logger = logging.getLogger(__name__)

NLI_LABELS = ("entailment", "neutral", "contradiction")
NO_CONSENSUS = "-"  # SNLI/MultiNLI's gold label when the annotators did not agree

# ratsnlp trained on MultiNLI + SNLI and validated on XNLI dev; xnli.test.ko.tsv is the held-out
# test set (score it with evaluate --test_file .../xnli.test.ko.tsv).
KORNLI_FILES: dict[str, tuple[str, ...]] = {
    "train": ("multinli.train.ko.tsv", "snli_1.0_train.ko.tsv"),
    "test": ("xnli.dev.ko.tsv",),
}

# The book's names first, then the names of KLUE's own release (klue-benchmark/KLUE).
KLUE_NLI_FILES: dict[str, tuple[str, ...]] = {
    "train": ("klue_nli_train.json", "klue-nli-v1.1_train.json"),
    "test": ("klue_nli_dev.json", "klue-nli-v1.1_dev.json"),
}


def read_kornli(root: Path, split: Split, force_download: bool = False) -> list[TextExample]:
    """KorNLI from ``<root>/kornli/``: train = MultiNLI + SNLI, test = XNLI dev."""
    folder = root / "kornli"
    paths = [folder / name for name in KORNLI_FILES[split]]
    require_files(paths, lambda: korpora_fetch("kornli", root), "kornli", force_download)
    examples: list[TextExample] = []
    for path in paths:
        examples += nli_examples(
            read_table(path, ["sentence1", "sentence2", "gold_label"]), "sentence1", "sentence2", "gold_label"
        )
    return examples


def read_klue_nli(root: Path, split: Split) -> list[TextExample]:
    """KLUE-NLI from ``<root>/klue-nli/``: a JSON list of {premise, hypothesis, gold_label, ...}."""
    folder = root / "klue-nli"
    candidates = [folder / name for name in KLUE_NLI_FILES[split]]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(
            candidates[0],
            None,
            f"file not found (nor {candidates[1].name}); KLUE-NLI cannot be downloaded by nlpbook: "
            "get it from https://github.com/KLUE-benchmark/KLUE and put it there",
        )
    return nli_examples(
        read_table(path, ["premise", "hypothesis", "gold_label"]), "premise", "hypothesis", "gold_label"
    )


def nli_examples(rows: Sequence[Row], text_a: str, text_b: str, label: str) -> list[TextExample]:
    """Examples of a known NLI corpus; no-consensus and empty rows are left out and logged."""
    examples: list[TextExample] = []
    skipped: dict[str, list[int]] = {"gold label '-' (no annotator consensus)": [], "an empty sentence": []}
    for row in rows:
        gold = row.values[label].strip()
        if gold == NO_CONSENSUS:
            skipped["gold label '-' (no annotator consensus)"].append(row.line)
            continue
        if gold not in NLI_LABELS:
            raise row.error(f"gold label {gold!r} is not one of {list(NLI_LABELS)}")
        first, second = text_value(row, text_a), text_value(row, text_b)
        if not first.strip() or not second.strip():
            skipped["an empty sentence"].append(row.line)
            continue
        examples.append(TextExample(first, second, gold, row))
    path = rows[0].path if rows else "?"
    for reason, lines in skipped.items():
        if lines:
            logger.warning(
                "%s: left out %d row(s) with %s, at line(s) %s", path, len(lines), reason, lines[:10]
            )
    if not examples:
        raise DataError(path, None, "no usable rows (every row was left out)")
    return examples
