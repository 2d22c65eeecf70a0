"""NER corpus readers: four file formats in, one representation out.

Every reader returns ``NERExample``s: the original sentence plus character-level entity spans
(type, start, end). One encoder then serves every format, and predictions come back as character
offsets into the sentence whatever the training data looked like. Every problem in a file is
reported as ``DataError`` with the file and line, before any model is loaded.

Formats:
- ``book``: the book's corpus, ``plain sentence\u241eannotated sentence`` with ``<이순신:PER>`` tags.
- ``naver``: Naver NER 2018 (Korpora's ``naver_changwon_ner/train_data``): ``idx\\tword\\tTAG``
  lines, tags ``PER_B``/``PER_I``/``-``, words joined by one space.
- ``klue``: KLUE-NER: ``char\\tBIO-tag``, one character per line, ``##`` comment lines.
- ``conll``: ``token\\ttag`` (or whitespace-separated, tag last) BIO lines, tokens joined by a space.
Sentences are separated by blank lines in the last three.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from nlpbook.corpus import DataError, Row, read_text

__all__ = ["Entity", "NERExample", "Format", "FORMATS", "read_ner_file", "detect_format", "BOOK_SEPARATOR"]

logger = logging.getLogger(__name__)

Format = Literal["book", "naver", "klue", "conll"]
FORMATS: tuple[str, ...] = ("book", "naver", "klue", "conll")
BOOK_SEPARATOR = "\u241e"  # SYMBOL FOR RECORD SEPARATOR, between the plain and annotated sentence
BOOK_TAG = re.compile(r"<([^<>]+?):([A-Za-z]{2,4})>")
NAVER_TAG = re.compile(r"([A-Za-z]+)_([BI])")
BIO_TAG = re.compile(r"([BI])-(\S+)")


@dataclass(frozen=True)
class Entity:
    """A typed character span ``text[start:end]`` (end exclusive)."""

    type: str
    start: int
    end: int
    line: int | None = field(default=None, compare=False)  # where it was annotated


@dataclass(frozen=True)
class NERExample:
    text: str
    entities: tuple[Entity, ...] | None = None  # None: unlabelled (prediction input)
    row: Row | None = None  # file and first line of the sentence, for error messages


# --- tags -> spans ---------------------------------------------------------------------------
@dataclass
class _Unit:
    """One annotated unit (a word or a character) with its character span and parsed tag."""

    start: int
    end: int
    prefix: str  # "B", "I" or "O"
    type: str
    line: int


def _spans(units: Sequence[_Unit], path: Path, repair: bool, repaired: list[int]) -> tuple[Entity, ...]:
    """Entities from BIO-tagged units; an I- that opens no B- is an error unless ``repair``."""
    entities: list[Entity] = []
    open_: _Unit | None = None
    end = 0
    for previous, unit in zip([None, *units], units, strict=False):
        continues = unit.prefix == "I" and open_ is not None and open_.type == unit.type
        if unit.prefix == "I" and not continues:
            before = "the sentence start" if previous is None else _tag_name(previous)
            if not repair:
                raise DataError(
                    path,
                    unit.line,
                    f"tag {_tag_name(unit)} follows {before}: an entity must open with B-{unit.type} "
                    "(pass repair_tags=True to read such a tag as B-)",
                )
            repaired.append(unit.line)
        if open_ is not None and not continues:
            entities.append(Entity(open_.type, open_.start, end, open_.line))
            open_ = None
        if unit.prefix == "B" or (unit.prefix == "I" and not continues):
            open_ = unit
        end = unit.end
    if open_ is not None:
        entities.append(Entity(open_.type, open_.start, end, open_.line))
    return tuple(entities)


def _tag_name(unit: _Unit) -> str:
    return "O" if unit.prefix == "O" else f"{unit.prefix}-{unit.type}"


def _parse_bio(tag: str, path: Path, line: int) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    match = BIO_TAG.fullmatch(tag)
    if not match:
        hint = (
            " (a Naver-style tag: use ner_format='naver')" if NAVER_TAG.fullmatch(tag) or tag == "-" else ""
        )
        raise DataError(path, line, f"tag {tag!r} is not BIO (O, B-TYPE or I-TYPE){hint}")
    return match.group(1), match.group(2)


def _parse_naver(tag: str, path: Path, line: int) -> tuple[str, str]:
    if tag == "-":
        return "O", ""
    match = NAVER_TAG.fullmatch(tag)
    if not match:
        hint = " (a BIO tag: use ner_format='conll')" if tag == "O" or BIO_TAG.fullmatch(tag) else ""
        raise DataError(path, line, f"tag {tag!r} is not Naver's TYPE_B, TYPE_I or -{hint}")
    return match.group(2), match.group(1)


# --- the readers -----------------------------------------------------------------------------
def _blocks(path: Path, text: str) -> Iterator[list[tuple[int, str]]]:
    """Sentences as lists of (line number, line), split at blank lines; ``##`` comments dropped.

    Lines are not stripped: KLUE writes a space character as the line `` \\tO``.
    """
    block: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("##") or line.startswith("-DOCSTART-"):
            continue
        if not line.strip():
            if block:
                yield block
            block = []
            continue
        block.append((number, line))
    if block:
        yield block


def _example(path: Path, text: str, units: list[_Unit], repair: bool, repaired: list[int]) -> NERExample:
    first = units[0].line
    if not text.strip():
        raise DataError(path, first, "empty sentence: its tokens are all blank")
    row = Row(str(path), first, {"text": text})
    return NERExample(text, _spans(units, path, repair, repaired), row)


def _read_tagged(path: Path, text: str, fmt: Format, repair: bool, repaired: list[int]) -> list[NERExample]:
    """The three token-per-line formats: they differ in columns, tag scheme and how tokens join."""
    examples = []
    for block in _blocks(path, text):
        pieces: list[str] = []
        units: list[_Unit] = []
        offset = 0
        for number, line in block:
            columns = line.split("\t") if "\t" in line or fmt == "klue" else line.split()
            token, tag = _token_and_tag(path, number, columns, fmt)
            if fmt == "naver" and columns[0].strip() == "1" and units:  # a new sentence, no blank line
                examples.append(_example(path, " ".join(pieces), units, repair, repaired))
                pieces, units, offset = [], [], 0
            prefix, kind = (_parse_naver if fmt == "naver" else _parse_bio)(tag.strip(), path, number)
            if pieces and fmt != "klue":
                offset += 1  # the space that joins words
            units.append(_Unit(offset, offset + len(token), prefix, kind, number))
            pieces.append(token)
            offset += len(token)
        examples.append(_example(path, ("" if fmt == "klue" else " ").join(pieces), units, repair, repaired))
    return examples


def _token_and_tag(path: Path, line: int, columns: list[str], fmt: Format) -> tuple[str, str]:
    if fmt == "naver":
        if len(columns) != 3:
            raise DataError(
                path, line, f"expected 3 tab-separated columns (idx, word, tag), found {len(columns)}"
            )
        if not columns[0].strip().isdigit():
            raise DataError(path, line, f"first column {columns[0]!r} is not a word index")
        token, tag = columns[1].strip(), columns[2]
    elif fmt == "klue":
        if len(columns) != 2:
            raise DataError(path, line, f"expected 2 tab-separated columns (char, tag), found {len(columns)}")
        token, tag = columns
        if len(token) != 1:
            raise DataError(path, line, f"expected one character, found {token!r} (is this a CoNLL file?)")
    else:
        if len(columns) < 2:
            raise DataError(path, line, f"expected a token and a tag, found {len(columns)} column(s)")
        token, tag = columns[0].strip(), columns[-1]
    if not token:
        raise DataError(path, line, "empty token")
    return token, tag


def _read_book(path: Path, text: str) -> list[NERExample]:
    examples = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        parts = line.split(BOOK_SEPARATOR)
        if len(parts) != 2:
            raise DataError(
                path,
                number,
                f"expected 'plain sentence{BOOK_SEPARATOR}annotated sentence', "
                f"found {len(parts) - 1} separator(s) (U+241E)",
            )
        plain, annotated = parts[0].strip(), parts[1].strip()
        if not plain:
            raise DataError(path, number, "empty sentence")
        entities, pieces, offset, cursor = [], [], 0, 0
        for match in BOOK_TAG.finditer(annotated):
            pieces.append(annotated[cursor : match.start()])
            offset += match.start() - cursor
            surface, kind = match.group(1), match.group(2)
            if not surface.strip():
                raise DataError(path, number, f"empty entity {match.group(0)!r}")
            entities.append(Entity(kind, offset, offset + len(surface), number))
            pieces.append(surface)
            offset += len(surface)
            cursor = match.end()
        pieces.append(annotated[cursor:])
        stripped = "".join(pieces)
        if stripped != plain:
            at = next((i for i, (a, b) in enumerate(zip(plain, stripped, strict=False)) if a != b), None)
            at = min(len(plain), len(stripped)) if at is None else at
            raise DataError(
                path,
                number,
                f"the annotated sentence without its <entity:TYPE> tags differs from the "
                f"plain sentence at character {at}: {plain[at : at + 15]!r} vs {stripped[at : at + 15]!r} "
                "(a malformed tag?)",
            )
        examples.append(NERExample(plain, tuple(entities), Row(str(path), number, {"text": plain})))
    if not examples:
        raise DataError(path, None, "no sentences")
    return examples


def detect_format(path: Path, text: str) -> Format:
    """Guess the format of a user's file: the book's separator, ``##`` comments (KLUE), a numeric
    first column with Naver tags, else CoNLL. Pass ``ner_format`` explicitly to skip the guess."""
    if BOOK_SEPARATOR in text:
        return "book"
    lines = [line for line in text.split("\n") if line.strip() and not line.startswith("-DOCSTART-")]
    if not lines:
        raise DataError(path, None, "no sentences")
    if any(line.startswith("##") for line in lines):
        return "klue"
    first = lines[0].split("\t")
    if len(first) == 3 and first[0].strip().isdigit() and (first[2] == "-" or NAVER_TAG.fullmatch(first[2])):
        return "naver"
    if any(line.split("\t")[0].isspace() for line in lines if "\t" in line):
        return "klue"  # only KLUE writes a space character as a token
    return "conll"


def read_ner_file(
    path: str | Path, fmt: Format | Literal["auto"] = "auto", repair: bool = False
) -> list[NERExample]:
    """Every sentence of ``path`` with its entities; problems raise ``DataError`` with file:line."""
    path = Path(path).expanduser()
    text = read_text(path)
    if fmt == "auto":
        fmt = detect_format(path, text)
        logger.info("%s: read as the %r NER format", path, fmt)
    if fmt not in FORMATS:
        raise DataError(path, None, f"unknown NER format {fmt!r}; expected one of {FORMATS}")
    if fmt == "book":
        return _unify_type_case(path, _read_book(path, text))
    repaired: list[int] = []
    examples = _read_tagged(path, text, fmt, repair, repaired)
    if repaired:
        logger.warning(
            "%s: read %d I- tag(s) that opened no entity as B- (repair_tags), at line(s) %s",
            path,
            len(repaired),
            repaired[:10],
        )
    if not examples:
        raise DataError(path, None, "no sentences")
    return _unify_type_case(path, examples)


def _unify_type_case(path: Path, examples: list[NERExample]) -> list[NERExample]:
    """Entity types that differ only in case in one file (``per`` and ``PER``) are one type, not
    two classes: each is read as its most frequent spelling (upper case on a tie), with a warning."""
    spellings: dict[str, Counter[str]] = {}
    for entity in (e for example in examples for e in example.entities or ()):
        spellings.setdefault(entity.type.casefold(), Counter())[entity.type] += 1
    rename = {}
    for counts in spellings.values():
        if len(counts) > 1:
            winner = max(counts, key=lambda kind: (counts[kind], kind.isupper(), kind))
            others = [kind for kind in counts if kind != winner]
            rename.update(dict.fromkeys(others, winner))
            lines = {
                kind: [e.line for x in examples for e in x.entities or () if e.type == kind]
                for kind in others
            }
            logger.warning(
                "%s: entity types %s differ only in case; read as %r (other spellings at lines %s)",
                path,
                dict(counts.most_common()),
                winner,
                {kind: found[:10] for kind, found in lines.items()},
            )
    if not rename:
        return examples
    return [
        replace(x, entities=tuple(replace(e, type=rename.get(e.type, e.type)) for e in x.entities))
        if x.entities
        else x
        for x in examples
    ]
