"""Importing files and upserting batches: what `journey import` and the HTTP upsert API call.

A run checks everything before it writes anything. Every row of every file is read and validated; the records
are checked against each other and the database, and compared with the rows that exist (a dry run of the
upsert: created, updated or unchanged, which also shows a new record that lacks a name or a person moving
account). Only then, when nothing is wrong or `skip_invalid` lets the bad rows be left out, are the created and
updated records written, in chunks, each chunk reading its rows again inside its transaction; the unchanged
ones are not touched again, which makes a re-import of unchanged files a single read of the database. (A row
someone else changes between the comparison and the write keeps that change: the import's "unchanged" came
first.)

Up to KEEP records of a run are kept in memory between the passes (about 1 KB each); past that the files are
read again, so memory stays bounded whatever their size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from engine.data.changes import Changes
from engine.data.checks import Checker
from engine.data.fields import KEY, Kind
from engine.data.problem import Problem, SourceError
from engine.data.sources import Source, open_source
from engine.data.upsert import CHUNK, Outcome, upsert
from engine.data.validate import Columns, Options, Record, check_renames, plan_columns, record

TRANSACTION = 20 * CHUNK  # records per commit: short write locks on SQLite, few commits
KEEP = 1_000_000  # records of a run kept in memory between the check and the write
Progress = Callable[[str, int, int], None]  # (what is being done, done, in all)


@dataclass(frozen=True)
class ImportFile:
    kind: Kind
    path: Path
    options: Options = field(default_factory=Options)
    shown: str = ""  # the file's name in messages (default: the path as given)

    @property
    def name(self) -> str:
        return self.shown or str(self.path)


@dataclass
class FileReport:
    file: ImportFile
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # worth saying, not wrong
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0  # rows left out for their problems (skip_invalid)
    fatal: bool = False  # the file cannot be read or understood as a whole: none of it is written
    valid_keys: set[str] = field(default_factory=set)  # of the records without problems
    bad: set[int | None] = field(default_factory=set)  # lines with a problem
    settled: set[int | None] = field(default_factory=set)  # lines of unchanged records: nothing to write
    new: set[int | None] = field(default_factory=set)  # lines of records the comparison found no row for
    kept: list[Record] | None = None  # the records, when they fit in memory

    def count(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:
            setattr(self, outcome.verdict, getattr(self, outcome.verdict) + 1)

    def lines(self) -> list[str]:
        """Every problem as `FILE:LINE: column 'x': message`, in file order."""
        ordered = sorted(self.problems, key=lambda problem: problem.line or 0)
        return [problem.render(self.file.name) for problem in ordered]


@dataclass
class ImportReport:
    files: list[FileReport]
    written: bool  # False: nothing was written (problems, or a dry run)

    @property
    def problems(self) -> int:
        return sum(len(report.problems) for report in self.files)


class WriteRefusedError(Exception):
    """The database refused a write that the checks had passed (a concurrent writer): the run stopped there."""


def import_files(
    engine: Engine,
    files: Sequence[ImportFile],
    *,
    skip_invalid: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Check the files together, in order (accounts first: people may name accounts of the same run), then
    write them, unless a problem was found (`skip_invalid` writes the good rows) or it is a dry run (the counts
    then say what would happen). OSError when a file cannot be opened."""
    reports = [FileReport(file) for file in files]
    run_accounts: set[str] = set()
    room = KEEP
    for report in reports:
        _check_file(engine, report, frozenset(run_accounts), progress, room)
        room -= len(report.kept) if report.kept is not None else room
        if report.file.kind == "accounts":
            run_accounts |= report.valid_keys
    if dry_run or (any(report.problems for report in reports) and not skip_invalid):
        return ImportReport(reports, written=False)
    for report in reports:
        if not report.fatal:
            _write_file(engine, report, progress)
    return ImportReport(reports, written=True)


