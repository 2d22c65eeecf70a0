"""Start/end logits of the windows of a question -> the answer's character span (n-best search).

In each window the ``n_best`` highest start logits and the ``n_best`` highest end logits over
*context* tokens are paired (``n_best**2`` candidates); pairs with end before start or longer than
``max_answer_length`` sub-tokens are dropped, and a span is scored by its start logit + end logit,
as in BERT's SQuAD recipe and Hugging Face's ``run_qa``. Windows overlap, so one character span can
come from several windows: it keeps its best score. The answer is the best span over all windows,
cut from the context by its sub-tokens' character offsets, so ``context[start:end] == answer``.

**score** is a probability: the softmax of start+end logits over the n-best list (the ``n_best``
best distinct spans), as ``run_qa`` reports it. It says how the model's top candidates compare;
it is not calibrated across questions. When no window has a valid span (no context tokens) the
answer is empty with ``start == end == 0`` and ``score == 0.0``.

The pairing runs as array operations over the windows of many questions at once (KorQuAD
evaluation decodes ~6k questions, ~23k windows at max_seq_length 128): only each window's
``n_best`` best pairs reach Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nlpbook.qa.squad import QAExample
from nlpbook.tasks import Features

__all__ = ["decode", "decode_examples"]

Span = dict[str, Any]
CHUNK = 256  # questions whose candidates are built together (~2k windows x n_best**2 pairs)


def decode(
    context: str,
    features: Sequence[Features],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    with_nbest: bool = False,
) -> Span:
    """The best answer span over ``features`` (all windows of one question) as ``{"answer",
    "start", "end", "score"}``; with ``with_nbest`` also ``"nbest"``: the n-best list, best first,
    each entry with the same keys plus ``"logit"`` (start + end logit).

    ``start_logits[i]``/``end_logits[i]`` belong to ``features[i]`` and may be longer than its
    ``input_ids`` (batch padding); the extra positions are ignored.
    """
    _check(features, start_logits, end_logits, n_best, max_answer_length)
    rows = list(range(len(features)))
    return _decode_chunk(
        [context], [rows], features, start_logits, end_logits, n_best, max_answer_length, with_nbest
    )[0]


def decode_examples(
    examples: Sequence[QAExample],
    features: Sequence[Features],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int = 20,
    max_answer_length: int = 30,
    with_nbest: bool = False,
) -> list[Span]:
    """:func:`decode` for every example, in example order, its windows found by ``example_index``;
    an example with no features gets the empty answer."""
    _check(features, start_logits, end_logits, n_best, max_answer_length)
    groups: list[list[int]] = [[] for _ in examples]
    for row, feature in enumerate(features):
        groups[feature["example_index"]].append(row)
    results: list[Span] = []
    for begin in range(0, len(examples), CHUNK):
        contexts = [e.context for e in examples[begin : begin + CHUNK]]
        chunk = groups[begin : begin + CHUNK]
        results += _decode_chunk(
            contexts, chunk, features, start_logits, end_logits, n_best, max_answer_length, with_nbest
        )
    return results


def _check(
    features: Sequence[Features],
    start_logits: Sequence[Any],
    end_logits: Sequence[Any],
    n_best: int,
    max_length: int,
) -> None:
    if n_best < 1 or max_length < 1:
        raise ValueError(f"n_best ({n_best}) and max_answer_length ({max_length}) must be ≥ 1")
    if not len(features) == len(start_logits) == len(end_logits):
        raise ValueError(
            f"{len(features)} features but {len(start_logits)} start and {len(end_logits)} end logit rows"
        )


def _decode_chunk(
    contexts: Sequence[str],
    groups: Sequence[Sequence[int]],
    features: Sequence[Features],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int,
    max_answer_length: int,
    with_nbest: bool,
) -> list[Span]:
    """One answer per group of feature rows (the windows of one question)."""
    rows = [row for group in groups for row in group]
    question = np.repeat(np.arange(len(groups)), [len(group) for group in groups])
    score, window, start, end = _candidates(
        [features[r] for r in rows],
        [start_logits[r] for r in rows],
        [end_logits[r] for r in rows],
        n_best,
        max_answer_length,
    )
    owner = question[window]  # the question of each candidate
    order = np.lexsort((-score, owner))  # by question, then best score first (stable)
    bounds = np.searchsorted(owner[order], np.arange(len(groups) + 1))
    feature_row = np.asarray(rows, dtype=int)[window]
    results = []
    for q, context in enumerate(contexts):
        picked = order[bounds[q] : bounds[q + 1]]
        arrays = (feature_row[picked], start[picked], end[picked], score[picked])
        candidates = zip(*(a.tolist() for a in arrays), strict=True)
        results.append(_answer(context, features, candidates, n_best, with_nbest))
    return results


def _answer(
    context: str, features: Sequence[Features], candidates: Any, n_best: int, with_nbest: bool
) -> Span:
    """The best distinct character spans of one question (candidates best first), with scores."""
    best: list[Span] = []
    seen: set[tuple[int, int]] = set()
    for row, s, e, logit in candidates:
        offsets = features[row]["offsets"]
        begin, finish = offsets[s][0], offsets[e][1]
        if (begin, finish) not in seen:
            seen.add((begin, finish))
            best.append({"answer": context[begin:finish], "start": begin, "end": finish, "logit": logit})
            if len(best) == n_best:
                break
    if not best:
        empty: Span = {"answer": "", "start": 0, "end": 0, "score": 0.0}
        return {**empty, "nbest": []} if with_nbest else empty
    best.sort(key=lambda entry: (-entry["logit"], entry["start"]))  # ties: earlier in the context
    logits = np.array([entry["logit"] for entry in best])
    probabilities = np.exp(logits - logits.max())
    for entry, probability in zip(best, (probabilities / probabilities.sum()).tolist(), strict=True):
        entry["score"] = probability
    top = {key: best[0][key] for key in ("answer", "start", "end", "score")}
    return {**top, "nbest": best} if with_nbest else top


def _candidates(
    features: Sequence[Features],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best: int,
    max_answer_length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(score, window, start position, end position) of the ``n_best`` best valid spans of each
    window, from its top ``n_best`` starts x top ``n_best`` ends over context tokens; all windows
    at once. Keeping n_best per window loses nothing: a span among a question's n_best best
    distinct spans has fewer than n_best better spans in any window."""
    runs = [
        _context_run(f["offsets"], s, e) for f, s, e in zip(features, start_logits, end_logits, strict=True)
    ]
    width = max((last - first for first, last in runs), default=0)
    if width == 0:
        return np.empty(0), np.empty(0, dtype=int), np.empty(0, dtype=int), np.empty(0, dtype=int)
    # one row per window, its context logits left-aligned; -inf where a window has fewer tokens
    starts = np.full((len(runs), width), -np.inf)
    ends = np.full((len(runs), width), -np.inf)
    for row, (first, last) in enumerate(runs):
        starts[row, : last - first] = start_logits[row][first:last]
        ends[row, : last - first] = end_logits[row][first:last]
    k = min(n_best, width)
    top_starts, top_ends = _top(starts, k), _top(ends, k)  # (windows, k) column indices
    lines = np.arange(len(runs))[:, None]
    start_scores, end_scores = starts[lines, top_starts], ends[lines, top_ends]
    length = top_ends[:, None, :] - top_starts[:, :, None]  # (windows, k starts, k ends)
    pairs = start_scores[:, :, None] + end_scores[:, None, :]
    pairs[(length < 0) | (length >= max_answer_length)] = -np.inf
    pairs = pairs.reshape(len(runs), k * k)
    best = _top(pairs, min(n_best, k * k))
    window, column = np.nonzero(np.isfinite(pairs[lines, best]))
    pair = best[window, column]
    first = np.array([first for first, _ in runs])[window]
    start, end = top_starts[window, pair // k] + first, top_ends[window, pair % k] + first
    return pairs[window, pair], window, start, end


def _context_run(offsets: Sequence[Any], start_row: Any, end_row: Any) -> tuple[int, int]:
    """``[first, last)`` positions of a window's context tokens (one run, as ``encode`` makes them)."""
    if len(start_row) < len(offsets) or len(end_row) < len(offsets):
        raise ValueError(f"logit rows of length {len(start_row)}/{len(end_row)} for {len(offsets)} positions")
    first = next((i for i, o in enumerate(offsets) if o is not None), len(offsets))
    last = len(offsets) - next((i for i, o in enumerate(reversed(offsets)) if o is not None), len(offsets))
    if None in offsets[first:last]:
        raise ValueError(
            "a window's context positions must be one run, as nlpbook.qa.windows.encode makes them"
        )
    return first, max(first, last)


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values of each row (any order: candidates are sorted)."""
    if k >= values.shape[1]:
        return np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    return np.argpartition(-values, k - 1, axis=1)[:, :k]
