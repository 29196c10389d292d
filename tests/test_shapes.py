"""The two ways a journey run records itself (JourneyInput.shape): runs started before shape 2 keep their patch
markers and full step records; shape 2 runs write no markers, log steps in compact local-activity batches and
adopt the search attributes their starter set. Both leave the same rows in the event log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, add_person, free_port, wait_for_state, write_journey
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery, SmtpDelivery
from engine.db import ActivityEvent
from engine.language.plan import Plan
from engine.runtime import temporal
from engine.runtime.workers import running_worker
from engine.workflow import details, visibility
from engine.workflow.contracts import LEGACY_SHAPE, SHAPE, JourneyEvent, JourneyInput, JourneyResult

JOURNEY = """
- id: intro
  type: send_email
  to: all
  subject: "Hello {{ account.name }}"
  template: hello.html.j2
  next: pause
- id: pause
  type: wait
  duration: 5s
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
  subject: "Hello {{ account.name }}"
  template: hello.html.j2
  next: done
- id: done
  type: end
"""


def _plan(folder: Path) -> Plan:
    return write_journey(
        folder, JOURNEY, start="intro", templates={"hello.html.j2": "<p>Hi {{ person.first_name }}</p>"}
    )


async def _run(env: WorkflowEnvironment, plan: Plan, task_queue: str, account: str, shape: int, **start: Any) -> Any:
    """Run one account through the journey with a demo form fill; its history."""
    handle: WorkflowHandle[Any, JourneyResult] = await env.client.start_workflow(
        "Journey",
        JourneyInput(plan=plan, account_id=account, shape=shape),
        id=f"{temporal.workflow_id(plan.journey, account)}/{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=JourneyResult,
        **start,
    )
    await wait_for_state(handle, lambda state: bool(state.get("listening")))
    await handle.signal(
        "event",
        JourneyEvent(
            type="form_fill",
            event_id=uuid.uuid4().hex,
            account_id=account,
            payload={"form": "demo"},
            occurred_at=datetime.now(UTC),
        ),
    )
    result = await handle.result()
    assert result.ended_at == "done"
    return await handle.fetch_history()


def _rows(db: Engine, account: str) -> list[tuple[str, str, str | None, int, str]]:
    """(type, node, branch, visit, key after the run's prefix) of the account's step rows, in order."""
    with Session(db) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(ActivityEvent.account_id == account, col(ActivityEvent.type).in_(["node_entered", "node_left"]))
            .order_by(col(ActivityEvent.occurred_at), col(ActivityEvent.id))
        ).all()
    return [
        (row.type, row.node_id or "", row.payload.get("branch"), row.payload["visit"], row.key.split("/", 5)[-1])
        for row in rows
    ]


def _kinds(history: Any) -> list[int]:
    return [event.event_type for event in history.events]


class TestDecoding:
    def test_an_input_recorded_before_shapes_is_shape_1(self, tmp_path: Path) -> None:
        plan = _plan(tmp_path)
        built = JourneyInput(plan=plan, account_id="acme-corp")
        assert built.shape == SHAPE
        payload = pydantic_data_converter.payload_converter.to_payloads([built])[0]
        assert pydantic_data_converter.payload_converter.from_payloads([payload], [JourneyInput])[0].shape == SHAPE
        old = payload.data.replace(f',"shape":{SHAPE}'.encode(), b"")
        assert b'"shape"' not in old
        decoded = pydantic_data_converter.payload_converter.from_payloads(
            [Payload(metadata=payload.metadata, data=old)], [JourneyInput]
        )[0]
        assert decoded.shape == LEGACY_SHAPE


class TestSameRows:
    async def test_both_shapes_write_the_same_rows(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        plan = _plan(tmp_path)
        for account in ("old-corp", "new-corp"):
            add_account(db, account, employees=250)
            add_person(db, account, f"ada@{account}.example", first_name="Ada")
        old = await _run(time_env, plan, worker, "old-corp", LEGACY_SHAPE)
        new = await _run(time_env, plan, worker, "new-corp", SHAPE)

        assert _rows(db, "new-corp") == _rows(db, "old-corp")
        assert [row[:2] for row in _rows(db, "new-corp")][:4] == [
            ("node_entered", "intro"),
            ("node_left", "intro"),
            ("node_entered", "pause"),
            ("node_left", "pause"),
        ]
        # The pause is shorter than a minute: its rows wait for the batch written at wait_demo, with their times.
        scheduled = [event for event in new.events if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
        assert [event.activity_task_scheduled_event_attributes.activity_type.name for event in scheduled] == [
            "load_account",
            "send_email",
            "load_account",
            "send_email",
        ]
        markers = [event for event in new.events if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
        assert [marker.marker_recorded_event_attributes.marker_name for marker in markers] == [
            "core_local_activity"
        ] * 2
        assert EventType.EVENT_TYPE_MARKER_RECORDED in _kinds(old)
        assert len(new.events) < len(old.events)
        with Session(db) as session:
            pause = session.exec(
                select(ActivityEvent).where(ActivityEvent.account_id == "new-corp", ActivityEvent.node_id == "pause")
            ).all()
        entered, left = sorted(row.occurred_at for row in pause)
        assert timedelta(seconds=5) <= left - entered < timedelta(seconds=6)


class TestStartAttributes:
    async def test_findable_before_a_worker_and_not_written_again(
        self, time_env: WorkflowEnvironment, db: Engine, tmp_path: Path
    ) -> None:
        plan = _plan(tmp_path)
        add_account(db, "acme-corp", name="Acme Corp", employees=250)
        add_person(db, "acme-corp", "ada@acme-corp.example", first_name="Ada")
        task_queue = f"test-{uuid.uuid4()}"
        attributes = details.start_attributes(plan, "acme-corp", "Acme Corp", datetime.now(UTC))
        handle = await time_env.client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id="acme-corp"),
            id=f"{temporal.workflow_id(plan.journey, 'acme-corp')}/{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            search_attributes=attributes,
        )
        shown = (await handle.describe()).typed_search_attributes  # no worker yet: what the starter set
        assert shown.get(visibility.NODE) == "intro"
        assert shown.get(visibility.JOURNEY_ID) == plan.journey

        async with running_worker(time_env.client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
            await wait_for_state(handle, lambda state: state.get("position") == "wait_demo")
            history = await handle.fetch_history()
        nodes = [
            fields[visibility.NODE.name].data
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
            and visibility.NODE.name
            in (fields := event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
        ]
        # intro's attributes came with the start (at most its NodeSince is rewritten, when the server's clock
        # is not the starter's); the 5 s pause is passed through; wait_demo wrote its own, and nothing wrote the
        # journey again.
        assert nodes == [b'"wait_demo"']
        assert not any(
            visibility.JOURNEY_ID.name
            in event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            for event in history.events
        )
        await handle.terminate("test over")


class TestEventAsAWaitEnds:
    """A form fill the server takes after the pause's timer fired, while no worker had run that workflow task yet:
    the timer and the signal reach the workflow in one task, and the signal handler runs first, while the account
    still sits at the pause. Since shape 3 the event is kept for wait_demo; shape 2 runs replay as they ran."""

    async def _run_with_late_worker(
        self, env: WorkflowEnvironment, db: Engine, tmp_path: Path, account: str, shape: int
    ) -> JourneyResult:
        plan = _plan(tmp_path)
        add_account(db, account, employees=250)
        add_person(db, account, f"ada@{account}.example", first_name="Ada")
        task_queue = f"test-{uuid.uuid4()}"
        delivery = OutboxFileDelivery(tmp_path / "outbox")
        handle: WorkflowHandle[Any, JourneyResult] = await env.client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id=account, shape=shape),
            id=f"{temporal.workflow_id(plan.journey, account)}/{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=JourneyResult,
        )
        # No cache, so no sticky queue: the next worker gets the workflow task at once (the test server keeps a
        # task on a stopped worker's sticky queue).
        async with running_worker(env.client, db, delivery, task_queue, max_cached_workflows=0):
            await wait_for_state(handle, lambda state: state.get("position") == "pause")
        await env.sleep(timedelta(seconds=10))  # the 5 s timer fires; no worker takes the workflow task
        fill = JourneyEvent(
            type="form_fill", event_id=uuid.uuid4().hex, account_id=account, payload={"form": "demo"},
            occurred_at=datetime.now(UTC),
        )  # fmt: skip
        await handle.signal("event", fill)
        async with running_worker(env.client, db, delivery, task_queue):
            result = await handle.result()
        history = await handle.fetch_history()
        kinds = _kinds(history)
        fired = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
        signaled = kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        task = kinds.index(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, fired)
        assert fired < signaled < task, "the timer and the signal must reach the workflow in one task"
        return result

    async def test_kept_for_the_next_node(self, time_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> None:
        result = await self._run_with_late_worker(time_env, db, tmp_path, "late-corp", SHAPE)
        assert result.visits.get("follow_up") == 1  # wait_demo heard the form fill
        assert result.emails_sent == 2

    async def test_shape_2_runs_drop_it_as_they_did(
        self, time_env: WorkflowEnvironment, db: Engine, tmp_path: Path
    ) -> None:
        result = await self._run_with_late_worker(time_env, db, tmp_path, "older-corp", 2)
        assert "follow_up" not in result.visits  # wait_demo timed out after its hour
        assert result.emails_sent == 1


def _nodes_shown(history: Any) -> list[bytes]:
    """The JourneyNode values the run upserted, in order."""
    return [
        fields[visibility.NODE.name].data
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and visibility.NODE.name
        in (fields := event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields)
    ]


class _FirstMessageDeferred:
    """An SMTP server's handler that answers the first message with 451 (try again later), as a greylisting or
    overloaded mail server does, and accepts every later one."""

    def __init__(self) -> None:
        self.refused = 0
        self.received: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.refused:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.received.extend(envelope.rcpt_tos)
        return "250 OK"


class TestCallsShownWhenSlow:
    """Since shape 4 an email that goes out at once writes no search attributes for its node; one whose first attempt
    fails shows the node before it retries, and still goes out once."""

    async def test_an_email_sent_at_once_is_not_written(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        plan = _plan(tmp_path)
        for account in ("three-corp", "four-corp"):
            add_account(db, account, employees=250)
            add_person(db, account, f"ada@{account}.example", first_name="Ada")
        before = await _run(time_env, plan, worker, "three-corp", 3)
        now = await _run(time_env, plan, worker, "four-corp", SHAPE)
        assert _nodes_shown(before) == [b'"intro"', b'"wait_demo"', b'"follow_up"']
        assert _nodes_shown(now) == [b'"wait_demo"']
        assert _rows(db, "four-corp") == _rows(db, "three-corp")  # the event log does not change

    async def test_a_failed_first_attempt_shows_the_node_and_sends_once(
        self, time_env: WorkflowEnvironment, db: Engine, tmp_path: Path
    ) -> None:
        plan = _plan(tmp_path)
        add_account(db, "grey-corp", employees=250)
        add_person(db, "grey-corp", "ada@grey-corp.example", first_name="Ada")
        handler = _FirstMessageDeferred()
        server = Controller(handler, hostname="127.0.0.1", port=free_port())
        server.start()
        try:
            delivery = SmtpDelivery(f"smtp://127.0.0.1:{server.port}?starttls=never")
            task_queue = f"test-{uuid.uuid4()}"
            async with running_worker(time_env.client, db, delivery, task_queue):
                handle: WorkflowHandle[Any, JourneyResult] = await time_env.client.start_workflow(
                    "Journey",
                    JourneyInput(plan=plan, account_id="grey-corp"),
                    id=f"{temporal.workflow_id(plan.journey, 'grey-corp')}/{uuid.uuid4().hex[:8]}",
                    task_queue=task_queue,
                    result_type=JourneyResult,
                )
                await wait_for_state(handle, lambda state: bool(state.get("listening")))
                history = await handle.fetch_history()
                await handle.terminate("test over")
        finally:
            server.stop()
        assert handler.refused == 1
        assert handler.received == ["ada@grey-corp.example"]  # once, by the retry
        assert _nodes_shown(history)[0] == b'"intro"'  # shown after the 451, before the retry
        scheduled = [
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert scheduled == ["load_account", "send_email", "send_email"]
