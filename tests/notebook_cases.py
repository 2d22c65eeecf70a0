"""Per-notebook toy data and checks for tests/test_notebooks.py: each corpus is written in its
task's real layout, small enough for CI, with labels a tiny BERT learns in two epochs."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import write_tsv
from tiny_bert import FILLER, NAMES, PLACES, toy_sentiment, toy_squad

__all__ = ["CASES", "SHOWN"]


# --- per-notebook data and checks ----------------------------------------------------------------
def classification_case(root: Path) -> dict[str, Any]:
    for split, n, seed in (("train", 192, 1), ("test", 48, 2)):
        rows = [(str(i), text, label) for i, (text, label) in enumerate(toy_sentiment(n, seed), start=1)]
        if split == "train":
            rows[9] = ("10", "", "1")  # NSMC has empty reviews: the notebook must show the warning
        write_tsv(root / "nsmc" / f"ratings_{split}.txt", ["id", "document", "label"], rows)
    return {"downstream_corpus_name": "nsmc"}


def paircls_case(root: Path) -> dict[str, Any]:
    """KorNLI's layout; the label follows from the hypothesis's cue word, so it can be learnt."""
    rng = random.Random(3)
    rows = []
    for text, _ in toy_sentiment(240, seed=3):
        label = rng.choice(["entailment", "neutral", "contradiction"])
        cue = {"entailment": "최고", "contradiction": "최악"}.get(label, rng.choice(FILLER))
        rows.append((text, f"{rng.choice(FILLER)} {cue} {rng.choice(FILLER)}", label))
    header = ["sentence1", "sentence2", "gold_label"]
    write_tsv(root / "kornli" / "multinli.train.ko.tsv", header, rows[:100])
    write_tsv(root / "kornli" / "snli_1.0_train.ko.tsv", header, rows[100:192])
    write_tsv(root / "kornli" / "xnli.dev.ko.tsv", header, rows[192:])
    return {"downstream_corpus_name": "kornli"}


def ner_case(root: Path) -> dict[str, Any]:
    """KLUE-NER's layout: one character and its BIO tag a line, ``##`` lines, blank between."""
    rng = random.Random(4)
    folder = root / "klue-ner"
    folder.mkdir(parents=True)
    for name, count in (("klue-ner-v1.1_train.tsv", 160), ("klue-ner-v1.1_dev.tsv", 40)):
        blocks = []
        for index in range(count):
            person, place = rng.choice(NAMES), rng.choice(PLACES)
            parts = [(person, "PS"), ("은 ", None), (place, "LC"), (f"에서 {rng.choice(FILLER)}", None)]
            annotated = "".join(f"<{text}:{kind}>" if kind else text for text, kind in parts)
            lines = [f"## toy_{index}\t{annotated}"]
            for text, kind in parts:
                for position, char in enumerate(text):
                    tag = f"{'B' if position == 0 else 'I'}-{kind}" if kind else "O"
                    lines.append(f"{char}\t{tag}")
            blocks.append("\n".join(lines))
        (folder / name).write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return {"downstream_corpus_name": "klue-ner"}


def qa_case(root: Path) -> dict[str, Any]:
    """KorQuAD's layout (<root>/korquad/KorQuAD_v1.0_{train,dev}.json); windows of 64 tokens."""
    folder = root / "korquad"
    folder.mkdir(parents=True)
    for name, articles, seed in (("KorQuAD_v1.0_train.json", 12, 1), ("KorQuAD_v1.0_dev.json", 3, 2)):
        document = json.dumps(toy_squad(articles, seed), ensure_ascii=False)
        (folder / name).write_text(document, encoding="utf-8")
    return {"downstream_corpus_name": "korquad", "max_query_length": 16, "doc_stride": 24}


def check_labelled(predictions: list[dict[str, Any]]) -> None:
    for prediction in predictions:
        probabilities = prediction["probabilities"]
        assert prediction["label"] in probabilities
        assert abs(sum(probabilities.values()) - 1) < 1e-4
        assert probabilities[prediction["label"]] == max(probabilities.values())


def check_entities(predictions: list[dict[str, Any]]) -> None:
    for prediction in predictions:
        assert isinstance(prediction["entities"], list)
        for entity in prediction["entities"]:
            assert prediction["text"][entity["start"] : entity["end"]] == entity["word"]
            assert entity["type"]
    assert any(prediction["entities"] for prediction in predictions), "no entity found in any sentence"


def check_answers(predictions: list[dict[str, Any]]) -> None:
    for prediction in predictions:
        assert 0 <= prediction["start"] <= prediction["end"] and 0 <= prediction["score"] <= 1
        assert prediction["end"] - prediction["start"] == len(prediction["answer"])


CASES: dict[str, tuple[Callable[[Path], dict[str, Any]], Callable[[list[dict[str, Any]]], None]]] = {
    "classification": (classification_case, check_labelled),
    "paircls": (paircls_case, check_labelled),
    "ner": (ner_case, check_entities),
    "qa": (qa_case, check_answers),
}
# What each notebook's output must show: nlpbook's warnings and summary reach a notebook's user.
SHOWN = {"classification": ["nlpbook: warning: ", "left out 1 empty review(s) at line(s) [11]"]}
