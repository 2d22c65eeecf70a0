"""SQuAD-layout reader: examples, errors that name the file and question id, article slices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nlpbook.corpus import DataError
from nlpbook.qa.squad import Answer, QAExample, parse_articles, read_squad

CONTEXT = "이순신은 1545년 한성 건천동에서 태어났다."


def qa(qid: str, question: str = "이순신은 어디에서 태어났나?", answers: Any = None) -> dict:
    return {
        "id": qid,
        "question": question,
        "answers": [{"text": "한성", "answer_start": 11}] if answers is None else answers,
    }


def squad(articles: list[list[dict]], context: str = CONTEXT) -> dict:
    """One paragraph with ``context`` per article, holding the given questions."""
    return {
        "version": "test",
        "data": [
            {"title": f"article {a}", "paragraphs": [{"context": context, "qas": questions}]}
            for a, questions in enumerate(articles)
        ],
    }


def write(tmp_path: Path, document: Any, name: str = "dev.json") -> Path:
    path = tmp_path / name
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False, indent=2)
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path, **kwargs: Any) -> DataError:
    with pytest.raises(DataError) as caught:
        read_squad(path, **kwargs)
    return caught.value


def test_reads_examples_in_file_order(tmp_path: Path) -> None:
    two = [{"text": "한성", "answer_start": 11}, {"text": "한성 건천동", "answer_start": 11}]
    path = write(
        tmp_path,
        squad(
            [
                [qa("a-1"), qa("a-2", "언제?", [{"text": "1545년", "answer_start": 5}])],
                [qa("b-1", answers=two)],
            ]
        ),
    )
    examples = read_squad(path)
    assert [e.id for e in examples] == ["a-1", "a-2", "b-1"]
    assert examples[0] == QAExample(
        "a-1", "이순신은 어디에서 태어났나?", CONTEXT, (Answer("한성", 11),), "article 0"
    )
    assert [a.text for a in examples[2].answers] == ["한성", "한성 건천동"]
    assert all(CONTEXT[a.start : a.end] == a.text for e in examples for a in e.answers)


def test_bad_answer_start_names_file_line_id_and_what_is_there(tmp_path: Path) -> None:
    path = write(tmp_path, squad([[qa("a-1"), qa("a-2", answers=[{"text": "한성", "answer_start": 12}])]]))
    caught = error(path)
    assert caught.path == str(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert caught.line is not None and '"id": "a-2"' in lines[caught.line - 1]
    message = str(caught)
    assert f"{path}:{caught.line}:" in message and "'a-2'" in message
    assert "holds '성 ' there" in message and "first occurs at 11" in message


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ({"id": "a-1", "answers": []}, "'a-1'.*missing key 'question'"),
        ({"question": "어디?", "answers": []}, r"data\[0\].paragraphs\[0\].qas\[0\]: missing key 'id'"),
        (qa("a-1", "   "), "'a-1'.*question is empty"),
        (qa("a-1", answers=[]), "'a-1'.*no answers"),
        (qa("a-1", answers=[{"text": " ", "answer_start": 0}]), "'a-1'.*answer text is empty"),
        (qa("a-1", answers=[{"text": "한성", "answer_start": 99}]), "'a-1'.*outside the context"),
        (
            qa("a-1", answers=[{"text": "한성", "answer_start": "11"}]),
            "'a-1'.*'answer_start' must be an integer",
        ),
        (qa("a-1", answers=[{"text": "부산", "answer_start": 11}]), "'a-1'.*is not in the context"),
    ],
)
def test_question_problems_name_the_question(tmp_path: Path, question: dict, expected: str) -> None:
    with pytest.raises(DataError, match=expected):
        read_squad(write(tmp_path, squad([[question]])))


def test_file_level_problems(tmp_path: Path) -> None:
    caught = error(write(tmp_path, '{\n  "data": [\n    {"title": "x",}\n  ]\n}'))
    assert caught.line == 3 and "invalid JSON" in str(caught)
    assert "SQuAD layout" in str(error(write(tmp_path, "[1, 2]")))
    assert "context is empty" in str(error(write(tmp_path, squad([[qa("a-1")]], context=" "))))
    assert "'a-1'" in str(error(write(tmp_path, squad([[qa("a-1")]], context=" "))))
    assert "duplicate question id" in str(error(write(tmp_path, squad([[qa("a-1")], [qa("a-1")]]))))
    (tmp_path / "latin1.json").write_bytes(
        json.dumps(squad([[qa("a-1")]])).encode("utf-8").replace(b"test", b"t\xe9st")
    )
    assert "not valid UTF-8" in str(error(tmp_path / "latin1.json"))


def test_questions_without_answers_when_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, squad([[qa("a-1", answers=[]), {"id": "a-2", "question": "언제?"}]]))
    assert [e.answers for e in read_squad(path, require_answers=False)] == [(), ()]


def test_article_slices(tmp_path: Path) -> None:
    path = write(tmp_path, squad([[qa(f"{a}-1"), qa(f"{a}-2")] for a in range(5)]))
    assert [e.id for e in read_squad(path, articles=slice(0, 2))] == ["0-1", "0-2", "1-1", "1-2"]
    assert [e.id for e in read_squad(path, articles=parse_articles("-1:"))] == ["4-1", "4-2"]
    assert read_squad(path, articles=slice(3, None))[0].title == "article 3"
    assert "selects none of the 5 articles" in str(error(path, articles=slice(7, 9)))
    assert parse_articles(" 0 : 100 ") == slice(0, 100) and parse_articles(":") == slice(None, None)
    with pytest.raises(ValueError, match="START:END"):
        parse_articles("0-100")


def test_korquad_dev_splits_by_article(shared_data: Path) -> None:
    path = shared_data / "korquad" / "KorQuAD_v1.0_dev.json"
    if not path.is_file():
        pytest.skip(f"KorQuAD 1.0 dev file not found at {path}")
    train, evaluation = read_squad(path, slice(0, 100)), read_squad(path, slice(100, None))
    assert (len(train), len(evaluation)) == (4055, 1719)
    assert {e.title for e in train}.isdisjoint({e.title for e in evaluation})
    assert all(e.context[a.start : a.end] == a.text for e in train + evaluation for a in e.answers)
