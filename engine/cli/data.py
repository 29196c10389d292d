"""`journey db init` and `journey demo-data`: the journey database and the demo data set."""

from __future__ import annotations

import typer

from engine.cli.common import group, safe_url

db_app = group("The journey database (SQLite under .journey/ or JOURNEY_DATABASE_URL).", no_args_is_help=True)


@db_app.command("init")
def db_init() -> None:
    """Create the tables that are missing (safe to run again)."""
    from engine.db import database_url, init_db, make_engine

    init_db(make_engine())
    print(f"database ready: {safe_url(database_url())}")


def demo_data() -> None:
    """Load the deterministic demo data set (accounts, people, solution interests); safe to run again."""
    from engine.db import database_url, init_db, make_engine
    from engine.dev.demo_data import load_demo_data

    engine = make_engine()
    init_db(engine)
    counts = load_demo_data(engine)
    summary = ", ".join(f"{count} {name}" for name, count in counts.items())
    print(f"demo data loaded into {safe_url(database_url())}: {summary}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.command("demo-data")(demo_data)
