"""Reading SQuAD-layout files (KorQuAD 1.0) into frozen examples, with errors that name the question.

The layout is ``data -> [article: title, paragraphs -> [context, qas -> [id, question,
answers -> [text, answer_start]]]]``. Every problem is a :class:`~nlpbook.corpus.DataError` that
names the file, the question id (the one thing a person can search the file for; KorQuAD's official
files are pretty-printed, so the line of that id is given too) and what is wrong: an
``answer_start`` that does not point at its ``text`` says what the context holds there, because a
shifted offset (a BOM, a CRLF, an edited context) is the usual cause and shows at a glance.

Only the KorQuAD dev file is available offline, so training and evaluation sets are both cut from
it at run time by article (``articles=slice(0, 100)`` and ``slice(100, None)``); its licence
(CC BY-ND) forbids writing a modified copy, so nothing here writes a file.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpbook.corpus import DataError, Row, read_text

__all__ = ["Answer", "QAExample", "read_squad", "parse_articles"]

logger = logging.getLogger(__name__)
_KINDS = {str: "a string", int: "an integer", list: "a list"}


@dataclass(frozen=True)
class Answer:
    """A gold answer: ``text`` found at character ``start`` of the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the last character: ``context[start:end] == text``."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class QAExample:
    """One question about one context. ``answers`` holds every gold answer (the first one is the
    training label; evaluation scores against all of them); it is empty for prediction input."""

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...] = ()
    title: str = ""
    row: Row | None = None  # the line of a table it was read from (prediction input files)


def parse_articles(spec: str) -> slice:
    """``"0:100"``, ``":100"``, ``"100:"`` or ``"-40:"`` as a slice of a file's articles (for
    command-line arguments); ``ValueError`` on anything else."""
    match = re.fullmatch(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*", spec)
    if match is None:
        raise ValueError(f"articles {spec!r}: expected START:END, e.g. '0:100' or '100:'")
    start, end = (int(group) if group is not None else None for group in match.groups())
    return slice(start, end)


def read_squad(
    path: str | Path, articles: slice | None = None, require_answers: bool = True
) -> list[QAExample]:
    """The questions of a SQuAD-layout file, in file order, optionally from ``articles`` only.

    ``require_answers``: every question must have at least one answer (training and evaluation);
    with ``False`` a question may have no ``answers`` key or an empty list. Question ids must be
    unique, since predictions and scores are keyed by them.
    """
    path = Path(path)
    text = read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(path, error.lineno, f"invalid JSON: {error.msg} (column {error.colno})") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list):
        raise DataError(path, None, 'expected a JSON object with a "data" list of articles (SQuAD layout)')
    chosen = range(len(data)) if articles is None else range(len(data))[articles]
    if not chosen:
        raise DataError(path, None, f"articles {_show(articles)} selects none of the {len(data)} articles")
    reader = _Reader(path, text, require_answers)
    examples: list[QAExample] = []
    for index in chosen:
        examples.extend(reader.article(data[index], index))
    if not examples:
        raise DataError(path, None, f"no questions in articles {_show(articles)}")
    logger.info("%s: %d questions from %d of %d articles", path, len(examples), len(chosen), len(data))
    return examples


def _show(articles: slice | None) -> str:
    if articles is None:
        return "(all)"
    start = "" if articles.start is None else articles.start
    end = "" if articles.stop is None else articles.stop
    return f"{start}:{end}" + (f":{articles.step}" if articles.step not in (None, 1) else "")


class _Reader:
    """Walks the articles, keeping what an error message needs (file text for line numbers)."""

    def __init__(self, path: Path, text: str, require_answers: bool) -> None:
        self.path = path
        self.text = text
        self.require_answers = require_answers
        self.seen: set[str] = set()

    def error(self, where: str, qid: str | None, message: str) -> DataError:
        if qid is None:
            return DataError(self.path, None, f"{where}: {message}")
        return DataError(self.path, self.line_of(qid), f"question {qid!r} ({where}): {message}")

    def line_of(self, qid: str) -> int | None:
        """Line of ``"id": "<qid>"`` in the file (found only when an error is reported)."""
        for quoted in {json.dumps(qid, ensure_ascii=False), json.dumps(qid)}:
            match = re.search(r'"id"\s*:\s*' + re.escape(quoted), self.text)
            if match:
                return self.text.count("\n", 0, match.start()) + 1
        return None

    def field(self, item: Any, key: str, kind: type, where: str, qid: str | None = None) -> Any:
        if not isinstance(item, dict):
            raise self.error(where, qid, f"expected a JSON object, found {type(item).__name__}")
        if key not in item:
            raise self.error(where, qid, f"missing key {key!r} (found {sorted(item)})")
        value = item[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(where, qid, f"{key!r} must be {_KINDS[kind]}, found {value!r}")
        return value

    def article(self, article: Any, a: int) -> list[QAExample]:
        where = f"data[{a}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        if not isinstance(title, str):
            raise self.error(where, None, f"'title' must be a string, found {title!r}")
        examples = []
        for p, paragraph in enumerate(self.field(article, "paragraphs", list, where)):
            here = f"{where}.paragraphs[{p}]"
            qas = self.field(paragraph, "qas", list, here)
            first = _first_id(qas)
            context = self.field(paragraph, "context", str, here, first)
            if not context.strip():
                raise self.error(here, first, "context is empty")
            for q, qa in enumerate(qas):
                examples.append(self.question(qa, f"{here}.qas[{q}]", context, title))
        return examples

    def question(self, qa: Any, where: str, context: str, title: str) -> QAExample:
        qid = self.field(qa, "id", str, where)
        if not qid.strip():
            raise self.error(where, None, "question id is empty")
        if qid in self.seen:
            raise self.error(where, qid, "duplicate question id (predictions are keyed by id)")
        self.seen.add(qid)
        question = self.field(qa, "question", str, where, qid)
        if not question.strip():
            raise self.error(where, qid, "question is empty")
        if "answers" in qa or self.require_answers:
            answers = self.field(qa, "answers", list, where, qid)
        else:
            answers = []
        if self.require_answers and not answers:
            raise self.error(where, qid, "no answers; training and evaluation need at least one")
        gold = tuple(
            self.answer(item, f"{where}.answers[{n}]", qid, context) for n, item in enumerate(answers)
        )
        return QAExample(qid, question, context, gold, title)

    def answer(self, item: Any, where: str, qid: str, context: str) -> Answer:
        text = self.field(item, "text", str, where, qid)
        start = self.field(item, "answer_start", int, where, qid)
        if not text.strip():
            raise self.error(where, qid, "answer text is empty")
        if not 0 <= start < len(context):
            raise self.error(
                where, qid, f"answer_start {start} is outside the context ({len(context)} characters)"
            )
        held = context[start : start + len(text)]
        if held != text:
            found = context.find(text)
            hint = f"the text first occurs at {found}" if found >= 0 else "the text is not in the context"
            raise self.error(
                where,
                qid,
                f"answer {text!r} does not match the context at answer_start {start}, "
                f"which holds {held!r} there; {hint}",
            )
        return Answer(text, start)


def _first_id(qas: list[Any]) -> str | None:
    """The first question id of a paragraph, to name a paragraph-level problem by a searchable id."""
    for qa in qas:
        if isinstance(qa, dict) and isinstance(qa.get("id"), str):
            return qa["id"]
    return None
