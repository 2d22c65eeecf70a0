"""n-best decoding over windows: best span across windows, length limit, valid spans, scores."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nlpbook.qa.decode import decode, decode_examples
from nlpbook.qa.squad import QAExample

CONTEXT = "aa bb cc dd ee ff gg hh"  # word i covers characters [3i, 3i + 2)
WORDS = [(3 * i, 3 * i + 2) for i in range(8)]


def window(first: int, last: int, question: int = 2) -> dict:
    """A feature holding words ``first..last``: [CLS] question [SEP] words [SEP]."""
    offsets = [None] * (question + 2) + WORDS[first : last + 1] + [None]
    return {"input_ids": [0] * len(offsets), "offsets": offsets, "example_index": 0}


def logits(feature: dict, peaks: dict[int, float]) -> np.ndarray:
    """0 except at the given *word* indices, and high on [CLS], which is no context token and
    must be ignored."""
    row = np.zeros(len(feature["offsets"]))
    row[0] = 100.0
    for position, offset in enumerate(feature["offsets"]):
        if offset is not None and WORDS.index(offset) in peaks:
            row[position] = peaks[WORDS.index(offset)]
    return row


def test_best_span_over_windows() -> None:
    left, right = window(0, 4), window(3, 7)
    starts = [logits(left, {1: 2.0}), logits(right, {5: 4.0})]
    ends = [logits(left, {2: 2.0}), logits(right, {6: 3.0})]
    result = decode(CONTEXT, [left, right], starts, ends)
    assert result["answer"] == "ff gg" and (result["start"], result["end"]) == (15, 20)
    assert CONTEXT[result["start"] : result["end"]] == result["answer"]


def test_max_answer_length_and_end_before_start() -> None:
    feature = window(0, 7)
    start = logits(feature, {0: 5.0, 6: 1.0})
    end = logits(feature, {7: 5.0, 0: 1.0})
    assert decode(CONTEXT, [feature], [start], [end], max_answer_length=8)["answer"] == CONTEXT
    short = decode(CONTEXT, [feature], [start], [end], max_answer_length=2)
    assert short["answer"] in ("aa", "gg hh")  # 0..0 and 6..7 both score 6; never 0..7
    assert short["answer"] == "aa"  # ties go to the earlier span
    # the best start lies after the best end: the pair is skipped, never returned reversed
    # spans 5..5-7 and 0-2..2 all score 9; the earliest wins
    backwards = decode(CONTEXT, [feature], [logits(feature, {5: 9.0})], [logits(feature, {2: 9.0})])
    assert backwards["answer"] == "aa bb cc"


def test_agrees_with_brute_force_on_random_logits() -> None:
    rng = np.random.default_rng(0)
    features = [window(0, 4), window(2, 6), window(4, 7)]
    for _ in range(200):
        starts = [rng.normal(size=len(f["offsets"]) + 3) for f in features]  # + batch padding
        ends = [rng.normal(size=len(f["offsets"]) + 3) for f in features]
        max_length = int(rng.integers(1, 5))
        result = decode(
            CONTEXT, features, starts, ends, n_best=8, max_answer_length=max_length, with_nbest=True
        )
        best = max(
            (s_row[i] + e_row[j], f["offsets"][i][0], f["offsets"][j][1])
            for f, s_row, e_row in zip(features, starts, ends, strict=True)
            for i, j in itertools.product(range(len(f["offsets"])), repeat=2)
            if f["offsets"][i] and f["offsets"][j] and 0 <= j - i < max_length
        )
        assert (result["start"], result["end"]) == best[1:]
        assert result["nbest"][0]["logit"] == pytest.approx(best[0])
        assert CONTEXT[result["start"] : result["end"]] == result["answer"]
        spans = [(n["start"], n["end"]) for n in result["nbest"]]
        assert len(spans) == len(set(spans)) == 8  # distinct, although windows overlap
        assert all(a["logit"] >= b["logit"] for a, b in itertools.pairwise(result["nbest"]))


def test_score_is_the_softmax_over_the_nbest_list() -> None:
    feature = window(0, 3)
    result = decode(
        CONTEXT, [feature], [logits(feature, {1: 3.0})], [logits(feature, {1: 3.0})], with_nbest=True
    )
    values = np.array([n["logit"] for n in result["nbest"]])
    assert len(values) == 10  # all spans of 4 words
    assert result["score"] == pytest.approx(np.exp(6.0) / np.exp(values).sum())
    assert sum(n["score"] for n in result["nbest"]) == pytest.approx(1.0)
    assert result["answer"] == "bb" and result["score"] == result["nbest"][0]["score"]


def test_no_valid_span_gives_the_empty_answer() -> None:
    empty = {"input_ids": [0, 0, 0], "offsets": [None, None, None], "example_index": 0}
    assert decode(CONTEXT, [empty], [np.zeros(3)], [np.zeros(3)]) == {
        "answer": "",
        "start": 0,
        "end": 0,
        "score": 0.0,
    }
    assert decode(CONTEXT, [], [], [], with_nbest=True)["nbest"] == []
    with pytest.raises(ValueError, match="must be ≥ 1"):
        decode(CONTEXT, [empty], [np.zeros(3)], [np.zeros(3)], n_best=0)
    with pytest.raises(ValueError, match="logit rows of length"):
        decode(CONTEXT, [window(0, 3)], [np.zeros(2)], [np.zeros(2)])


def test_decode_examples_matches_decode_per_example() -> None:
    rng = np.random.default_rng(1)
    examples = [QAExample(str(i), "?", CONTEXT) for i in range(3)]
    features = [
        dict(window(0, 4), example_index=0),
        dict(window(3, 7), example_index=0),
        dict(window(0, 7), example_index=2),
    ]
    starts = [rng.normal(size=len(f["offsets"])) for f in features]
    ends = [rng.normal(size=len(f["offsets"])) for f in features]
    together = decode_examples(examples, features, starts, ends, n_best=5, max_answer_length=3)
    assert together[0] == decode(CONTEXT, features[:2], starts[:2], ends[:2], n_best=5, max_answer_length=3)
    assert together[1] == {"answer": "", "start": 0, "end": 0, "score": 0.0}  # no windows
    assert together[2] == decode(CONTEXT, features[2:], starts[2:], ends[2:], n_best=5, max_answer_length=3)
