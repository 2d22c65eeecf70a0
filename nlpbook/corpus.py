"""Reading data files with errors that point at the file and line.

Every reader in nlpbook goes through here, so that a bad file is reported the same way for every
task and before training starts: ``DataError("ratings_train.txt:12: expected 3 tab-separated
columns (id, document, label), found 2")``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlpbook.errors import spell

__all__ = [
    "DataError",
    "Row",
    "read_text",
    "read_table",
    "read_text_rows",
    "nonempty",
    "text_value",
    "require_files",
    "check_labels",
    "korpora_fetch",
]

logger = logging.getLogger(__name__)
OFFLINE_SECTION = "README: 'Offline: a local model folder and a local corpus'"
TABLE_SUFFIXES = (".tsv", ".csv", ".jsonl", ".json")


class DataError(ValueError):
    """A data file that cannot be used, with the file and (when known) the line at fault."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Row:
    """One record of a table, with where it came from (for error messages)."""

    path: str
    line: int
    values: dict[str, str]
    # JSON rows: the JSON type of each value that was not a string or null ("number", "array",
    # ...); ``values`` holds its str(), usable as a label but never read as text (``text_value``).
    json_types: Mapping[str, str] = field(default_factory=dict)

    def error(self, message: str) -> DataError:
        return DataError(self.path, self.line, message)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 file (BOM and CRLF accepted); other encodings get an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "file not found" if not path.exists() else "not a regular file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            path, line, f"not valid UTF-8 (byte 0x{data[error.start]:02x}); re-save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataError(path, None, "file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_table(path: str | Path, columns: Sequence[str]) -> list[Row]:
    """Rows of a .tsv/.txt (tab-separated), .csv or .jsonl/.json file that has ``columns``.

    Tab-separated files are read without quote handling, as NSMC and KorNLI are written: a
    double quote inside a review is text, not a field delimiter.
    """
    path = Path(path)
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        from nlpbook.json_rows import read_json_rows  # imported here: it builds this module's Rows

        return read_json_rows(path, text, columns)
    if suffix == ".csv":
        records = _csv_records(path, text)
    else:
        records = ((n, line.split("\t")) for n, line in enumerate(text.split("\n"), start=1))
    return _rows_from_records(path, records, columns, "comma" if suffix == ".csv" else "tab")


def text_value(row: Row, column: str) -> str:
    """The text in ``column``; a JSON value that is not a string (a list, a number) is an error,
    not its ``str()``: ``["좋다", "싫다"]`` read as the text "['좋다', '싫다']" teaches nonsense."""
    kind = row.json_types.get(column)
    if kind is not None:
        preview = row.values[column][:40]
        raise row.error(f"key {column!r} holds a JSON {kind} ({preview}), not text; expected a string")
    return row.values[column]


def nonempty(row: Row, column: str) -> str:
    """The text in ``column`` (see ``text_value``); blank or whitespace-only text is an error."""
    text = text_value(row, column)
    if not text.strip():
        raise row.error(f"column {column!r} is empty; expected text")
    return text


def read_text_rows(path: str | Path, column: str = "text", aliases: Sequence[str] = ()) -> list[Row]:
    """Texts to predict: a table whose header names ``column`` (or one of ``aliases``, e.g. NSMC's
    ``document``), or any other file with one text a line. Each row's text is under ``column``.

    A .txt file that is a tab-separated table with a header (NSMC's own ``ratings_test.txt``) is
    read as one: line by line, its header and id/label columns would be classified as text. Blank
    lines of a plain text file are skipped and said so (each row keeps its line number, so outputs
    still map back to the input); an empty text in a table is an error.
    """
    path = Path(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return _text_column(path, read_table(path, []), column, aliases)
    lines = read_text(path).split("\n")
    lines = lines[:-1] if lines[-1] == "" else lines
    if _looks_like_a_table(lines):
        return _text_column(path, read_table(path, []), column, aliases)
    rows = [Row(str(path), n, {column: text}) for n, text in enumerate(lines, start=1) if text.strip()]
    blank = [n for n, text in enumerate(lines, start=1) if not text.strip()]
    if blank:
        logger.warning("%s: skipped %d blank line(s) at line(s) %s", path, len(blank), blank[:10])
    return rows


def _looks_like_a_table(lines: Sequence[str], sample: int = 50) -> bool:
    """Tab-separated with a header: the first lines all have the same number (2 or more) of fields."""
    first = [line for line in lines[: sample * 2] if line.strip()][:sample]
    counts = {line.count("\t") for line in first}
    return len(first) >= 2 and len(counts) == 1 and counts.pop() >= 1


def _text_column(path: Path, rows: list[Row], column: str, aliases: Sequence[str]) -> list[Row]:
    """The rows with their text under ``column``, taken from the first of ``column``/``aliases``
    the table has; a table with none of them is refused, naming what it has."""
    header = list(rows[0].values)
    found = next((name for name in (column, *aliases) if name in header), None)
    if found is None:
        names = " or ".join(repr(name) for name in (column, *aliases))
        raise DataError(
            path,
            None,
            f"a table with columns {header} and no text column {names}: rename the column that holds "
            "the texts, or give a file with one text a line",
        )
    texts = []
    for row in rows:
        if found not in row.values:
            raise row.error(f"missing key {found!r}; found {sorted(row.values)}")
        nonempty(row, found)
        if found != column:
            kinds = dict(row.json_types)
            if found in kinds:
                kinds[column] = kinds[found]
            row = Row(row.path, row.line, {**row.values, column: row.values[found]}, kinds)
        texts.append(row)
    return texts


def _csv_records(path: Path, text: str) -> Iterable[tuple[int, list[str]]]:
    """CSV records with the line each starts on. Quoting is strict: a quote left open, or text after
    a closing quote, is an error at the record's first line (Python's lenient reader runs such a
    field on into the following rows: 20 lines once became 14 examples). A closed quoted field may
    hold line breaks (legal CSV); those records are read and listed in a warning."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line, spanning = 1, []
    while True:
        try:
            record = next(reader, None)
        except csv.Error as error:  # the two errors strict adds (messages checked on Python 3.11)
            end = "the end of the file" if "end of data" in str(error) else f"line {reader.line_num}"
            reason = (
                f"a quoted field opens in this record and runs on to {end}"
                if reader.line_num > line or "end of data" in str(error)
                else "text follows the closing quote of a quoted field"
            )
            raise DataError(
                path, line, f'{reason}: an unbalanced quote? Quote a whole field, a quote inside as ""'
            ) from None
        if record is None:
            break
        if reader.line_num > line:
            spanning.append(f"{line}-{reader.line_num}")
        yield line, record
        line = reader.line_num + 1
    if spanning:
        logger.warning("%s: quoted line breaks: read as one row each, at lines %s", path, spanning[:10])


def _rows_from_records(
    path: Path, records: Iterable[tuple[int, list[str]]], columns: Sequence[str], separator: str
) -> list[Row]:
    header: list[str] | None = None
    rows: list[Row] = []
    for line, record in records:
        if not any(field.strip() for field in record):
            continue  # blank lines (e.g. the trailing newline) carry no example
        if header is None:
            header = [name.strip() for name in record]
            missing = [name for name in columns if name not in header]
            if missing:
                raise DataError(
                    path,
                    line,
                    f"header is missing column(s) {missing}; expected {separator}-separated columns "
                    f"including {list(columns)}, found {header}",
                )
            continue
        if [value.strip() for value in record] == header:
            raise DataError(
                path, line, f"the header line appears again at line {line}: two files concatenated?"
            )
        if len(record) != len(header):
            raise DataError(
                path,
                line,
                f"expected {len(header)} {separator}-separated columns ({', '.join(header)}), "
                f"found {len(record)}",
            )
        rows.append(Row(str(path), line, dict(zip(header, record, strict=True))))
    if not rows:
        raise DataError(path, None, "no data rows after the header")
    return rows


def require_files(
    paths: Sequence[Path], download: Callable[[], None] | None, corpus: str, force: bool = False
) -> None:
    """Make sure ``paths`` exist, calling ``download`` only when one is missing (or ``force``).

    Files are never deleted before a forced download: it overwrites them, and when it fails
    (offline) the copies already there stay usable.
    """
    missing = [p for p in paths if not p.is_file()]
    if not missing and not force:
        return
    if download is None:
        if missing:
            raise DataError(missing[0], None, f"file not found (corpus {corpus!r} cannot be downloaded)")
        logger.warning("force_download: corpus %r cannot be downloaded; using the files in place", corpus)
        return
    if missing:
        logger.info("%s: %s missing, downloading", corpus, ", ".join(str(p) for p in missing))
        folder = missing[0].parent
        what = "file not found and the"
        advice = (
            f"Copy the corpus's files ({', '.join(p.name for p in paths)}) into {folder}, or point "
            f"{spell('downstream_corpus_root_dir')} at a folder that has them in {folder.name}/ "
            f"({OFFLINE_SECTION})."
        )
    else:
        logger.info("%s: force_download, downloading again", corpus)
        what = "force_download: the"
        advice = f"The files in place are kept: run without {spell('force_download', True)}."
    try:
        download()
    except Exception as error:  # network errors come in many types; all mean the same here
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise DataError(
            (missing or paths)[0],
            None,
            f"{what} download of {corpus!r} failed ({type(error).__name__}: {reason}). Offline? {advice}",
        ) from error
    still = [p for p in paths if not p.is_file()]
    if still:
        raise DataError(still[0], None, f"file not found after downloading {corpus!r}")


def korpora_fetch(corpus: str, root: Path) -> None:
    """Download a corpus through Korpora (overwriting); call only when files are missing or forced:
    Korpora goes online before it reads local files."""
    from Korpora import Korpora

    Korpora.fetch(corpus, root_dir=str(root), force_download=True)


def check_labels(rows: Iterable[tuple[Row, str]], known: Sequence[str]) -> None:
    """Fail on the first label the model cannot predict (evaluation data with an unseen class)."""
    allowed = set(known)
    for row, label in rows:
        if label not in allowed:
            raise row.error(f"label {label!r} is not one of the model's labels {sorted(allowed)}")
