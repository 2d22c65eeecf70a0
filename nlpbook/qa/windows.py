"""Question + context -> overlapping windows of sub-tokens, with character offsets and span labels.

**doc_stride** has the meaning of the original BERT SQuAD code, ratsnlp and the book: the number of
context tokens between the starts of consecutive windows (ratsnlp's help: "how much stride to take
between chunks"; 384/128/64 for max_seq_length/doc_stride/max_query_length there, 128/64/32 in the
book). Hugging Face fast tokenizers' ``stride`` means something else: the number of tokens
consecutive windows *share*. With ``room`` context tokens per window (``max_seq_length`` minus the
question and the special tokens) the two are related by ``stride = room - doc_stride``;
``tests/test_qa_windows.py`` checks that ``encode`` gives exactly the windows of
``tokenizer(question, context, truncation="only_second", stride=room - doc_stride,
return_overflowing_tokens=True)``. A ``doc_stride`` larger than the room left after the longest
question would skip the tokens between windows (the BERT code skipped them silently): it is an error.

Why not call the tokenizer on (question, context) pairs, as Hugging Face's ``run_qa`` does: each
KorQuAD context is shared by ~6 questions, and tokenising it once instead of once per question is
faster (KorQuAD dev at 128/64/32: the bare pair call takes 7.3 s, all of ``encode`` 2.6 s). A
pair encoding is the two sequences tokenised separately and joined by the tokenizer's template
([CLS] A [SEP] B [SEP] for BERT), so the windows are cut here from the context's tokens and joined
by the same template, read from the tokenizer once (:func:`_template`; transformers 5 no longer
has ``build_inputs_with_special_tokens``).

The question is cut to ``max_query_length`` sub-tokens (by tokens, not characters).

**Labels** (``start_positions``/``end_positions``, from the first gold answer) are the window
positions of the first and last sub-token overlapping the answer's characters; a window that does
not hold the whole answer gets the [CLS] position 0 for both, as in BERT's SQuAD recipe. An answer
boundary inside a sub-token cannot be represented: the span is widened to that sub-token's edges
(as in Hugging Face's ``run_qa``). With kcbert-base this is common, because its vocabulary joins a
particle to the syllable before it: gold ``임수경`` in ``임 ##수 ##경을`` decodes as ``임수경을``,
``증거`` in ``증거가`` as ``증거가``. On the KorQuAD dev set 1,263 of 5,774 answers (21.9%) end
inside a sub-token (``tests/test_qa_windows.py``); exact match of perfect predictions is 78.1%.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any

from nlpbook.qa.squad import Answer, QAExample
from nlpbook.tasks import Features

__all__ = ["context_room", "window_starts", "encode"]

logger = logging.getLogger(__name__)

Offset = tuple[int, int]
Template = list[tuple[int | None, int]]  # (special token id, or None for the question / context; type id)


def context_room(tokenizer: Any, max_seq_length: int, max_query_length: int, doc_stride: int) -> int:
    """Context tokens a window holds after a question of ``max_query_length`` tokens.

    Raises ``ValueError`` (the caller turns it into an argument error) when the settings cannot
    work: no room for any context, or a ``doc_stride`` that would skip context tokens.
    """
    if max_query_length < 1 or doc_stride < 1:
        raise ValueError(f"max_query_length ({max_query_length}) and doc_stride ({doc_stride}) must be ≥ 1")
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and max_seq_length > limit:
        raise ValueError(f"max_seq_length {max_seq_length} exceeds the tokenizer's model_max_length {limit}")
    special = tokenizer.num_special_tokens_to_add(pair=True)
    room = max_seq_length - max_query_length - special
    if room < 1:
        raise ValueError(
            f"max_seq_length {max_seq_length} leaves no room for the context after a question of up to "
            f"max_query_length {max_query_length} tokens and {special} special tokens"
        )
    if doc_stride > room:
        raise ValueError(
            f"doc_stride {doc_stride} (context tokens between window starts) exceeds the {room} context "
            f"tokens a window holds (max_seq_length {max_seq_length} - max_query_length "
            f"{max_query_length} - {special} special tokens): tokens between windows would be skipped"
        )
    return room


def window_starts(n_tokens: int, room: int, doc_stride: int) -> list[int]:
    """First context token of each window: every ``doc_stride`` tokens until a window reaches the
    end (window ``k`` holds tokens ``[k * doc_stride, k * doc_stride + room)``; always ≥ 1 window)."""
    if not 1 <= doc_stride <= room:
        raise ValueError(f"doc_stride {doc_stride} must be between 1 and the window's room {room}")
    starts = [0]
    while starts[-1] + room < n_tokens:
        starts.append(starts[-1] + doc_stride)
    return starts


def encode(
    examples: Sequence[QAExample],
    tokenizer: Any,
    max_seq_length: int,
    doc_stride: int,
    max_query_length: int,
    labelled: bool = True,
) -> list[Features]:
    """Windows of every example, in example order: ``input_ids``, ``token_type_ids``,
    ``example_index``, ``offsets`` (context character span of each position, ``None`` for the
    question and special tokens) and, when ``labelled``, ``start_positions``/``end_positions``."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("question answering needs a fast tokenizer (character offsets)")
    context_room(tokenizer, max_seq_length, max_query_length, doc_stride)
    if labelled:
        unanswered = next((e.id for e in examples if not e.answers), None)
        if unanswered is not None:
            raise ValueError(f"question {unanswered!r} has no answer to label")
    template = _template(tokenizer)
    special = sum(token is not None for token, _ in template)
    questions = _tokenize(tokenizer, [e.question for e in examples])
    contexts = _tokenize(tokenizer, [e.context for e in examples])
    bounds: dict[str, tuple[list[int], list[int]]] = {}
    features: list[Features] = []
    for index, example in enumerate(examples):
        question = questions[example.question][0][:max_query_length]
        ids, offsets = contexts[example.context]
        room = max_seq_length - len(question) - special
        span = _token_span(bounds, example.context, offsets, example.answers[0]) if labelled else None
        if labelled and span is None:
            logger.warning("question %r: no sub-token overlaps the answer; labelled [CLS]", example.id)
        for start in window_starts(len(ids), room, doc_stride):
            end = min(start + room, len(ids))
            feature, first = _join(template, question, ids[start:end], offsets[start:end])
            feature["example_index"] = index
            if labelled:
                inside = span is not None and start <= span[0] and span[1] < end
                at = (first - start + span[0], first - start + span[1]) if span and inside else (0, 0)
                feature["start_positions"], feature["end_positions"] = at
            features.append(feature)
    return features


