"""Sub-token alignment on real Korean text with the real kcbert-base tokenizer (skips without it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import settings
from transformers import AutoTokenizer

from nlpbook.data import IGNORE_INDEX, Collator
from nlpbook.ner import Entity, NERExample, read_ner_file
from nlpbook.ner.task import TASK
from nlpbook.tasks import Features

LABELS = ["O", "B-LC", "I-LC", "B-PS", "I-PS"]


@pytest.fixture(scope="module")
def tokenizer(kcbert_dir: Path):
    return AutoTokenizer.from_pretrained(kcbert_dir)


def gold_as_logits(features: Sequence[Features], size: int) -> list[np.ndarray]:
    """Logits that predict exactly the gold labels (ignored positions predict O)."""
    return [np.eye(size)[[max(label, 0) for label in f["labels"]]] for f in features]


def round_trip(example: NERExample, tokenizer, labels: Sequence[str], max_seq_length: int = 128) -> dict:
    features = TASK.encode([example], tokenizer, labels, settings(max_seq_length))
    return TASK.decode(example, features, gold_as_logits(features, len(labels)), labels, None)


def test_subtoken_labels_and_ignored_positions(tokenizer) -> None:
    example = NERExample("이순신은 한산도 앞바다에서 싸웠다", (Entity("PS", 0, 3), Entity("LC", 5, 8)))
    [feature] = TASK.encode([example], tokenizer, LABELS, settings(128))
    tokens = tokenizer.convert_ids_to_tokens(feature["input_ids"])
    tags = [LABELS[i] if i != IGNORE_INDEX else None for i in feature["labels"]]
    pairs = list(zip(tokens, tags, strict=True))
    assert pairs[0] == ("[CLS]", None) and pairs[-1] == ("[SEP]", None)  # specials never enter the loss
    assert ("이순신", "B-PS") in pairs and ("##은", "O") in pairs  # the particle stays outside
    assert feature["offsets"][0] is None and feature["offsets"][1] == (0, 3)
    entity_tags = [tag for tag in tags if tag not in (None, "O")]
    assert entity_tags == ["B-PS", "B-LC", "I-LC", "I-LC"]  # 이순신 | 한 ##산 ##도


def test_padding_positions_are_ignored(tokenizer) -> None:
    example = NERExample("세종은 한글을 만들었다", (Entity("PS", 0, 2),))
    [feature] = TASK.encode([example], tokenizer, LABELS, settings(24))
    batch = Collator(tokenizer.pad_token_id, pad_to=24)([feature])  # padding="max_length"
    assert batch["labels"].shape == (1, 24)
    padding = (batch["attention_mask"][0] == 0).nonzero().flatten().tolist()
    assert padding == list(range(len(feature["input_ids"]), 24))
    assert all(batch["labels"][0, i] == IGNORE_INDEX for i in padding)


def test_round_trip_when_boundaries_fall_between_subtokens(tokenizer) -> None:
    text = "이순신은 서울 시청 앞에서 세종대왕을 만났다"
    gold = (Entity("PS", 0, 3), Entity("LC", 5, 10), Entity("PS", 15, 19))
    result = round_trip(NERExample(text, gold), tokenizer, LABELS)
    assert [(e["type"], e["start"], e["end"], e["word"]) for e in result["entities"]] == [
        ("PS", 0, 3, "이순신"),
        ("LC", 5, 10, "서울 시청"),  # two words: the space inside comes from the text
        ("PS", 15, 19, "세종대왕"),
    ]


def test_boundary_inside_a_subtoken_widens_the_span(tokenizer) -> None:
    text = "조선의 장군"
    assert tokenizer.tokenize(text)[0] == "조선의"  # kcbert keeps 조선의 whole: 조선 cannot be cut out
    result = round_trip(NERExample(text, (Entity("LC", 0, 2),)), tokenizer, LABELS)
    assert result["entities"] == [{"type": "LC", "start": 0, "end": 3, "word": "조선의"}]


def test_decode_reads_tags_as_seqeval_does(tokenizer) -> None:
    text = "세종 세종 서울 부산"
    [feature] = TASK.encode([NERExample(text)], tokenizer, None, settings(128))
    assert "labels" not in feature
    tags = ["O", "B-PS", "B-PS", "I-LC", "I-LC", "O"]  # [CLS] w1 w2 w3 w4 [SEP]
    logits = np.eye(len(LABELS))[[LABELS.index(t) for t in tags]]
    entities = TASK.decode(NERExample(text), [feature], [logits], LABELS, None)["entities"]
    # two B- are two entities; an I- with nothing open starts one; I- of the same type continues
    assert [(e["word"], e["type"]) for e in entities] == [("세종", "PS"), ("세종", "PS"), ("서울 부산", "LC")]


def test_long_sentence_windows_cover_every_subtoken(tokenizer) -> None:
    words = ["이순신은", "한산도", "앞바다에서", "왜군을", "크게", "무찔렀다"] * 8
    text = " ".join(words)
    gold, start = [], 0
    for word in words:
        if word in ("이순신은", "한산도"):
            gold.append(Entity("PS" if word == "이순신은" else "LC", start, start + 3))  # 이순신, 한산도
        start += len(word) + 1
    example = NERExample(text, tuple(gold))
    features = TASK.encode([example], tokenizer, LABELS, settings(16))
    assert len(features) > 4 and all(len(f["input_ids"]) <= 16 for f in features)
    whole = [o for o in TASK.encode([example], tokenizer, LABELS, settings(512))[0]["offsets"] if o]
    covered = {o for f in features for o in f["offsets"] if o}
    assert covered == set(whole)  # nothing cut off
    assert sum(len([o for o in f["offsets"] if o]) for f in features) > len(whole)  # windows overlap
    result = TASK.decode(example, features, gold_as_logits(features, len(LABELS)), LABELS, None)
    assert [(e["type"], e["start"], e["end"]) for e in result["entities"]] == [
        (e.type, e.start, e.end) for e in gold
    ]


def test_klue_ner_round_trip(tokenizer, shared_data: Path) -> None:
    """Gold spans -> sub-token labels -> (as if predicted) -> spans, over real KLUE-NER sentences.

    Exact for every entity whose boundaries fall between sub-tokens; the rest are widened to the
    sub-token edges (kcbert keeps many word+particle pieces whole, e.g. 조선의) or, rarely, lost
    (a gold span that starts with a space; one [UNK] covering two entities)."""
    path = shared_data / "klue" / "klue-ner-v1.1_dev.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    examples = read_ner_file(path, "klue")[:2000]
    labels = TASK.label_names(examples)
    features = TASK.encode(examples, tokenizer, labels, settings(128))
    by_example: dict[int, list[Features]] = {}
    for feature in features:
        by_example.setdefault(feature["example_index"], []).append(feature)
    counts = {"entities": 0, "exact": 0, "representable": 0, "representable_exact": 0, "sentences_exact": 0}
    for index, example in enumerate(examples):
        own = by_example[index]
        decoded = TASK.decode(example, own, gold_as_logits(own, len(labels)), labels, None)["entities"]
        found = {(e["type"], e["start"], e["end"]) for e in decoded}
        offsets = sorted({o for f in own for o in f["offsets"] if o})
        for entity in example.entities or ():
            exact = (entity.type, entity.start, entity.end) in found
            counts["entities"] += 1
            counts["exact"] += exact
            if _representable(entity, example.entities or (), offsets):
                counts["representable"] += 1
                counts["representable_exact"] += exact
        gold = {(e.type, e.start, e.end) for e in example.entities or ()}
        counts["sentences_exact"] += gold == found
    print(f"KLUE-NER dev round trip over {len(examples)} sentences: {counts}")
    assert counts["representable_exact"] == counts["representable"]  # exact wherever it can be
    assert counts["exact"] / counts["entities"] > 0.8  # kcbert: about 83% of entities (see align.py)
    metrics = TASK.metrics(examples, features, gold_as_logits(features, len(labels)), labels, None)
    assert metrics["f1"] == 1.0 and metrics["token_accuracy"] == 1.0
    assert metrics["span_f1"] == pytest.approx(counts["exact"] / counts["entities"], abs=0.01)


def _representable(entity: Entity, entities: Sequence[Entity], offsets: Sequence[tuple[int, int]]) -> bool:
    """Both ends on sub-token edges, and no sub-token of it shared with another entity."""
    mine = [(s, e) for s, e in offsets if s < entity.end and entity.start < e]
    if not mine or mine[0][0] != entity.start or mine[-1][1] != entity.end:
        return False
    others = [x for x in entities if x is not entity]
    return not any(s < x.end and x.start < e for s, e in mine for x in others)
