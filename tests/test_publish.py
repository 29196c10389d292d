"""Publishing journeys and delivering events, against a real Temporal server and a real database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import WAIT_FOR_DEMO, add_account, add_person, wait_for_state, write_journey
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.db import ActivityEvent, utcnow
from engine.language.plan import Plan
from engine.runtime import events, publish, temporal
from engine.runtime.workers import running_worker
from engine.workflow.contracts import JourneyResult
from engine.workflow.launcher import LauncherInput

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def worker(time_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> AsyncIterator[str]:
    """A worker on a fresh task queue; the journeys a test leaves waiting are run to their end afterwards.

    (The time-skipping server stops skipping time for good once a workflow it holds a timer for is
    terminated, or has no worker left: so every journey is finished while its worker still runs.)
    """
    task_queue = f"test-{uuid.uuid4()}"
    async with running_worker(time_env.client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        yield task_queue
        with Session(db) as session:
            entries = session.exec(select(ActivityEvent).where(ActivityEvent.type == "journey_entered")).all()
            ids = {temporal.workflow_id(entry.journey_id or "", entry.account_id or "") for entry in entries}
        async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
            for workflow_id in ids:
                with contextlib.suppress(RPCError):
                    await time_env.client.get_workflow_handle(workflow_id).result()


def journey(tmp_path: Path, audience: str = "account.industry == 'Biotech'", extra: str = "") -> Plan:
    journey_id = f"pub-{uuid.uuid4().hex[:8]}"
    plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo", journey=journey_id)
    text = (tmp_path / f"{journey_id}.yaml").read_text()
    text = text.replace('accounts: "account.employees >= 1"', f'accounts: "{audience}"\n{extra}'.rstrip())
    (tmp_path / f"{journey_id}.yaml").write_text(text)
    from engine.language.compiler import compile_file

    plan = compile_file(tmp_path / f"{journey_id}.yaml")
    return plan


def seed(db: Engine) -> None:
    add_account(db, "bio-one", industry="Biotech")
    add_account(db, "bio-two", industry="Biotech")
    add_account(db, "retail-one", industry="Retail")
    add_person(db, "bio-one", "ada@bio-one.example", first_name="Ada")


class TestPublish:
    """Publishing starts each account of the audience once."""

    async def test_idempotent(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """The first publish starts the audience; the second starts nobody."""
        seed(db)
        plan = journey(tmp_path)
        first = await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert (first.in_audience, first.started, first.already_running) == (2, ["bio-one", "bio-two"], [])
        second = await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert (second.started, second.excluded_by_reentry) == ([], ["bio-one", "bio-two"])
        handle = time_env.client.get_workflow_handle(temporal.workflow_id(plan.journey, "bio-one"))
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    async def test_reentry_after(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """With `reentry: after 90d`, an account that entered long ago and finished may enter again."""
        seed(db)
        plan = journey(tmp_path, extra="  reentry: after 90d")
        with Session(db) as session:
            session.add(
                ActivityEvent(
                    key=f"old-entry-{plan.journey}",
                    type="journey_entered",
                    account_id="bio-one",
                    journey_id=plan.journey,
                    occurred_at=utcnow() - timedelta(days=100),
                )
            )
            session.add(
                ActivityEvent(
                    key=f"new-entry-{plan.journey}",
                    type="journey_entered",
                    account_id="bio-two",
                    journey_id=plan.journey,
                    occurred_at=utcnow() - timedelta(days=10),
                )
            )
            session.commit()
        summary = await publish.publish(time_env.client, db, plan, task_queue=worker)
        assert (summary.started, summary.excluded_by_reentry) == (["bio-one"], ["bio-two"])

    async def test_running_account_is_not_started_twice(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """An account whose journey is running is reported as already running, even without an entry record."""
        seed(db)
        plan = journey(tmp_path, extra="  reentry: after 1d")
        assert await publish.start_journey(time_env.client, db, plan, "bio-one", task_queue=worker)
        assert not await publish.start_journey(time_env.client, db, plan, "bio-one", task_queue=worker)

    def test_broken_journey_not_published(self) -> None:
        """`journey publish` of a broken journey prints its problems and exits 1 before touching Temporal."""
        broken = "tests/broken/18_unknown_next.yaml"
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", "publish", broken],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        )
        assert result.returncode == 1
        assert result.stderr.splitlines()[0].startswith(f"{broken}:20:11: node 'intro': next: unknown node")


class TestLauncher:
    """The audience refresh starts accounts that joined the audience since publishing."""

    async def test_refresh_starts_new_accounts(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """At its next wake-up the launcher starts an account added after publishing, with the latest
        version; a latest version without `refresh` ends the launcher."""
        seed(db)
        plan = journey(tmp_path, extra='  refresh: "0 * * * *"')
        await publish.publish(time_env.client, db, plan, task_queue=worker)
        add_account(db, "bio-three", industry="Biotech")
        without_refresh = plan.model_copy(update={"audience": plan.audience.model_copy(update={"refresh": None})})
        publish.store_version(db, without_refresh.with_version())
        # Started here rather than by publish.start_launcher: only handles made by this client's
        # start_workflow let the time-skipping server skip time while awaiting their result.
        launcher = await time_env.client.start_workflow(
            "JourneyLauncher",
            LauncherInput(journey_id=plan.journey, refresh="0 * * * *"),
            id=temporal.launcher_id(plan.journey),
            task_queue=worker,
        )
        await asyncio.wait_for(launcher.result(), timeout=60)
        assert not await publish.start_launcher(time_env.client, without_refresh, task_queue=worker)
        handle = time_env.client.get_workflow_handle(temporal.workflow_id(plan.journey, "bio-three"))
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        assert without_refresh.with_version().version.encode() in started.input.payloads[0].data


class TestEvents:
    """Events are stored first, matched to accounts and people, and delivered to running journeys."""

    async def test_delivered_to_running_journey(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """A recorded form fill reaches the account's journey, which takes `on_event`."""
        seed(db)
        plan = journey(tmp_path)
        await publish.publish(time_env.client, db, plan, task_queue=worker)
        handle = time_env.client.get_workflow_handle(
            temporal.workflow_id(plan.journey, "bio-one"), result_type=JourneyResult
        )
        await wait_for_state(handle, lambda state: state["listening"])
        recorded = events.record(db, "form_fill", "bio-one", "ada@bio-one.example", {"form": "demo-request"}, "evt-a")
        assert recorded.status == "accepted" and recorded.event.person is not None
        assert recorded.event.person["first_name"] == "Ada"
        assert await events.deliver(time_env.client, db, recorded.event) == [handle.id]
        assert (await handle.result()).ended_at == "converted"

    def test_unknown_account_kept_as_unmatched(self, db: Engine) -> None:
        """An event for an unknown account is stored as unmatched with the reason, not dropped."""
        recorded = events.record(db, "form_fill", "nobody", "x@nobody.example", {"form": "demo"}, "evt-u")
        assert (recorded.status, recorded.reason) == ("unmatched", "unknown account 'nobody'")
        with Session(db) as session:
            row = session.exec(select(ActivityEvent).where(ActivityEvent.key == "evt-u")).one()
            assert (row.status, row.reason, row.payload["account_id"]) == (
                "unmatched",
                "unknown account 'nobody'",
                "nobody",
            )

    def test_unknown_person_kept_as_unmatched(self, db: Engine) -> None:
        """A known account with an unknown person: stored, unmatched, the reason names the email."""
        seed(db)
        recorded = events.record(db, "web_visit", "bio-one", "new@bio-one.example", {"url": "/pricing"}, "evt-p")
        assert recorded.reason == "unknown person 'new@bio-one.example' in account 'bio-one'"

    def test_duplicate_stored_once(self, db: Engine) -> None:
        """The same event id twice: stored once, the second reported as a duplicate."""
        seed(db)
        assert events.record(db, "web_visit", "bio-one", None, {"url": "/a"}, "evt-d").status == "accepted"
        assert events.record(db, "web_visit", "bio-one", None, {"url": "/a"}, "evt-d").status == "duplicate"
        with Session(db) as session:
            assert len(session.exec(select(ActivityEvent).where(ActivityEvent.key == "evt-d")).all()) == 1