def _check_file(
    engine: Engine, report: FileReport, run_accounts: frozenset[str], progress: Progress | None, room: int
) -> None:
    """Every problem of the file into the report, and what its good records would do (the counts of a dry run)."""
    file = report.file
    checker = Checker(file.kind, run_accounts)
    kept: list[Record] | None = []
    try:
        for item in _records(open_source(file.path), file, report, progress, f"checking {file.name}"):
            if isinstance(item, Problem):
                _problem(report, item)
            elif problems := checker.add(item):
                report.problems += problems
                report.bad.add(item.line)
            elif kept is not None:
                kept.append(item)
                if len(kept) > room:
                    kept = None  # read again for each pass
    except SourceError as error:
        report.problems.append(error.problem)
        report.fatal = True
    if report.fatal:
        return
    report.kept = kept
    with engine.connect() as connection:
        for problem in checker.references(connection):
            _problem(report, problem)
        for chunk in _chunks(_good(report), CHUNK):
            _compare(connection, checker, report, chunk)
    report.skipped = len({line for line in report.bad if line is not None})


def _problem(report: FileReport, problem: Problem) -> None:
    report.problems.append(problem)
    report.bad.add(problem.line)


def _compare(connection: Connection, checker: Checker, report: FileReport, chunk: list[Record]) -> None:
    sets = {"unchanged": report.settled, "created": report.new, "updated": None}
    counts = dict.fromkeys(sets, 0)
    for each, outcome in zip(chunk, upsert(connection, report.file.kind, chunk, write=False), strict=True):
        if (outcome.verdict == "created" or outcome.changes) and (problems := checker.judge(each, outcome)):
            report.problems += problems
            report.bad.add(each.line)
            continue
        counts[outcome.verdict] += 1
        lines = sets[outcome.verdict]
        if lines is not None:
            lines.add(each.line)
        if each.key is not None:
            report.valid_keys.add(each.key)
    report.created += counts["created"]
    report.updated += counts["updated"]
    report.unchanged += counts["unchanged"]


def _good(report: FileReport) -> Iterator[Record]:
    """The records without problems, from memory or read again."""
    if report.kept is not None:
        records: Iterable[Record | Problem] = report.kept
    else:
        records = _records(open_source(report.file.path), report.file, None, None, "")
    for item in records:
        if isinstance(item, Record) and item.line not in report.bad:
            yield item


def _write_file(engine: Engine, report: FileReport, progress: Progress | None) -> None:
    """The created and updated records, in transactions of TRANSACTION records; the counts are what happened."""
    total = report.created + report.updated
    report.created = report.updated = 0
    done = 0
    pending = (each for each in _good(report) if each.line not in report.settled)
    for batch in _chunks(pending, TRANSACTION):
        report.count(_write(engine, report.file.kind, batch, report.new))
        done += len(batch)
        if progress is not None:
            progress(f"importing {report.file.name}", done, total)
    report.kept = None


def _write(engine: Engine, kind: Kind, records: Sequence[Record], new: set[int | None] | None = None) -> list[Outcome]:
    """One transaction; the records on the `new` lines are inserted without reading for them again (a first
    import reads nothing twice). Run again, reading everything, when a concurrent writer created one of the
    rows meanwhile; WriteRefusedError when that fails too."""
    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                outcomes: dict[int, Outcome] = {}
                fresh = [i for i, each in enumerate(records) if new is not None and each.line in new]
                if attempt == 2:
                    fresh = []
                known = sorted(set(range(len(records))) - set(fresh))
                for indexes, absent in ((fresh, True), (known, False)):
                    for start in range(0, len(indexes), CHUNK):
                        part = indexes[start : start + CHUNK]
                        found = upsert(connection, kind, [records[i] for i in part], absent=absent)
                        outcomes.update(zip(part, found, strict=True))
                return [outcomes[i] for i in range(len(records))]
        except IntegrityError as error:
            if attempt == 2:
                where = f"line {records[0].line}" if records[0].line is not None else "the first item"
                raise WriteRefusedError(
                    f"the database refused the rows from {where} on: {error.orig}; the rows before were "
                    "written: run the import again (it is idempotent)"
                ) from None
    raise AssertionError("unreachable")


