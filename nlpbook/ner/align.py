"""Character spans <-> WordPiece sub-token labels, windows for long sentences, and their merge.

Why every sub-token is labelled (and not only the first piece of each word, as in Hugging Face's
``run_ner``): Korean attaches particles to words, and KLUE and the book annotate characters, so an
entity very often ends inside a whitespace word: ``<이순신:PS>은`` is one word that kcbert splits
into ``이순신 ##은``. If only the word-initial piece carried a label, the model could only say "the
word 이순신은 is a person" and the particle would always end up inside the entity. So each
sub-token is labelled from its character offsets (``B-`` on the first sub-token of an entity,
``I-`` on the rest, ``O`` outside), and the rule "first piece carries the label, the rest are
ignored" applies one level down: a sub-token takes its label from the characters it covers.
[CLS], [SEP] and [PAD] get -100, so they never enter the loss (ratsnlp gave them real classes).

An entity boundary that falls *inside* one sub-token cannot be represented: the sub-token is
given to the entity it overlaps most (ties: the earlier one), and the decoded span is widened to
the edges of its sub-tokens (``<박:PS>씨`` tokenised ``박씨`` decodes as 박씨). An entity that
shares all its sub-tokens with a bigger neighbour is lost. ``tests/test_ner_alignment.py``
counts how often either happens on real KLUE-NER sentences.

A sentence longer than ``max_seq_length`` becomes several overlapping windows (features sharing
one ``example_index``); each sub-token's prediction is taken from the window where it has the most
context on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nlpbook.corpus import DataError
from nlpbook.ner.formats import Entity, NERExample
from nlpbook.tasks import IGNORE_INDEX, Features

if TYPE_CHECKING:
    import numpy as np

__all__ = ["encode", "window_overlap", "merge_windows", "token_labels", "spans_from_tags"]

Offset = tuple[int, int]


def window_overlap(max_seq_length: int) -> int:
    """Sub-tokens shared by consecutive windows: a quarter of a window's text."""
    return (max_seq_length - 2) // 4


def token_labels(offsets: Sequence[Offset], entities: Sequence[Entity]) -> list[str]:
    """BIO tag of each sub-token (``offsets`` in text order) from the character spans."""
    owner: list[Entity | None] = []
    for start, end in offsets:
        best, best_overlap = None, 0
        for entity in entities:
            overlap = min(end, entity.end) - max(start, entity.start)
            if overlap > best_overlap:
                best, best_overlap = entity, overlap
        owner.append(best)
    tags = []
    for index, entity in enumerate(owner):
        if entity is None:
            tags.append("O")
        else:
            first = index == 0 or owner[index - 1] is not entity
            tags.append(("B-" if first else "I-") + entity.type)
    return tags


def spans_from_tags(offsets: Sequence[Offset], tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) character spans from sub-token tags: ``B-X`` opens an entity, ``I-X``
    continues an open ``X`` (or opens one when none is open, as seqeval reads it), anything else
    closes it. A span runs from its first sub-token's start to its last one's end."""
    spans: list[tuple[str, int, int]] = []
    current: list[Any] | None = None
    for (start, end), tag in zip(offsets, tags, strict=True):
        prefix, kind = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") else ("O", "")
        if prefix == "I" and current is not None and current[0] == kind:
            current[2] = end
            continue
        if current is not None:
            spans.append((current[0], current[1], current[2]))
            current = None
        if prefix != "O":
            current = [kind, start, end]
    if current is not None:
        spans.append((current[0], current[1], current[2]))
    return spans


def encode(
    examples: Sequence[NERExample],
    tokenizer: Any,
    label_names: Sequence[str] | None,
    max_seq_length: int,
) -> list[Features]:
    """Windows of at most ``max_seq_length`` sub-tokens with their labels and character offsets.

    Each feature keeps ``offsets`` (the character span of every position, ``None`` for special
    tokens and padding): it is all that merging windows and decoding spans need.
    """
    if not examples:
        return []
    encoded = tokenizer(
        [e.text for e in examples],
        truncation=True,
        max_length=max_seq_length,
        stride=window_overlap(max_seq_length),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        return_attention_mask=False,
    )
    windows: dict[int, list[int]] = {}
    for window, index in enumerate(encoded["overflow_to_sample_mapping"]):
        windows.setdefault(index, []).append(window)
    label_ids = {name: i for i, name in enumerate(label_names or [])}
    features: list[Features] = []
    for index, example in enumerate(examples):
        offsets_of = {
            window: [
                tuple(span) if sequence is not None else None
                for span, sequence in zip(
                    encoded["offset_mapping"][window], encoded.sequence_ids(window), strict=True
                )
            ]
            for window in windows[index]
        }
        labels = None
        if label_names is not None and example.entities is not None:
            labels = _labels_by_start(example, offsets_of.values(), label_ids)
        for window in windows[index]:
            offsets = offsets_of[window]
            feature: Features = {
                "input_ids": encoded["input_ids"][window],
                "token_type_ids": encoded["token_type_ids"][window],
                "example_index": index,
                "offsets": offsets,
                "entities": example.entities,  # gold spans, for the character-level score
            }
            if labels is not None:
                feature["labels"] = [IGNORE_INDEX if o is None else labels[o[0]] for o in offsets]
            features.append(feature)
    return features


def _labels_by_start(example: NERExample, windows: Any, label_ids: dict[str, int]) -> dict[int, int]:
    """Label id of each sub-token, keyed by its start character: computed once over the whole
    sentence (the union of its windows), so a window that opens mid-entity starts with I-."""
    offsets = sorted({o for window in windows for o in window if o is not None})
    tags = token_labels(offsets, example.entities or ())
    unknown = next((t for t in tags if t not in label_ids), None)
    if unknown is not None:
        row = example.row
        raise DataError(
            row.path if row else "input", row.line if row else None, f"label {unknown!r} is not a model label"
        )
    return {start: label_ids[tag] for (start, _), tag in zip(offsets, tags, strict=True)}


def merge_windows(
    features: Sequence[Features], values: Sequence[np.ndarray]
) -> list[tuple[Offset, Features, int, np.ndarray]]:
    """One entry per sub-token of a sentence, in text order: (offset, feature, position, values of
    that feature), taken from the window where the sub-token has the most context on both sides."""
    best: dict[int, tuple[int, Offset, Features, int, np.ndarray]] = {}
    for feature, value in zip(features, values, strict=True):
        offsets = feature["offsets"]
        real = [i for i, o in enumerate(offsets) if o is not None and i < len(value)]
        if not real:
            continue
        first, last = real[0], real[-1]
        for i in real:
            context = min(i - first, last - i)
            start = offsets[i][0]
            if start not in best or context > best[start][0]:
                best[start] = (context, offsets[i], feature, i, value)
    return [entry[1:] for _, entry in sorted(best.items())]