class TestEventCommand:
    """`journey event` tells the user what happened, with exit codes scripts can use."""

    def _run(self, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "JOURNEY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
        }
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", "event", *args], capture_output=True, text=True, cwd=REPO, env=env
        )

    def test_unknown_account(self, tmp_path: Path) -> None:
        """Unknown account: exit 1, the reason, and the event kept as unmatched."""
        result = self._run(tmp_path, "form-fill", "--account", "ghost", "--form", "demo", "--event-id", "e1")
        assert result.returncode == 1
        assert result.stderr == (
            "unmatched: unknown account 'ghost'; the event is stored as unmatched (id 'e1') and was not delivered\n"
        )
        again = self._run(tmp_path, "form-fill", "--account", "ghost", "--form", "demo", "--event-id", "e1")
        assert (again.returncode, again.stderr) == (
            0,
            "duplicate: event id 'e1' was already recorded; not delivered again\n",
        )

    def test_malformed_field(self, tmp_path: Path) -> None:
        """A --field without '=' is a usage error (exit 2) and stores nothing."""
        result = self._run(tmp_path, "form-fill", "--account", "a", "--form", "demo", "--field", "company")
        assert result.returncode == 2
        assert "'company' is not name=value" in result.stderr

    def test_form_needed(self, tmp_path: Path) -> None:
        """form-fill without --form is a usage error."""
        result = self._run(tmp_path, "form-fill", "--account", "a")
        assert result.returncode == 2
        assert "form-fill needs --form NAME" in result.stderr


