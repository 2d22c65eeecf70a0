"""Question answering windows: doc_stride, label alignment, coverage; real KorQuAD round trip."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from nlpbook.qa.decode import decode_examples
from nlpbook.qa.metrics import korquad_scores
from nlpbook.qa.squad import Answer, QAExample, read_squad
from nlpbook.qa.windows import context_room, encode, window_starts

logger = logging.getLogger(__name__)

QUESTION = "q1 q2 ?"  # 3 tokens
MAX_SEQ, ROOM, STRIDE = 16, 10, 4  # 16 - 3 question tokens - 3 special tokens = 10 context tokens


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory):
    """A WordPiece tokenizer in which ``w<i>`` is one token and ``abcd`` is ``ab ##cd``, so that
    token positions can be computed by hand."""
    folder = tmp_path_factory.mktemp("words-tokenizer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ab", "##cd", "##c", "##d", ".", "?"]
    vocab += [f"w{i}" for i in range(100)] + [f"q{i}" for i in range(10)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(
        '{"do_lower_case": false, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}',
        encoding="utf-8",
    )
    return AutoTokenizer.from_pretrained(folder)


def context_of(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def example(n: int, first: int | None = None, last: int | None = None, question: str = QUESTION) -> QAExample:
    """A context of ``n`` one-token words; the answer is words ``first..last``."""
    context = context_of(n)
    if first is None:
        return QAExample("x", question, context)
    start = len(context_of(first)) + (1 if first else 0)
    text = context[start : len(context_of(last + 1))]
    return QAExample("x", question, context, (Answer(text, start),))


def labels(features) -> list[tuple[int, int]]:
    return [(f["start_positions"], f["end_positions"]) for f in features]


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 14, 15, 37])
@pytest.mark.parametrize("doc_stride", [1, 4, 10])
def test_windows_are_the_tokenizers_own_overflow_windows(words, n: int, doc_stride: int) -> None:
    """doc_stride = step between window starts = room - Hugging Face's stride (tokens shared)."""
    features = encode([example(n)], words, MAX_SEQ, doc_stride, 3, labelled=False)
    reference = words(
        QUESTION,
        context_of(n) or " ",
        truncation="only_second",
        max_length=MAX_SEQ,
        stride=ROOM - doc_stride,
        return_overflowing_tokens=True,
        return_token_type_ids=True,
    )
    assert [f["input_ids"] for f in features] == reference["input_ids"]
    assert [f["token_type_ids"] for f in features] == reference["token_type_ids"]
    tokens = words(context_of(n), add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    starts = window_starts(len(tokens), ROOM, doc_stride)
    for feature, start in zip(features, starts, strict=True):
        assert [o for o in feature["offsets"] if o is not None] == tokens[start : start + ROOM]
    seen = {o for f in features for o in f["offsets"] if o is not None}
    assert seen == set(tokens)  # every context token is in some window
    assert all(f["example_index"] == 0 for f in features)


def test_answer_at_window_start_end_and_cut_between_windows(words) -> None:
    # windows hold context tokens [0,10) [4,14) [8,18) ...; context positions start at 1 + 3 + 1 = 5
    at_start = encode([example(30, 4, 4)], words, MAX_SEQ, STRIDE, 8)
    assert labels(at_start)[:3] == [(9, 9), (5, 5), (0, 0)]  # first token of window 1
    at_end = encode([example(30, 9, 9)], words, MAX_SEQ, STRIDE, 8)
    assert labels(at_end)[:3] == [(14, 14), (10, 10), (6, 6)]  # last context token of window 0
    assert at_end[0]["input_ids"][15] == words.sep_token_id
    split = encode([example(30, 8, 11)], words, MAX_SEQ, STRIDE, 8)
    # window 0 holds 8, 9 but not 10, 11: [CLS]; windows 1 and 2 hold all four; window 3 starts at 12
    assert labels(split) == [(0, 0), (9, 12), (5, 8), (0, 0), (0, 0), (0, 0)]
    one_past = encode([example(30, 9, 10)], words, MAX_SEQ, STRIDE, 8)  # ends one token past window 0
    assert labels(one_past)[:4] == [(0, 0), (10, 11), (6, 7), (0, 0)]


def test_answer_at_the_end_of_a_long_context(words) -> None:
    # 90 tokens: the last window starts at 80; only it holds tokens 88-89, at its last positions
    features = encode([example(90, 88, 89)], words, MAX_SEQ, STRIDE, 8)
    assert len(features) == 21
    assert labels(features)[-1] == (13, 14)
    assert features[-1]["input_ids"][15] == words.sep_token_id and len(features[-1]["input_ids"]) == 16
    assert sum(s > 0 for s, _ in labels(features)) == 1


@pytest.mark.parametrize(("first", "last"), [(0, 0), (3, 7), (12, 13), (29, 29)])
def test_labels_map_back_to_exactly_the_answer(words, first: int, last: int) -> None:
    item = example(30, first, last)
    features = encode([item], words, MAX_SEQ, STRIDE, 8)
    inside = [f for f in features if f["start_positions"] > 0]
    assert inside
    for feature in inside:
        start = feature["offsets"][feature["start_positions"]][0]
        end = feature["offsets"][feature["end_positions"]][1]
        assert item.context[start:end] == item.answers[0].text


def test_answer_boundary_inside_a_subtoken_widens_to_the_subtoken(words) -> None:
    context = "w1 abcd w2"  # tokens: w1 ab ##cd w2
    cases = {"abc": "abcd", "cd": "cd", "ab": "ab", "bcd": "abcd"}
    for text, expected in cases.items():
        item = QAExample("x", QUESTION, context, (Answer(text, context.index(text)),))
        [feature] = encode([item], words, MAX_SEQ, STRIDE, 8)
        start = feature["offsets"][feature["start_positions"]][0]
        end = feature["offsets"][feature["end_positions"]][1]
        assert context[start:end] == expected, text


def test_question_is_cut_by_tokens(words) -> None:
    question = "q0 abcd q1 q2 q3 q4"  # q0 ab ##cd q1 ...
    [feature] = encode([example(5, question=question)], words, MAX_SEQ, 2, 3, labelled=False)
    tokens = words.convert_ids_to_tokens(feature["input_ids"])
    assert tokens[:5] == ["[CLS]", "q0", "ab", "##cd", "[SEP]"]
    assert feature["token_type_ids"] == [0] * 5 + [1] * 6
    assert feature["offsets"][:5] == [None] * 5


def test_settings_that_cannot_work_are_refused(words) -> None:
    assert context_room(words, 16, 3, 4) == 10
    with pytest.raises(ValueError, match="no room for the context"):
        encode([example(5)], words, 6, 1, 3, labelled=False)
    with pytest.raises(ValueError, match="would be skipped"):
        encode([example(5)], words, 16, 11, 3, labelled=False)
    with pytest.raises(ValueError, match="must be ≥ 1"):
        context_room(words, 16, 3, 0)
    with pytest.raises(ValueError, match="model_max_length"):
        context_room(words, 1024, 3, 4)
    with pytest.raises(ValueError, match="no answer to label"):
        encode([example(5)], words, 16, 4, 3)


# ---- real data: the kcbert-base tokenizer on the KorQuAD 1.0 dev file (skips without it) ----


@pytest.fixture(scope="module")
def korquad(kcbert_dir: Path, shared_data: Path):
    path = shared_data / "korquad" / "KorQuAD_v1.0_dev.json"
    if not path.is_file():
        pytest.skip(f"KorQuAD 1.0 dev file not found at {path}")
    return AutoTokenizer.from_pretrained(kcbert_dir), read_squad(path)


def test_kcbert_windows_equal_the_tokenizers_pair_encoding(korquad) -> None:
    tokenizer, examples = korquad
    short = [e for e in examples if len(tokenizer.tokenize(e.question)) <= 32]
    longest = sorted(short, key=lambda e: len(e.context))[-5:]
    features = encode(longest, tokenizer, 128, 64, 32)
    for index, item in enumerate(longest):
        room = 128 - len(tokenizer.tokenize(item.question)) - 3
        reference = tokenizer(
            item.question,
            item.context,
            truncation="only_second",
            max_length=128,
            stride=room - 64,
            return_overflowing_tokens=True,
        )["input_ids"]
        assert [f["input_ids"] for f in features if f["example_index"] == index] == reference


def test_kcbert_gold_round_trip_on_korquad_dev(korquad) -> None:
    """Gold spans encoded, then decoded from one-hot logits: what the windows can represent.

    Measured (book settings 128/64/32): 4,507 of 5,774 answers (78.06%) come back exactly. kcbert's
    WordPiece joins a particle to the last syllable of a noun (임수경을 -> 임 ##수 ##경을), so 1,263
    answers end inside a sub-token and come back with the particle (임수경 -> 임수경을); 3 gold
    answers end with a space that no token covers; 1 answer is longer than 30 sub-tokens.
    """
    tokenizer, examples = korquad
    features = encode(examples, tokenizer, 128, 64, 32)
    starts, ends = [], []
    for feature in features:
        start, end = np.zeros(len(feature["input_ids"])), np.zeros(len(feature["input_ids"]))
        start[feature["start_positions"]] = end[feature["end_positions"]] = 10.0
        starts.append(start)
        ends.append(end)
    results = decode_examples(examples, features, starts, ends, n_best=20, max_answer_length=30)
    exact = widened = stripped = other = 0
    for result, item in zip(results, examples, strict=True):
        gold = item.answers[0]
        assert item.context[result["start"] : result["end"]] == result["answer"]
        if result["answer"] == gold.text:
            exact += 1
        elif result["answer"] == gold.text.strip():
            stripped += 1
        elif result["start"] <= gold.start and gold.end <= result["end"]:
            widened += 1
            # only the rest of the first/last sub-token is added
            assert (
                " " not in item.context[result["start"] : gold.start] + item.context[gold.end : result["end"]]
            )
        else:
            other += 1
    scores = korquad_scores(
        {e.id: r["answer"] for e, r in zip(examples, results, strict=True)},
        {e.id: [a.text for a in e.answers] for e in examples},
    )
    logger.info(
        "round trip: %d exact, %d widened, %d stripped, %d other; %s", exact, widened, stripped, other, scores
    )
    assert exact / len(examples) > 0.78
    assert widened / len(examples) < 0.22
    assert other <= 1  # the one answer longer than max_answer_length
    assert scores["exact_match"] > 78 and scores["f1"] > 97
