"""What bench/throughput.py sets up: the reference journey, the seeded database, the workers, and readings of
the event log and of CPU time."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from handwritten_journey import SUBJECT, TEMPLATE
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.accounts import AccountActivities
from activities.delivery import OutboxFileDelivery
from activities.email import EmailActivities
from engine.db import Account, ActivityEvent, Person, engine_key
from engine.language.compiler import compile_file
from engine.language.plan import Plan
from engine.runtime import temporal
from engine.runtime.workers import slots_from_env

JOURNEY = f"""\
journey: bench-throughput
name: Bench Throughput
audience:
  accounts: "account.employees >= 1"
start: intro
nodes:
  - id: intro
    type: send_email
    to: all
    subject: "{SUBJECT}"
    template: emails/hello.html.j2
    next: pause
  - id: pause
    type: wait
    duration: 1s
    next: wait_demo
  - id: wait_demo
    type: wait_for_event
    event: form_fill
    where: "event.form == 'demo'"
    timeout: 1h
    on_event: decide
    on_timeout: done
  - id: decide
    type: split
    paths:
      - when: "account.employees >= 100"
        next: follow_up
    otherwise: done
  - id: follow_up
    type: send_email
    to: all
    subject: "{SUBJECT}"
    template: emails/hello.html.j2
    next: done
  - id: done
    type: end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(engine: Engine, count: int) -> list[str]:
    """`count` accounts with two people each, in one transaction."""
    ids = [f"acct-{index:06d}" for index in range(count)]
    with Session(engine) as session:
        session.add_all(
            Account(id=account, name=f"Account {index}", domain=f"{account}.example", employees=250 - 200 * (index % 2))
            for index, account in enumerate(ids)
        )
        session.flush()
        session.add_all(
            Person(account_id=account, email=f"p{n}@{account}.example", first_name=f"P{n}")
            for account in ids
            for n in (1, 2)
        )
        session.commit()
    return ids


def write_plan(folder: Path) -> Plan:
    (folder / "emails").mkdir(parents=True)
    (folder / "emails" / "hello.html.j2").write_text(TEMPLATE)
    (folder / "bench-throughput.yaml").write_text(JOURNEY)
    return compile_file(folder / "bench-throughput.yaml")


@asynccontextmanager
async def worker(
    client: Client, engine: Engine, outbox: Path, task_queue: str, workflow: type, n: int
) -> AsyncIterator[None]:
    """engine.runtime.workers.running_worker's worker and slots, with tuned pollers and cache, one workflow type."""
    accounts, email = AccountActivities(engine), EmailActivities(engine, OutboxFileDelivery(outbox))
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*temporal.PASSTHROUGH, "handwritten_journey")
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow],
        activities=[
            accounts.load_account,
            accounts.record_step,
            accounts.record_steps,
            accounts.log_steps,
            email.send_email,
        ],
        workflow_runner=SandboxedWorkflowRunner(restrictions=restrictions),
        max_cached_workflows=n + 200,
        **slots_from_env(),  # the worker's own slots (JOURNEY_WORKER_WORKFLOW_TASKS / _ACTIVITIES)
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(20),
        activity_task_poller_behavior=PollerBehaviorSimpleMaximum(10),
    ):
        yield


def entered_wait(engine: Engine, label: str, after: int) -> list[tuple[int, str]]:
    """(row id, account) of every `wait_demo` entry logged by this round's workflows since row `after`."""
    with Session(engine) as session:
        query = select(ActivityEvent.id, ActivityEvent.account_id).where(
            col(ActivityEvent.id) > after,
            ActivityEvent.type == "node_entered",
            ActivityEvent.node_id == "wait_demo",
            col(ActivityEvent.key).startswith(engine_key(f"bench/{label}/")),
        )
        return [(row_id or 0, account or "") for row_id, account in session.exec(query)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), 0.0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid(database: Path) -> int:
    """The dev server serving `database`, found by its command line."""
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and str(database).encode() in (entry / "cmdline").read_bytes():
                return int(entry.name)
    return -1


@dataclass
class HistoryStats:
    """Per account, from the workflows' histories: what the server stores and what Temporal Cloud bills."""

    events: float
    bytes: float
    activities: float
    actions: float
    kinds: dict[str, tuple[float, float]] = field(default_factory=dict)  # event kind -> (count, bytes)


# History events Temporal Cloud bills as actions: the start, each activity scheduled, timer, signal,
# search-attribute upsert, marker (patches, side effects), continue-as-new (the next run's start) and
# properties change. Queries are billed too: the driver's are added by the caller.
BILLED = (
    "workflow_execution_started_event_attributes",
    "activity_task_scheduled_event_attributes",
    "timer_started_event_attributes",
    "workflow_execution_signaled_event_attributes",
    "upsert_workflow_search_attributes_event_attributes",
    "marker_recorded_event_attributes",
    "workflow_execution_continued_as_new_event_attributes",
    "workflow_properties_modified_event_attributes",
)


async def history_stats(client: Client, workflow_ids: list[str]) -> HistoryStats:
    """Averages over the given (finished) workflows' histories."""
    events = size = activities = actions = 0
    kinds: dict[str, list[int]] = {}
    for workflow_id in workflow_ids:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        events += len(history.events)
        size += sum(event.ByteSize() for event in history.events)
        for event in history.events:
            kind = event.WhichOneof("attributes") or "?"
            activities += kind == "activity_task_scheduled_event_attributes"
            actions += kind in BILLED
            tally = kinds.setdefault(kind.removesuffix("_event_attributes"), [0, 0])
            tally[0] += 1
            tally[1] += event.ByteSize()
    count = max(len(workflow_ids), 1)
    per_kind = {kind: (n / count, b / count) for kind, (n, b) in sorted(kinds.items(), key=lambda kv: -kv[1][1])}
    return HistoryStats(events / count, size / count, activities / count, actions / count, per_kind)