class TestPeopleArriving:
    """A new email in a form fill or a person_added event becomes a person of the right account."""

    def test_person_added_by_domain(self, db: Engine) -> None:
        """No account named: the email's domain finds it; the person is created with the event's fields."""
        seed(db)
        recorded = events.record(
            db, "person_added", None, "new.cto@bio-one.example", {"first_name": "Nia", "job_title": "CTO"}, "evt-new"
        )
        assert (recorded.status, recorded.event.account_id) == ("accepted", "bio-one")
        assert recorded.event.person is not None
        assert (recorded.event.person["first_name"], recorded.event.person["job_title"]) == ("Nia", "CTO")

    def test_form_fill_creates_person(self, db: Engine) -> None:
        """A form fill from a new email on a known account creates the person from the form's fields."""
        seed(db)
        recorded = events.record(
            db,
            "form_fill",
            "bio-two",
            "lee@bio-two.example",
            {"form": "demo-request", "fields": {"job_title": "Staff Engineer"}},
            "evt-f",
        )
        assert recorded.status == "accepted"
        assert recorded.event.person is not None and recorded.event.person["job_title"] == "Staff Engineer"

    def test_unknown_domain(self, db: Engine) -> None:
        """No account and no matching domain: stored as unmatched, saying so."""
        seed(db)
        recorded = events.record(db, "person_added", None, "x@elsewhere.example", {}, "evt-x")
        assert (recorded.status, recorded.reason) == ("unmatched", "no account has the domain of 'x@elsewhere.example'")

    def test_web_visit_does_not_create(self, db: Engine) -> None:
        """Only person_added and form fills create people; a visit from an unknown email stays unmatched."""
        seed(db)
        assert events.record(db, "web_visit", "bio-one", "anon@bio-one.example", {}, "evt-v").status == "unmatched"
