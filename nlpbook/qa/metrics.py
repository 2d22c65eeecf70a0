"""Exact match and F1 as KorQuAD 1.0's official script (``evaluate-v1.0.py``) defines them.

The definitions, from https://korquad.github.io/dataset/evaluate-v1.0.py (itself adapted from
SQuAD v1.1's script), re-implemented here rather than copied:

* **normalisation**: the characters ``' " 《 》 < > 〈 〉 ( ) ‘ ’`` become spaces; the text is
  lower-cased; ASCII punctuation (Python's ``string.punctuation``) is deleted (not replaced by a
  space: ``서울,부산`` -> ``서울부산``, but ``서울(부산)`` -> ``서울 부산``); runs of whitespace
  become one space and the ends are stripped. Korean particles are *not* removed: ``이순신은`` and
  ``이순신`` are different answers.
* **exact match**: the normalised prediction equals the normalised gold answer (spaces count:
  ``서울 특별시`` is not ``서울특별시``).
* **F1**: over *characters*, not words (the one change from SQuAD): the characters of the
  normalised text without its spaces, compared as multisets. No character in common gives 0, so
  an empty prediction scores 0 even against an empty gold answer (whose exact match is 1).
* Each question takes the best score over its gold answers; the corpus score is the mean over
  questions **in percent** (0-100, as the official script prints it); a question without a
  prediction scores 0.
"""

from __future__ import annotations

import logging
import string
from collections import Counter
from collections.abc import Mapping, Sequence

__all__ = ["normalize_answer", "exact_match", "f1_score", "korquad_scores"]

logger = logging.getLogger(__name__)

_TO_SPACE = str.maketrans({c: " " for c in "'\"《》<>〈〉()‘’"})
_DELETE = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """The text as KorQuAD 1.0 compares answers (see the module docstring)."""
    return " ".join(text.translate(_TO_SPACE).lower().translate(_DELETE).split())


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1.0 when the prediction matches some gold answer after normalisation, else 0.0."""
    predicted = normalize_answer(prediction)
    return max(float(predicted == normalize_answer(gold)) for gold in _golds(golds))


def f1_score(prediction: str, golds: str | Sequence[str]) -> float:
    """Character-level F1 (0-1) against the best-matching gold answer."""
    predicted = _characters(prediction)
    return max(_f1(predicted, _characters(gold)) for gold in _golds(golds))


def korquad_scores(predictions: Mapping[str, str], golds: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in percent over the questions of ``golds`` (id -> gold answer
    texts); ``predictions`` maps id -> answer text, and a missing id scores 0 (and is logged)."""
    if not golds:
        raise ValueError("no gold answers to score against")
    missing = [qid for qid in golds if qid not in predictions]
    if missing:
        logger.warning(
            "%d of %d questions have no prediction (scored 0), e.g. %s", len(missing), len(golds), missing[:3]
        )
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid in predictions:
            em += exact_match(predictions[qid], answers)
            f1 += f1_score(predictions[qid], answers)
    return {"exact_match": 100.0 * em / len(golds), "f1": 100.0 * f1 / len(golds)}


def _golds(golds: str | Sequence[str]) -> Sequence[str]:
    golds = [golds] if isinstance(golds, str) else golds  # a bare string is one answer, not characters
    if not golds:
        raise ValueError("a question needs at least one gold answer")
    return golds


def _characters(text: str) -> Counter[str]:
    return Counter(normalize_answer(text).replace(" ", ""))


def _f1(predicted: Counter[str], gold: Counter[str]) -> float:
    same = sum((predicted & gold).values())
    if same == 0:
        return 0.0
    precision = same / sum(predicted.values())
    recall = same / sum(gold.values())
    return 2 * precision * recall / (precision + recall)