def _tokenize(tokenizer: Any, texts: Sequence[str]) -> dict[str, tuple[list[int], list[Offset]]]:
    """Sub-token ids and character spans of each distinct text, without special tokens."""
    unique = list(dict.fromkeys(texts))
    encoded = tokenizer(unique, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    result = {}
    for text, ids, spans in zip(unique, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        if spans and not isinstance(spans[0], tuple):
            spans = [(s, e) for s, e in spans]  # tuples already in transformers 5; checked once
        result[text] = (ids, spans)
    return result


def _template(tokenizer: Any) -> Template:
    """How the tokenizer joins a pair, read from a probe pair: special tokens with their ids and
    type ids, and one (None, type id) slot for the question and one for the context."""
    probe = tokenizer("a", "b", return_token_type_ids=True)
    template: Template = []
    previous = None
    for token, type_id, sequence in zip(
        probe["input_ids"], probe["token_type_ids"], probe.sequence_ids(0), strict=True
    ):
        if sequence is None:
            template.append((token, type_id))
        elif sequence != previous:
            template.append((None, type_id))
        previous = sequence
    if sum(token is None for token, _ in template) != 2:
        raise ValueError(f"cannot read how {type(tokenizer).__name__} joins a question and a context")
    return template


def _join(
    template: Template, question: list[int], context: list[int], offsets: list[Offset]
) -> tuple[Features, int]:
    """One window (the template filled with the question and a slice of the context) and the
    position of its first context token."""
    input_ids: list[int] = []
    type_ids: list[int] = []
    spans: list[Offset | None] = []
    parts = iter(((question, None), (context, offsets)))
    first = 0
    for token, type_id in template:
        if token is not None:
            input_ids.append(token)
            type_ids.append(type_id)
            spans.append(None)
            continue
        ids, part_offsets = next(parts)
        if part_offsets is None:
            spans.extend([None] * len(ids))
        else:
            first = len(input_ids)
            spans.extend(part_offsets)
        input_ids.extend(ids)
        type_ids.extend([type_id] * len(ids))
    return {"input_ids": input_ids, "token_type_ids": type_ids, "offsets": spans}, first


def _token_span(
    bounds: dict[str, tuple[list[int], list[int]]], context: str, offsets: list[Offset], answer: Answer
) -> tuple[int, int] | None:
    """First and last context sub-token overlapping the answer's characters (None: none does).
    ``bounds`` caches each context's token starts and ends (a context has ~6 questions)."""
    if context not in bounds:
        bounds[context] = ([start for start, _ in offsets], [end for _, end in offsets])
    starts, ends = bounds[context]
    first = bisect_right(ends, answer.start)  # first token ending after the answer's start
    last = bisect_left(starts, answer.end) - 1  # last token starting before the answer's end
    if first >= len(offsets) or last < first:
        return None
    return first, last
