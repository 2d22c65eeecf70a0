"""JSON tables for ``corpus.read_table``: a JSON list of objects (KLUE's layout) or JSON lines.

Each record keeps the line it starts on, so errors name file and line as for TSV and CSV. A value
that is not a string is kept as its ``str()`` with its JSON type noted (``Row.json_types``): usable
as a label, refused as text (``corpus.text_value``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlpbook.corpus import DataError, Row

__all__ = ["read_json_rows"]


def read_json_rows(path: Path, text: str, columns: Sequence[str]) -> list[Row]:
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON list of objects (KLUE's layout)
        try:
            records = _json_list_records(text)
        except json.JSONDecodeError as error:
            raise DataError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    else:
        records = []
        for line, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                records.append((line, json.loads(raw)))
            except json.JSONDecodeError as error:
                raise DataError(path, line, f"invalid JSON line: {error.msg}") from None
    rows = []
    for index, (line, item) in enumerate(records):
        where = line if line is not None else None
        if not isinstance(item, dict):
            raise DataError(path, where, f"expected a JSON object, found {type(item).__name__}")
        missing = [name for name in columns if name not in item]
        if missing:
            label = f"line {line}" if line else f"record {index}"
            raise DataError(path, where, f"{label} is missing key(s) {missing}; found {sorted(item)}")
        values = {k: "" if v is None else str(v) for k, v in item.items()}
        kinds = {k: _json_type(v) for k, v in item.items() if v is not None and not isinstance(v, str)}
        rows.append(Row(str(path), line if line is not None else index + 1, values, kinds))
    if not rows:
        raise DataError(path, None, "no records")
    return rows


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "array" if isinstance(value, list) else "object"


def _json_list_records(text: str) -> list[tuple[int, Any]]:
    """The items of a JSON list, each with the line its value starts on (for error messages)."""
    decoder = json.JSONDecoder()
    space = re.compile(r"\s*")
    records: list[tuple[int, Any]] = []
    position = space.match(text, text.index("[") + 1).end()
    line, counted = 1, 0
    if text.startswith("]", position):
        return records
    while True:
        item, end = decoder.raw_decode(text, position)  # raises JSONDecodeError with lineno
        line += text.count("\n", counted, position)
        counted = position
        records.append((line, item))
        position = space.match(text, end).end()
        if text.startswith(",", position):
            position = space.match(text, position + 1).end()
        elif text.startswith("]", position) and not text[position + 1 :].strip():
            return records
        else:
            raise json.JSONDecodeError("expected ',' or a final ']'", text, position)
