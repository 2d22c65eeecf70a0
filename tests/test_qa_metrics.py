"""KorQuAD 1.0 exact match and character F1 on examples worked by hand."""

from __future__ import annotations

import pytest

from nlpbook.qa.metrics import exact_match, f1_score, korquad_scores, normalize_answer


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("《서울특별시》", "서울특별시"),  # listed brackets become spaces, then the ends are stripped
        ("서울(부산)", "서울 부산"),  # parentheses become spaces...
        ("서울,부산", "서울부산"),  # ...other ASCII punctuation is deleted outright
        ("  U.S.A.  Army ", "usa army"),  # lower-cased, whitespace runs collapsed
        ("‘이순신’ 장군", "이순신 장군"),
        ("「서울」·부산", "「서울」·부산"),  # not in either list: kept
        ("이순신은", "이순신은"),  # particles are kept
    ],
)
def test_normalize(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


def test_exact_match() -> None:
    assert exact_match("《서울》", ["서울"]) == 1.0
    assert exact_match("서울 특별시", ["서울특별시"]) == 0.0  # spaces count for EM...
    assert f1_score("서울 특별시", ["서울특별시"]) == 1.0  # ...but not for the character F1
    assert exact_match("이순신은", ["이순신"]) == 0.0
    assert exact_match("장군", ["이순신", "장군"]) == 1.0  # best over gold answers


def test_character_f1_worked_examples() -> None:
    # 이순신은 vs 이순신: 3 common of 4 predicted, 3 gold -> P 3/4, R 1 -> 2PR/(P+R) = 6/7
    assert f1_score("이순신은", ["이순신"]) == pytest.approx(6 / 7)
    # 1989년2월15일 (10 chars) vs 1989년2월 (7): common 1,9,8,9,년,2,월 = 7 -> P 7/10, R 1 -> 14/17
    assert f1_score("1989년 2월 15일", ["1989년 2월"]) == pytest.approx(14 / 17)
    # characters are a multiset: 하하하 vs 하 -> 1 common, P 1/3, R 1 -> 1/2
    assert f1_score("하하하", ["하"]) == pytest.approx(1 / 2)
    # best over golds: 장군 vs 이순신 장군 -> P 1, R 2/5 -> 4/7; vs 충무공 -> 0
    assert f1_score("장군", ["이순신 장군", "충무공"]) == pytest.approx(4 / 7)
    assert f1_score("장군", "이순신 장군") == pytest.approx(4 / 7)  # a bare string is one answer
    assert f1_score("(이순신)", ["이순신"]) == 1.0


def test_empty_prediction() -> None:
    assert exact_match("", ["서울"]) == 0.0 and f1_score("", ["서울"]) == 0.0
    # the official script's edge: both normalise to "" -> EM 1, but no common character -> F1 0
    assert exact_match("", ["..."]) == 1.0 and f1_score("", ["..."]) == 0.0
    with pytest.raises(ValueError, match="at least one gold"):
        f1_score("서울", [])


def test_corpus_scores_are_percentages_and_missing_predictions_score_zero() -> None:
    golds = {"q1": ["서울"], "q2": ["이순신"], "q3": ["부산"]}
    scores = korquad_scores({"q1": "서울", "q2": "이순신은", "extra": "무시"}, golds)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 6 / 7 + 0) / 3)
