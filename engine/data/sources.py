"""Reading an import file: CSV (a header row; ',' or ';' detected; UTF-8 with or without a BOM) or JSON Lines.

Rows come out as (line, values) in file order, with the problems of rows that cannot be read at all (not UTF-8,
bad JSON, a wrong number of values) in between, each at its line. Everything is bounded so that no file can
exhaust memory: the size of the file, of a line, of a value, the number of columns and of rows. A file can be
read twice (the importer checks it all before writing any of it).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from engine.data.problem import Problem, SourceError

Format = Literal["csv", "jsonl"]
MAX_FILE = 1 << 30  # bytes
MAX_LINE = 1 << 20  # bytes of one line
MAX_VALUE = 10_000  # characters of one value
MAX_COLUMNS = 200
MAX_ROWS = 2_000_000
_SUFFIXES: dict[str, Format] = {".csv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_BOM = "\ufeff"


@dataclass(slots=True)  # one a row: a frozen dataclass takes three times as long to make
class Row:
    line: int
    values: dict[str, Any]  # CSV: text, "" for an empty cell; JSON Lines: any JSON value


@dataclass
class Source:
    """One file; `rows()` may be called again for a second pass. `done` is the bytes read so far."""

    path: Path
    format: Format
    size: int
    header: list[str] | None = None  # CSV: the columns, once rows() has read the header row
    header_line: int = 1
    delimiter: str = ","
    done: int = field(default=0, init=False)
    _line: int = field(default=0, init=False)  # the number of the line read last

    def rows(self) -> Iterator[Row | Problem]:
        """Every row, or the problem that kept it from being read; SourceError when reading cannot go on."""
        self.done = 0
        with self.path.open("rb") as handle:
            if self.format == "csv":
                yield from self._csv(handle)
            else:
                yield from self._jsonl(handle)

    def _lines(self, handle: BinaryIO, problems: list[Problem]) -> Generator[str, None, None]:
        number = self._line = 0
        while raw := handle.readline(MAX_LINE + 1):
            number = self._line = number + 1
            self.done += len(raw)
            if len(raw) > MAX_LINE:
                message = f"line longer than {MAX_LINE:,} bytes: is this really a {self.kind}?"
                raise SourceError(Problem(number, message))
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append(
                    Problem(
                        number,
                        f"not UTF-8: byte 0x{raw[error.start]:02x} at position {error.start + 1}; "
                        "save the file as UTF-8 and import it again",
                    )
                )
                text = raw.decode("utf-8", "replace")
            if number == 1:
                text = text.removeprefix(_BOM)
            yield text

    def _text(self, handle: BinaryIO) -> Generator[str, None, None]:
        """The lines of a file `_clean` passed, decoded by the io module: a third quicker than line by line."""
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
        try:
            self._line = 0
            for line in text:  # counted until the header only: the csv reader counts the rest
                self._line += 1
                yield line
                if line.strip():  # the header
                    break
            for line in text:  # not `yield from`, which would close the file when the reader stops early
                yield line
            self.done = self.size
        finally:
            text.detach()  # the file is closed by its owner, rows()

    @property
    def kind(self) -> str:
        return "CSV file" if self.format == "csv" else "JSON Lines file"

    def _csv(self, handle: BinaryIO) -> Iterator[Row | Problem]:
        problems: list[Problem] = []
        fast = _clean(handle)
        handle.seek(0)
        lines: Generator[str, None, None] = self._text(handle) if fast else self._lines(handle, problems)
        try:
            yield from self._csv_rows(handle, lines, problems, fast)
        finally:
            lines.close()  # before rows() closes the file under it

    def _csv_rows(
        self, handle: BinaryIO, lines: Iterator[str], problems: list[Problem], fast: bool
    ) -> Iterator[Row | Problem]:
        first = next(lines, None)
        while first is not None and not first.strip():  # blank lines before the header
            first = next(lines, None)
        if first is None:
            raise SourceError(Problem(1, "the file is empty: expected a header row naming the columns, e.g. 'id,name'"))
        self.delimiter = _delimiter(first)
        self.header_line = self._line
        offset = self._line - 1  # the reader counts its lines from the header's
        reader = csv.reader(itertools.chain([first], lines), delimiter=self.delimiter, strict=True)
        try:
            header = next(reader)
        except csv.Error as error:
            raise SourceError(Problem(offset + 1, f"the header row is not valid CSV: {_csv_error(error)}")) from None
        yield from _drain(problems)
        if len(header) > MAX_COLUMNS:
            raise SourceError(Problem(offset + 1, f"{len(header)} columns: at most {MAX_COLUMNS}"))
        self.header = [name.strip() for name in header]
        width, other = len(self.header), ";" if self.delimiter == "," else ","
        rows, last = 0, offset + reader.line_num
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                yield from _drain(problems)
                yield Problem(last + 1, _csv_error(error))
                last = offset + reader.line_num
                continue
            start, last = last + 1, offset + reader.line_num
            if problems:
                yield from _drain(problems)
            if fast and not start % 4096:
                self.done = handle.tell()
            if not values or not "".join(values).strip():  # a blank line, or only delimiters
                continue
            rows += 1
            if rows > MAX_ROWS:
                raise SourceError(Problem(start, f"more than {MAX_ROWS:,} rows: split the file and import each part"))
            if len(values) != width:
                hint = ""
                if len(values) < width and any(other in value for value in values):
                    hint = f": is this line separated by '{other}' while the header uses '{self.delimiter}'?"
                found = f"{len(values)} value" + ("" if len(values) == 1 else "s")
                yield Problem(start, f"{found} where the header has {width} columns{hint}")
                continue
            row = Row(start, dict(zip(self.header, values, strict=True)))
            yield (_too_long(row) or row) if max(map(len, values)) > MAX_VALUE else row
        yield from _drain(problems)

    def _jsonl(self, handle: BinaryIO) -> Iterator[Row | Problem]:
        problems: list[Problem] = []
        rows = 0
        for number, text in enumerate(self._lines(handle, problems), start=1):
            if problems:
                yield from _drain(problems)
            if not text.strip():
                continue
            rows += 1
            if rows > MAX_ROWS:
                raise SourceError(Problem(number, f"more than {MAX_ROWS:,} rows: split the file and import each part"))
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield Problem(number, f"not valid JSON: {error.msg} (at character {error.colno})")
                continue
            except (ValueError, RecursionError) as error:  # a number of 5,000 digits, nesting 100,000 deep
                yield Problem(number, f"not valid JSON here: {str(error) or type(error).__name__}")
                continue
            if not isinstance(value, dict):
                kind = "a list" if isinstance(value, list) else f"{type(value).__name__}"
                yield Problem(number, f"expected a JSON object ({{...}}) on each line, found {kind}")
                continue
            if len(value) > MAX_COLUMNS:
                yield Problem(number, f"{len(value)} keys: at most {MAX_COLUMNS}")
                continue
            row = Row(number, value)
            yield _too_long(row) or row
        if rows == 0 and not problems:
            raise SourceError(Problem(1, "the file is empty: expected one JSON object per line"))
        yield from _drain(problems)


def open_source(path: Path) -> Source:
    """The file, its format by suffix (else by its first character); OSError when it cannot be opened."""
    size = os.stat(path).st_size
    if size > MAX_FILE:
        raise SourceError(Problem(None, f"{size:,} bytes: at most {MAX_FILE:,}; split the file and import each part"))
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        with path.open("rb") as handle:
            start = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        kind = "jsonl" if start.startswith(b"{") else "csv"
    return Source(path, kind, size)


def _delimiter(header: str) -> str:
    """',' or ';', whichever splits the header into more columns (a one-column file is ',')."""
    counts = {delimiter: len(next(csv.reader([header], delimiter=delimiter))) for delimiter in (",", ";")}
    return ";" if counts[";"] > counts[","] else ","


def _clean(handle: BinaryIO) -> bool:
    """Whether the whole file is UTF-8 with no line longer than MAX_LINE: then it is read the quick way, else
    line by line, so that each bad line is reported where it is and no line can exhaust memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    current = 0  # bytes of the line that runs on past the block read last
    while block := handle.read(1 << 20):
        try:
            decoder.decode(block)
        except UnicodeDecodeError:
            return False
        parts = block.split(b"\n")
        current += len(parts[0])
        if len(parts) > 1:
            if max(current, *map(len, parts[1:-1])) > MAX_LINE:
                return False
            current = len(parts[-1])
        if current > MAX_LINE:
            return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _too_long(row: Row) -> Problem | None:
    for name, value in row.values.items():
        if isinstance(value, str) and len(value) > MAX_VALUE:
            return Problem(row.line, f"{len(value):,} characters: at most {MAX_VALUE:,} in one value", name)
    return None


def _drain(problems: list[Problem]) -> Iterator[Problem]:
    while problems:
        yield problems.pop(0)


def _csv_error(error: csv.Error) -> str:
    text = str(error)
    if "field larger than field limit" in text:
        return f'a value longer than {csv.field_size_limit():,} characters, or a quote (") that is never closed'
    if "unexpected end of data" in text:
        return 'a quoted value is never closed: a value that contains a quote (") must double it ("")'
    return f"not valid CSV: {text}: a value that contains the delimiter or a quote must be quoted"
