"""Entry schedules and closing, on the time-skipping server: publishing before `schedule.start` starts nobody and
the launcher starts the audience at the start; at `schedule.end` the journey closes by itself while its accounts
finish; a closed journey takes nobody from publish, the launcher or add_to_journey; an account started a moment
before a close keeps running."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import support
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.db import ActivityEvent
from engine.language.compiler import compile_file
from engine.language.plan import Plan
from engine.runtime import journey_state, publish, temporal
from engine.runtime.journey_state import JourneyStateError
from engine.runtime.workers import running_worker
from engine.workflow.contracts import JourneyResult


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test: accounts a test leaves waiting would hold the next test's clock still."""
    async with await support.time_skipping_env() as env:
        yield env


@pytest.fixture
async def worker(time_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> AsyncIterator[str]:
    task_queue = f"schedule-{uuid.uuid4()}"
    async with running_worker(time_env.client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        yield task_queue


def journey(folder: Path, journey_id: str, header: str = "") -> Plan:
    """Biotech accounts wait 30 days, then end; `header` lines go after the audience's `accounts`."""
    text = (
        f"journey: {journey_id}\nname: Spring campaign\naudience:\n  accounts: \"account.industry == 'Biotech'\"\n"
        + (header + "\n" if header else "")
        + "start: linger\nnodes:\n  - id: linger\n    type: wait\n    duration: 30d\n    next: done\n"
        + "  - id: done\n    type: end\n"
    )
    path = folder / f"{journey_id}.yaml"
    path.write_text(text)
    return compile_file(path)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


async def status(time_env: WorkflowEnvironment, journey_id: str, account: str) -> Any:
    handle = time_env.client.get_workflow_handle(temporal.workflow_id(journey_id, account))
    return (await handle.describe()).status


async def finish(time_env: WorkflowEnvironment, journey_id: str, account: str) -> JourneyResult:
    """The account's result, its timers skipped (a handle this client did not start does not skip by itself)."""
    handle = time_env.client.get_workflow_handle(temporal.workflow_id(journey_id, account), result_type=JourneyResult)
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        return await handle.result()


def entered(db: Engine, journey_id: str) -> list[str]:
    with Session(db) as session:
        rows = session.exec(
            select(ActivityEvent.account_id)
            .where(ActivityEvent.type == "journey_entered", ActivityEvent.journey_id == journey_id)
            .order_by(col(ActivityEvent.id))
        ).all()
    return [str(account) for account in rows]


class TestSchedule:
    """Entry opens at schedule.start and closes at schedule.end, woken by the launcher's timers."""

    async def test_opens_at_start_and_closes_at_end(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Published two days early nobody starts; at the start the audience (including an account added since)
        starts; at the end the journey is closed by its schedule, and the accounts in it go on to their end."""
        now = datetime.now(UTC)
        opens, closes = now + timedelta(days=2), now + timedelta(days=5)
        plan = journey(tmp_path, "spring", f"schedule:\n  start: {iso(opens)}\n  end: {iso(closes)}")
        add_account(db, "bio-one", industry="Biotech")
        summary = await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert (summary.started, summary.not_open) == (
            [],
            f"journey 'spring' opens for entry at {opens:%Y-%m-%d %H:%M} UTC",
        )
        add_account(db, "bio-two", industry="Biotech")
        launcher = await publish.start_launcher(time_env.client, plan, task_queue=worker)
        assert launcher is not None
        await launcher.result()  # the timers skip: it returns once it has recorded the close
        assert sorted(entered(db, "spring")) == ["bio-one", "bio-two"]
        found = journey_state.lifecycle(db, "spring", datetime.now(UTC))
        assert found is not None and (found.state, found.changed_by, found.reason) == (
            "closed",
            "schedule",
            "schedule.end reached",
        )
        assert await status(time_env, "spring", "bio-one") == WorkflowExecutionStatus.RUNNING
        add_account(db, "bio-late", industry="Biotech")
        late = await publish.launch(time_env.client, db, plan, task_queue=worker, at=closes + timedelta(hours=1))
        assert (late.started, late.not_open) == (
            [],
            f"journey 'spring' closed for entry at {closes:%Y-%m-%d %H:%M} UTC (schedule.end)",
        )
        with pytest.raises(JourneyStateError, match="'spring' is closed"):
            await publish.publish(time_env.client, db, plan, task_queue=worker)
        with pytest.raises(JourneyStateError, match="has passed"):  # this version's schedule.end
            await publish.publish(time_env.client, db, plan, task_queue=worker, now=closes + timedelta(hours=1))
        assert (await finish(time_env, "spring", "bio-one")).ended_at == "done"
        assert (await finish(time_env, "spring", "bio-two")).ended_at == "done"

    async def test_refresh_stops_at_end(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """A daily refresh starts newcomers while entry is open; the launcher ends at schedule.end."""
        closes = datetime.now(UTC) + timedelta(days=3)
        header = f'  refresh: "0 6 * * *"\nschedule:\n  end: {iso(closes)}'
        plan = journey(tmp_path, "daily", header)
        add_account(db, "bio-one", industry="Biotech")
        assert (await publish.publish(time_env.client, db, plan, task_queue=worker)).started == ["bio-one"]
        add_account(db, "bio-two", industry="Biotech")
        launcher = await publish.start_launcher(time_env.client, plan, task_queue=worker)
        assert launcher is not None
        await launcher.result()
        assert entered(db, "daily") == ["bio-one", "bio-two"]
        found = journey_state.lifecycle(db, "daily", datetime.now(UTC))
        assert found is not None and found.state == "closed"
        for account in ("bio-one", "bio-two"):
            assert (await finish(time_env, "daily", account)).ended_at == "done"


class TestClose:
    """Closing takes nobody new; whoever is in the journey finishes it."""

    async def test_account_started_a_moment_before_keeps_running(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """An account whose start came just before the close runs to its end; publishing afterwards is refused and
        the launcher starts nobody."""
        plan = journey(tmp_path, "closing")
        add_account(db, "bio-one", industry="Biotech")
        summary = await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert summary.started == ["bio-one"]
        assert journey_state.close(db, "closing", "ann", "budget spent", datetime.now(UTC))
        assert await status(time_env, "closing", "bio-one") == WorkflowExecutionStatus.RUNNING
        add_account(db, "bio-two", industry="Biotech")
        later = await publish.launch(time_env.client, db, plan, task_queue=worker)
        assert (later.started, later.not_open) == ([], "journey 'closing' is closed")
        with pytest.raises(JourneyStateError, match="publish it under a new journey id"):
            await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert (await finish(time_env, "closing", "bio-one")).ended_at == "done"
        assert entered(db, "closing") == ["bio-one"]

    async def test_close_during_a_launch_starts_nobody_more(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A close while a large audience is being started: whoever started keeps running, nobody more starts."""
        monkeypatch.setattr(publish, "CONCURRENT_STARTS", 1)
        monkeypatch.setattr(publish, "ENTRY_RECHECK", 0.0)
        plan = journey(tmp_path, "busy")
        for account in ("bio-1", "bio-2", "bio-3"):
            add_account(db, account, industry="Biotech")

        def close_after_the_first(_: int) -> None:
            journey_state.close(db, "busy", "ann", "enough", datetime.now(UTC))

        summary = await publish.publish(time_env.client, db, plan, task_queue=worker, progress=close_after_the_first)
        assert (summary.started, summary.not_open) == (["bio-1"], "journey 'busy' is closed")
        assert await status(time_env, "busy", "bio-1") == WorkflowExecutionStatus.RUNNING
        assert (await finish(time_env, "busy", "bio-1")).ended_at == "done"

    async def test_add_to_journey_refused_by_a_closed_journey(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """add_to_journey into a closed journey takes the `not_live` branch and starts nobody there."""
        target = journey(tmp_path, "nurture")
        await publish.publish(time_env.client, db, target, task_queue=worker)
        journey_state.close(db, "nurture", "ann", None, datetime.now(UTC))
        source_path = tmp_path / "source.yaml"
        source_path.write_text(
            'journey: source\nname: Source\naudience:\n  accounts: "account.employees >= 1"\nstart: change\nnodes:\n'
            "  - id: change\n    type: add_to_journey\n    journey: nurture\n    next: done\n"
            "  - id: done\n    type: end\n"
        )
        source = compile_file(source_path)
        add_account(db, "bio-one", industry="Biotech")
        handle = await support.start(time_env.client, source, worker, "bio-one")
        assert (await handle.result()).ended_at == "done"
        with Session(db) as session:
            left = session.exec(
                select(ActivityEvent).where(ActivityEvent.type == "node_left", ActivityEvent.node_id == "change")
            ).one()
        assert left.payload["branch"] == "not_live"
        assert entered(db, "nurture") == []


class TestRescheduling:
    """On a real server (the time-skipping one stops skipping once a workflow holding a timer is terminated)."""

    async def test_start_moved_earlier_wakes_in_time(
        self, dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path
    ) -> None:
        """Publishing again with an earlier start replaces the sleeping launcher: entry opens at the new start."""
        task_queue = f"moved-{uuid.uuid4()}"
        journey_id = f"moved-{uuid.uuid4().hex[:6]}"
        client = dev_env.client
        now = datetime.now(UTC)
        add_account(db, "bio-one", industry="Biotech")
        async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
            first = journey(tmp_path, journey_id, f"schedule:\n  start: {iso(now + timedelta(days=20))}")
            await publish.publish(client, db, first, task_queue=task_queue)
            old = await publish.start_launcher(client, first, task_queue=task_queue)
            second = journey(tmp_path, journey_id, f"schedule:\n  start: {iso(now + timedelta(seconds=4))}")
            await publish.publish(client, db, second, task_queue=task_queue)
            new = await publish.start_launcher(client, second, task_queue=task_queue)
            assert old is not None and new is not None and new.result_run_id != old.result_run_id
            await asyncio.wait_for(new.result(), timeout=60)  # opens, starts the audience, nothing left to do
            replaced = client.get_workflow_handle(old.id, run_id=old.result_run_id)
            assert (await replaced.describe()).status == WorkflowExecutionStatus.TERMINATED
            assert entered(db, journey_id) == ["bio-one"]
            started = client.get_workflow_handle(temporal.workflow_id(journey_id, "bio-one"))
            assert (await started.describe()).status == WorkflowExecutionStatus.RUNNING
            await started.terminate("test over")
