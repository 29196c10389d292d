"""`journey forget PERSON_EMAIL`: erase a person's personal data (GDPR Art. 17) and suppress their address."""

from __future__ import annotations

import getpass
import json
import sys

import typer

from engine.cli.common import EXIT_USAGE, database


def forget_command(
    email: str = typer.Argument(..., metavar="PERSON_EMAIL", help="the person's email address (any case)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="erase without asking"),
    reason: str = typer.Option("", "--reason", help="why, e.g. a ticket number; kept in the event log"),
    by: str | None = typer.Option(None, "--by", help="who asks, kept in the event log (default: your login name)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Erase a person: their row and buying-group roles go, their events, outbox messages and handoff summaries
    are kept without them, and an anonymous suppression record stops every later email to the address.
    Temporal's histories keep what they hold until their retention ends (README, Erasure)."""
    from engine import logs
    from engine.data.erasure import ErasureError, forget

    logs.configure()  # the erasure's log line (digest and counts, no address) goes to stderr, the answer to stdout
    if not yes and not typer.confirm(
        f"Erase everything the journey database holds about '{email.strip()}'? This cannot be undone", default=False
    ):
        print("nothing erased", file=sys.stderr)
        raise typer.Exit(1)
    with database() as engine:
        try:
            erasure = forget(engine, email, by or _login(), reason)
        except ErasureError as error:
            print(f"journey forget: {error}", file=sys.stderr)
            raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        print(json.dumps(erasure.as_json(), indent=2))
        return
    print(erasure.message)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "journey forget"


def register(app: typer.Typer) -> None:
    app.command("forget")(forget_command)
