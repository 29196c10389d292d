"""`journey import accounts|people|opportunities FILE`: a team's own data from CSV or JSON Lines (docs/data.md).

Every row is checked before any is written; every problem is printed as `FILE:LINE: column 'x': message`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.cli.common import EXIT_PROBLEMS, EXIT_USAGE, database, group

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress

    from engine.data.fields import Kind
    from engine.data.importer import ImportFile, ImportReport, Progress

import_app = group(
    "Import accounts, people or opportunities from CSV (',' or ';') or JSON Lines; docs/data.md lists the fields.",
    no_args_is_help=True,
)
PROGRESS_FROM = 1 << 20  # bytes: smaller files are done before a bar would show

FILE = typer.Argument(..., help="a .csv file with a header row, or a .jsonl file with one JSON object a line")
STRICT = typer.Option(
    False, "--strict", help="refuse columns that are not fields, instead of keeping them in attributes"
)
MAP = typer.Option(None, "--map", help="rename a column: SOURCE=FIELD (repeatable), e.g. --map 'Company=name'")
SKIP = typer.Option(False, "--skip-invalid", help="write the good rows and report the bad ones")
DRY = typer.Option(False, "--dry-run", help="check everything and count what would change, write nothing")
ACCOUNTS = typer.Option(None, "--accounts", help="an accounts file to import first, in the same run")


@import_app.command("accounts")
def import_accounts(
    file: Path = FILE,
    strict: bool = STRICT,
    maps: list[str] | None = MAP,
    skip_invalid: bool = SKIP,
    dry_run: bool = DRY,
) -> None:
    """Create or update accounts by id."""
    _import("accounts", file, None, strict, maps or [], skip_invalid, dry_run)


@import_app.command("people")
def import_people(
    file: Path = FILE,
    strict: bool = STRICT,
    maps: list[str] | None = MAP,
    skip_invalid: bool = SKIP,
    dry_run: bool = DRY,
    accounts: Path | None = ACCOUNTS,
) -> None:
    """Create or update people by email (any case); their accounts must exist or come with --accounts."""
    _import("people", file, accounts, strict, maps or [], skip_invalid, dry_run)


@import_app.command("opportunities")
def import_opportunities(
    file: Path = FILE,
    strict: bool = STRICT,
    maps: list[str] | None = MAP,
    skip_invalid: bool = SKIP,
    dry_run: bool = DRY,
    accounts: Path | None = ACCOUNTS,
) -> None:
    """Create or update opportunities by id; their accounts must exist or come with --accounts."""
    _import("opportunities", file, accounts, strict, maps or [], skip_invalid, dry_run)


def _import(
    kind: Kind, file: Path, accounts: Path | None, strict: bool, maps: list[str], skip_invalid: bool, dry_run: bool
) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from engine.data.importer import ImportFile, WriteRefusedError, import_files
    from engine.data.validate import Options, parse_map

    rename: dict[str, str] = {}
    for text in maps:
        try:
            source, target = parse_map(text)
        except ValueError as error:
            _usage(str(error))
        if source in rename:
            _usage(f"--map '{text}': '{source}' is already mapped to '{rename[source]}'")
        rename[source] = target
    files = [ImportFile("accounts", accounts, Options(strict))] if accounts is not None else []
    files.append(ImportFile(kind, file, Options(strict, rename)))
    for each in files:
        if not each.path.is_file():
            _usage(f"no such file: {each.path}")
    try:
        with database() as engine, _progress(files) as progress:
            report = import_files(engine, files, skip_invalid=skip_invalid, dry_run=dry_run, progress=progress)
    except OSError as error:
        _usage(f"cannot read {error.filename or file}: {error.strerror or error}")
    except WriteRefusedError as error:
        print(f"journey: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_PROBLEMS) from None
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        print(
            f"journey: the database failed during the import ({reason}): the rows committed before stay; "
            "run the import again once it is fixed (imports are idempotent)",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_PROBLEMS) from None
    _print(report, skip_invalid, dry_run)


def _usage(message: str) -> None:
    print(f"journey: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_USAGE)


def _print(report: ImportReport, skip_invalid: bool, dry_run: bool) -> None:
    for each in report.files:
        for note in sorted(each.notes, key=lambda note: note.line or 0):
            print(_note(each.file.name, note.line, note.column, note.message), file=sys.stderr)
        for line in each.lines():
            print(line, file=sys.stderr)
    if report.problems and not skip_invalid:
        noun = "problem" if report.problems == 1 else "problems"
        print(
            f"journey: {report.problems} {noun}, nothing written: fix them and import again, or import the good "
            "rows with --skip-invalid",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_PROBLEMS)
    for each in report.files:
        if each.fatal:
            print(f"{each.file.name}: nothing written: the file cannot be read as a whole", file=sys.stderr)
            continue
        summary = f"{each.file.name}: created {each.created}, updated {each.updated}, unchanged {each.unchanged}"
        if skip_invalid:
            summary += f", skipped {each.skipped}"
        print(summary + (" (dry run: nothing written)" if dry_run else ""))


def _note(name: str, line: int | None, column: str | None, message: str) -> str:
    where = name if line is None else f"{name}:{line}"
    return f"{where}: note: column '{column}': {message}" if column else f"{where}: note: {message}"


class _progress:
    """A bar on the terminal for files of a megabyte or more; nothing otherwise (pipes and tests get plain lines)."""

    def __init__(self, files: list[ImportFile]) -> None:
        self.show = sum(file.path.stat().st_size for file in files) >= PROGRESS_FROM
        self.bar: RichProgress | None = None

    def __enter__(self) -> Progress | None:
        from engine.cli.common import err

        if not self.show or not err().is_terminal:
            return None
        from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                       console=err(), transient=True)  # fmt: skip
        bar.start()
        self.bar = bar
        tasks: dict[str, TaskID] = {}

        def update(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=max(total, 1))
            bar.update(tasks[what], completed=done, total=max(total, 1))

        return update

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
