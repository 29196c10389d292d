"""What the commands share: exit codes, the consoles, and how a command reaches Temporal, the database and
one journey file. Everything heavy is imported when a command asks for it, never at start-up."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy.engine import Engine
    from temporalio.client import Client

    from engine.language.catalog import Catalog
    from engine.language.plan import Plan

EXIT_PROBLEMS = 1
EXIT_USAGE = 2

T = TypeVar("T")


BY = typer.Option(None, "--by", help="who you are (default: $JOURNEY_OPERATOR or your login name)")


def operator_name(by: str | None = None) -> str:
    """Who acts, for the event log: --by, else $JOURNEY_OPERATOR, else the login name."""
    return by or os.environ.get("JOURNEY_OPERATOR") or getpass.getuser()


def group(help: str, **settings: Any) -> typer.Typer:
    """A command group. Help is printed plainly: rich's help formatting cost every `journey --help` 0.2 s."""
    return typer.Typer(help=help, rich_markup_mode=None, **settings)


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (asyncio is loaded only by the commands that need it)."""
    import asyncio

    return asyncio.run(coroutine)


@cache
def out() -> Console:
    from rich.console import Console

    return Console()


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def data_table(*columns: str, title: str | None = None, **options: Any) -> Table:
    """A table whose cells and title are data, never rich markup: a last name '[/]' prints as itself."""
    from rich.table import Table
    from rich.text import Text

    class DataTable(Table):
        def add_column(self, header: Any = "", *args: Any, **column: Any) -> None:
            super().add_column(Text(header) if isinstance(header, str) else header, *args, **column)

        def add_row(self, *cells: Any, **row: Any) -> None:
            super().add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells), **row)

    return DataTable(*columns, title=Text(title) if title is not None else None, **options)


def markup_free(value: object) -> str:
    """Data to put inside a rich markup string: its own brackets printed, not read as markup."""
    from rich.markup import escape

    return escape(str(value))


def validated(paths: list[Path]) -> Catalog:
    """Journey files or folders checked together; a missing path is a usage error."""
    from engine.language import catalog

    try:
        return catalog.validate(paths)
    except FileNotFoundError as error:
        print(f"journey: no such file or folder: {error.args[0]}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def one_plan(file: Path) -> Plan:
    """The Plan of one journey file, or every problem printed and exit 1."""
    result = validated([file])
    for issue in result.issues:
        print(issue.render(), file=sys.stderr)
    if result.issues or not result.plans:
        raise typer.Exit(EXIT_PROBLEMS)
    return result.plans[0]


async def client(engine: Engine | None = None) -> Client:
    """A Temporal client from the environment, or a message saying how to start or point at Temporal. With the
    journey database, large payloads (Plans) are stored there once instead of in every history."""
    from engine.runtime import temporal

    try:
        return await temporal.connect(engine=engine)
    except RuntimeError as error:
        print(
            f"journey: cannot reach Temporal ({error}): start it with `journey dev`, or set "
            "TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_PROBLEMS) from None


@contextmanager
def database() -> Iterator[Engine]:
    """The journey database (JOURNEY_DATABASE_URL or .journey/journey.db), its tables created when missing."""
    from engine import db

    with db.database() as engine:
        yield engine


def safe_url(url: str) -> str:
    """A database URL fit to print: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
