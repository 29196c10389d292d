"""Set-up shared by the analytics tests: the hand-made data set in a fresh SQLite or PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from analytics_data import load
from sqlalchemy.engine import Engine, make_url

from engine.db import init_db, make_engine


@contextmanager
def loaded_database(backend: str, tmp: Path, postgres_url: str | None) -> Iterator[Engine]:
    """A database holding the data set: a SQLite file under `tmp`, or a new database on the PostgreSQL server."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'analytics.db'}"
    else:
        assert postgres_url is not None
        name = f"analytics_{uuid.uuid4().hex[:12]}"
        server = make_url(postgres_url)
        with psycopg.connect(f"host={server.host} port={server.port} user={server.username} dbname=postgres") as admin:
            admin.autocommit = True
            admin.execute(f"CREATE DATABASE {name}")
        url = server.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    init_db(engine)
    load(engine)
    try:
        yield engine
    finally:
        engine.dispose()