def _records(
    source: Source, file: ImportFile, report: FileReport | None, progress: Progress | None, what: str
) -> Iterator[Record | Problem]:
    """The file's records in order, or the problems that keep rows (or, once, the header) from being ones."""
    kind, options = file.kind, file.options
    csv_columns: Columns | None = None
    by_keys: dict[tuple[str, ...], Columns] = {}
    renamed: set[str] = set()
    noted: set[str | None] = set()
    rows = 0
    for item in source.rows():
        rows += 1
        if progress is not None and rows % 5000 == 0:
            progress(what, source.done, source.size)
        if isinstance(item, Problem):
            yield item
            continue
        if source.format == "csv":
            if csv_columns is None:
                header, line = source.header or [], source.header_line
                csv_columns = plan_columns(kind, header, options, line)
                header_problems = csv_columns.problems + check_renames(options, header, line)
                if report is not None:
                    report.notes += csv_columns.notes
                if header_problems:
                    yield from header_problems
                    if report is not None:
                        report.fatal = True
                    return  # the rows cannot be understood until the header is right
            columns = csv_columns
        else:
            keys = tuple(item.values)
            if keys not in by_keys:
                by_keys[keys] = plan_columns(kind, keys, options, None, header=False)
            columns = by_keys[keys]
            renamed.update(name for name in options.rename if name in item.values)
            if columns.problems:
                yield from (Problem(item.line, problem.message, problem.column) for problem in columns.problems)
                continue
            if report is not None:
                for note in columns.notes:
                    if note.column not in noted:
                        noted.add(note.column)
                        report.notes.append(Problem(item.line, note.message, note.column))
        found = record(kind, columns, item.values, item.line, text=source.format == "csv")
        if isinstance(found, list):
            yield from found
        else:
            yield found
    if progress is not None:
        progress(what, source.done, source.size)
    if source.format == "jsonl" and rows:
        for source_name, target in options.rename.items():
            if source_name not in renamed:
                yield Problem(None, f"--map '{source_name}={target}': no line has the key '{source_name}'")


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for each in records:
        batch.append(each)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


Verdict = Literal["created", "updated", "unchanged", "rejected"]


@dataclass(frozen=True)
class ItemResult:
    """One item of an HTTP batch: its verdict, and why it was rejected or what changed."""

    index: int
    key: str | None
    verdict: Verdict
    problems: tuple[Problem, ...] = ()
    changes: Changes = field(default_factory=dict)


def upsert_items(
    engine: Engine, kind: Kind, items: Sequence[Any], options: Options | None = None, *, dry_run: bool = False
) -> list[ItemResult]:
    """Upsert a batch of JSON objects (the HTTP API): each item is judged on its own; rejected items store nothing,
    the others are written in one transaction with their change events (nothing when `dry_run`). A problem's
    `line` is the item's index and its `column` the field at fault. Raises WriteRefusedError when a concurrent
    writer made the write fail twice."""
    options = options or Options()
    checker = Checker(kind, place="item")
    rejected: dict[int, list[Problem]] = {}
    good: list[Record] = []
    for index, item in enumerate(items):
        found = _item(kind, item, index, options)
        problems = found if isinstance(found, list) else checker.add(found)
        if problems:
            rejected[index] = list(problems)
        elif isinstance(found, Record):
            good.append(found)
    outcomes: dict[int, Outcome] = {}
    with engine.connect() as connection:
        for problem in checker.references(connection):
            rejected.setdefault(problem.line or 0, []).append(problem)
        good = [each for each in good if each.line not in rejected]
        for start in range(0, len(good), CHUNK):
            chunk = good[start : start + CHUNK]
            for each, outcome in zip(chunk, upsert(connection, kind, chunk, write=False), strict=True):
                if problems := checker.judge(each, outcome):
                    rejected[each.line or 0] = problems
                else:
                    outcomes[each.line or 0] = outcome
    to_write = [
        each for each in good if (each.line or 0) in outcomes and outcomes[each.line or 0].verdict != "unchanged"
    ]
    if to_write and not dry_run:
        for each, outcome in zip(to_write, _write(engine, kind, to_write), strict=True):
            outcomes[each.line or 0] = outcome
    results = []
    for index, item in enumerate(items):
        if index in rejected:
            key = item.get(KEY[kind]) if isinstance(item, dict) else None
            results.append(ItemResult(index, key if isinstance(key, str) else None, "rejected", tuple(rejected[index])))
        else:
            outcome = outcomes[index]
            results.append(ItemResult(index, outcome.key, outcome.verdict, (), outcome.changes))
    return results


def _item(kind: Kind, item: Any, index: int, options: Options) -> Record | list[Problem]:
    if not isinstance(item, dict):
        return [Problem(index, "expected a JSON object")]
    columns = plan_columns(kind, tuple(item), options, index, header=False)
    if columns.problems:
        return columns.problems
    return record(kind, columns, item, index, text=False)
