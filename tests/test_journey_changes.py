"""add_to_journey and remove_from_journey on the time-skipping server with the real activities, on SQLite (and on
PostgreSQL where the database's answers matter): every branch, the rows both journeys' event logs get, exactly once
across retried activities, and the example journeys/customer_welcome.yaml run against the other example journeys."""

from __future__ import annotations

import shutil
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
import support
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, start, wait_for_state
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.analytics import page
from engine.analytics.nodes import NodeCount
from engine.db import ActivityEvent, JourneyAccount
from engine.language import journey_refs
from engine.language.compiler import compile_file
from engine.language.errors import JourneyInvalidError
from engine.language.model import JourneyFile
from engine.language.plan import Plan
from engine.language.render import node_summary
from engine.runtime import journey_changes, publish, temporal
from engine.runtime.journey_changes import ADDED_BY, JourneyChangeActivities, cancel_update_id
from engine.runtime.workers import running_worker
from engine.workflow import details
from engine.workflow.contracts import JourneySettings
from engine.workflow.journey_contracts import AddOutcome, AddToJourneyRequest, RemoveFromJourneyRequest, RemoveOutcome

REPO = Path(__file__).resolve().parent.parent
MOMENT = datetime(2026, 1, 1, tzinfo=UTC)
NURTURE = """\
journey: nurture
name: Nurture
audience:
  accounts: "account.employees >= 100"
  reentry: {reentry}
start: linger
nodes:
  - id: linger
    type: wait
    duration: 30d
    next: done
  - id: done
    type: end
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def journeys(folder: Path, node: str, reentry: str = "never") -> tuple[Plan, Plan]:
    """(source, nurture): the source journey runs `node` (one node, then an end) on the nurture journey."""
    nurture = compile_file(write(folder, "nurture", NURTURE.format(reentry=reentry)))
    source = (
        'journey: source\nname: Source\naudience:\n  accounts: "account.employees >= 1"\nstart: change\nnodes:\n'
        + "  - id: change\n"
        + textwrap.indent(node.strip("\n"), "    ")
        + "\n    next: done\n  - id: done\n    type: end\n"
    )
    return compile_file(write(folder, "source", source)), nurture


ADD = "type: add_to_journey\njourney: nurture"
REMOVE = "type: remove_from_journey\njourney: nurture\nreason: asked for a demo"


@pytest.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server per test: the other journey's runs a test leaves waiting would hold the next test's
    clock still once their timers fire (their worker is gone)."""
    async with await support.time_skipping_env() as env:
        yield env


@pytest.fixture
async def any_worker(time_env: WorkflowEnvironment, engine: Engine, tmp_path: Path) -> AsyncIterator[str]:
    """A worker on the `engine` database (SQLite, then PostgreSQL): for the tests where the database's answers
    matter (entry times, the rows found again by a retried attempt)."""
    task_queue = f"changes-{uuid.uuid4()}"
    async with running_worker(time_env.client, engine, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        yield task_queue


def new_account(db: Engine, **fields: Any) -> str:
    """A fresh account id per test, so no test finds another's runs by their workflow ids."""
    account = f"acme-{uuid.uuid4().hex[:8]}"
    add_account(db, account, **fields)
    return account


def rows(db: Engine, type_: str, journey: str) -> list[ActivityEvent]:
    with Session(db) as session:
        query = select(ActivityEvent).where(ActivityEvent.type == type_, ActivityEvent.journey_id == journey)
        return list(session.exec(query.order_by(col(ActivityEvent.id))).all())


def branch(db: Engine, journey: str, node: str) -> str | None:
    [left] = [row for row in rows(db, "node_left", journey) if row.node_id == node]
    branch: str | None = left.payload["branch"]
    return branch


async def run(time_env: WorkflowEnvironment, worker: str, plan: Plan, account: str) -> Any:
    handle = await start(time_env.client, plan, worker, account)
    return await handle.result()


async def finish(time_env: WorkflowEnvironment, journey: str, account: str) -> Any:
    """The result of the account's run of `journey`, its timers skipped (a handle not started by this client does
    not skip time by itself)."""
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        return await time_env.client.get_workflow_handle(temporal.workflow_id(journey, account)).result()


async def describe(time_env: WorkflowEnvironment, journey: str, account: str) -> Any:
    return await time_env.client.get_workflow_handle(temporal.workflow_id(journey, account)).describe()


class TestAddToJourney:
    """The account enters the other journey's latest published version when its audience and re-entry rule let
    it in; otherwise the branch says why. The account goes on to `next` either way."""

    async def test_added(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """The nurture journey starts for the account, with a journey_entered row saying who added it."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, ADD)
        publish.store_version(db, nurture)
        result = await run(time_env, worker, source, account)
        assert (result.ended_at, branch(db, "source", "change")) == ("done", "added")
        started = await describe(time_env, "nurture", account)
        assert (await started.memo())["version"] == nurture.version
        [entered] = rows(db, "journey_entered", "nurture")
        assert entered.account_id == account
        assert entered.payload == {
            "version": nurture.version,
            "by": "journey 'source' node 'change'",
            "from_journey": "source",
            "from_node": "change",
        }
        with Session(db) as session:
            assert session.get(JourneyAccount, ("nurture", account)) is not None  # its events reach it

    async def test_latest_published_version(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Of two published versions, the one published last starts."""
        account = new_account(db)
        source, older = journeys(tmp_path, ADD)
        publish.store_version(db, older)
        newer = compile_file(write(tmp_path, "nurture", NURTURE.format(reentry="after 30d")))
        publish.store_version(db, newer)
        await run(time_env, worker, source, account)
        assert (
            (await (await describe(time_env, "nurture", account)).memo())["version"] == newer.version != older.version
        )

    async def test_not_live(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """A journey never published starts nobody: the branch is not_live and the account goes on."""
        account = new_account(db)
        source, _ = journeys(tmp_path, ADD)
        result = await run(time_env, worker, source, account)
        assert (result.ended_at, branch(db, "source", "change")) == ("done", "not_live")
        assert rows(db, "journey_entered", "nurture") == []

    async def test_not_in_audience(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """An account the other journey's audience leaves out is not started there."""
        account = new_account(db, employees=20)
        source, nurture = journeys(tmp_path, ADD)
        publish.store_version(db, nurture)
        await run(time_env, worker, source, account)
        assert branch(db, "source", "change") == "not_in_audience"
        assert rows(db, "journey_entered", "nurture") == []

    async def test_already_in(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """An account already running the other journey keeps its run."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, ADD)
        publish.store_version(db, nurture)
        assert await publish.start_journey(time_env.client, db, nurture, account, task_queue=worker)
        before = (await describe(time_env, "nurture", account)).run_id
        await run(time_env, worker, source, account)
        assert branch(db, "source", "change") == "already_in"
        assert (await describe(time_env, "nurture", account)).run_id == before

    async def test_reentry_not_allowed(
        self, time_env: WorkflowEnvironment, any_worker: str, engine: Engine, tmp_path: Path
    ) -> None:
        """An account that entered before a `reentry: never` journey and finished it does not enter again."""
        account = new_account(engine)
        source, nurture = journeys(tmp_path, ADD)
        publish.store_version(engine, nurture)
        assert await publish.start_journey(time_env.client, engine, nurture, account, task_queue=any_worker)
        first = (await describe(time_env, "nurture", account)).run_id
        await finish(time_env, "nurture", account)  # the 30-day wait, skipped
        await run(time_env, any_worker, source, account)
        assert branch(engine, "source", "change") == "reentry_not_allowed"
        assert (await describe(time_env, "nurture", account)).run_id == first

    async def test_reentry_after_the_window(
        self, time_env: WorkflowEnvironment, any_worker: str, engine: Engine, tmp_path: Path
    ) -> None:
        """With `reentry: after 7d`, an account that entered 30 days ago enters again."""
        account = new_account(engine)
        source, nurture = journeys(tmp_path, ADD, reentry="after 7d")
        publish.store_version(engine, nurture)
        assert await publish.start_journey(time_env.client, engine, nurture, account, task_queue=any_worker)
        await finish(time_env, "nurture", account)
        with Session(engine) as session:  # the first entry's row, dated as it was in the skipped time
            [entered] = session.exec(select(ActivityEvent).where(ActivityEvent.type == "journey_entered")).all()
            entered.occurred_at = await time_env.get_current_time() - timedelta(days=30)
            session.add(entered)
            session.commit()
        await run(time_env, any_worker, source, account)
        assert branch(engine, "source", "change") == "added"
        assert len(rows(engine, "journey_entered", "nurture")) == 2


class TestRemoveFromJourney:
    """The account's run of the other journey is cancelled as an operator's cancel would be; an account not in
    it goes on with not_in_journey."""

    async def test_removed(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """The other run ends 'cancelled by journey ... node ...: reason', with an operator_action row."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, REMOVE)
        assert await publish.start_journey(time_env.client, db, nurture, account, task_queue=worker)
        result = await run(time_env, worker, source, account)
        assert (result.ended_at, branch(db, "source", "change")) == ("done", "removed")
        ended = await finish(time_env, "nurture", account)
        assert ended["ended_at"] == "cancelled by journey 'source' node 'change': asked for a demo"
        [action] = rows(db, "operator_action", "nurture")
        assert (action.node_id, action.payload) == (
            "linger",
            {"action": "cancel", "by": "journey 'source' node 'change'", "reason": "asked for a demo"},
        )
        assert branch(db, "nurture", "linger") == "cancelled"

    async def test_not_in_journey(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """Never started there: not_in_journey, and the account goes on."""
        account = new_account(db)
        source, _ = journeys(tmp_path, REMOVE)
        result = await run(time_env, worker, source, account)
        assert (result.ended_at, branch(db, "source", "change")) == ("done", "not_in_journey")

    async def test_finished_already(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """A run that has ended is left as it ended: not_in_journey, no operator_action row."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, REMOVE)
        assert await publish.start_journey(time_env.client, db, nurture, account, task_queue=worker)
        await finish(time_env, "nurture", account)
        await run(time_env, worker, source, account)
        assert branch(db, "source", "change") == "not_in_journey"
        assert rows(db, "operator_action", "nurture") == []


class TestExactlyOnce:
    """A retried attempt (the same node visit's key) finds what an earlier attempt did instead of doing it again."""

    async def test_add_retried(
        self, time_env: WorkflowEnvironment, any_worker: str, engine: Engine, tmp_path: Path
    ) -> None:
        """The second attempt answers added for the run the first started: one run, one journey_entered row."""
        account = new_account(engine)
        _, nurture = journeys(tmp_path, ADD)
        publish.store_version(engine, nurture)
        changes = JourneyChangeActivities(time_env.client, engine, any_worker)
        request = AddToJourneyRequest(
            key=f"journey/source/{account}/run-1/change/1",
            journey_id="source",
            account_id=account,
            node_id="change",
            target="nurture",
            settings=JourneySettings(),
            occurred_at=await time_env.get_current_time(),
        )
        first = await ActivityEnvironment().run(changes.add_to_journey, request)
        run_id = (await describe(time_env, "nurture", account)).run_id
        again = await ActivityEnvironment().run(changes.add_to_journey, request)
        assert (first.outcome, again.outcome) == ("added", "added")
        found = await describe(time_env, "nurture", account)
        assert (found.run_id, (await found.memo())[ADDED_BY]) == (run_id, request.key)
        assert len(rows(engine, "journey_entered", "nurture")) == 1
        with Session(engine) as session:  # as if the first attempt died between the start and its row
            session.delete(session.get(ActivityEvent, rows(engine, "journey_entered", "nurture")[0].id))
            session.commit()
        third = await ActivityEnvironment().run(changes.add_to_journey, request)
        assert (third.outcome, (await describe(time_env, "nurture", account)).run_id) == ("added", run_id)
        assert len(rows(engine, "journey_entered", "nurture")) == 1
        other_visit = request.model_copy(update={"key": f"journey/source/{account}/run-1/change/2"})
        assert (await ActivityEnvironment().run(changes.add_to_journey, other_visit)).outcome == "already_in"

    async def test_remove_retried(
        self, time_env: WorkflowEnvironment, any_worker: str, engine: Engine, tmp_path: Path
    ) -> None:
        """The second attempt finds the cancel the first made logged under its update id: removed, logged once."""
        account = new_account(engine)
        _, nurture = journeys(tmp_path, REMOVE)
        assert await publish.start_journey(time_env.client, engine, nurture, account, task_queue=any_worker)
        other = time_env.client.get_workflow_handle(temporal.workflow_id("nurture", account))
        await wait_for_state(other, lambda state: state.get("position") == "linger")  # its update handlers are up
        changes = JourneyChangeActivities(time_env.client, engine, any_worker)
        request = RemoveFromJourneyRequest(
            key=f"journey/source/{account}/run-1/change/1",
            journey_id="source",
            account_id=account,
            node_id="change",
            target="nurture",
            reason="asked for a demo",
        )
        first = await ActivityEnvironment().run(changes.remove_from_journey, request)
        await finish(time_env, "nurture", account)
        again = await ActivityEnvironment().run(changes.remove_from_journey, request)
        assert (first.outcome, first.node, again.outcome, again.node) == ("removed", "linger", "removed", "linger")
        [action] = rows(engine, "operator_action", "nurture")
        assert action.key.endswith("/operator/" + cancel_update_id(request.key))
        assert len(action.key) <= 255

    async def test_attempt_dies_after_the_start(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The worker retries an attempt that failed after starting the run: the account is added once, logged once."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, ADD)
        publish.store_version(db, nurture)
        original = JourneyChangeActivities._record_entry
        failures: list[str] = []

        def dies_once(self: JourneyChangeActivities, request: AddToJourneyRequest, version: str) -> None:
            if not failures:
                failures.append(request.key)
                raise ConnectionError("database went away after the start")
            original(self, request, version)

        monkeypatch.setattr(JourneyChangeActivities, "_record_entry", dies_once)
        await run(time_env, worker, source, account)
        assert len(failures) == 1
        assert branch(db, "source", "change") == "added"
        assert len(rows(db, "journey_entered", "nurture")) == 1

    async def test_attempt_dies_after_the_cancel(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The worker retries an attempt that failed after its cancel was taken: removed (not not_in_journey), and
        the other journey logs one cancel."""
        account = new_account(db)
        source, nurture = journeys(tmp_path, REMOVE)
        assert await publish.start_journey(time_env.client, db, nurture, account, task_queue=worker)
        failures: list[str] = []

        class DiesOnce:
            def info(self, event: str, **fields: Any) -> None:
                if event == "removed from journey" and not failures:
                    failures.append(event)
                    raise ConnectionError("worker lost its connection after the cancel")

        monkeypatch.setattr(journey_changes, "log", DiesOnce())
        await run(time_env, worker, source, account)
        assert (failures, branch(db, "source", "change")) == (["removed from journey"], "removed")
        assert len(rows(db, "operator_action", "nurture")) == 1

    def test_update_id_is_short_and_stable(self) -> None:
        """The longest keys still give an operator_action key that fits the event log's 255 characters."""
        longest = f"journey/{'j' * 64}/{'a' * 64}/{'r' * 36}/{'n' * 64}/9999"
        update_id = cancel_update_id(longest)
        assert update_id == cancel_update_id(longest) != cancel_update_id(longest + "0")
        assert len(f"~journey/{'j' * 64}/{'a' * 64}/{'r' * 36}/operator/{update_id}") <= 255


class TestExampleJourney:
    """journeys/customer_welcome.yaml against the other examples: a new customer leaves the win-back emails and is
    added to the newsletter; it was in no buying-group nurture."""

    async def test_customer_welcome(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """re-engagement cancelled with the reason, buying-group-nurture not_in_journey, newsletter added."""
        shutil.copytree(REPO / "journeys", tmp_path / "journeys")
        folder = tmp_path / "journeys"
        account = new_account(db, attributes={"last_engaged_days": 120, "lifecycle_stage": "customer"})
        welcome = compile_file(folder / "customer_welcome.yaml")
        win_back = compile_file(folder / "re_engagement.yaml")
        newsletter = compile_file(folder / "newsletter_ab_test.yaml")
        publish.store_version(db, newsletter)
        settings = JourneySettings(send_window_ignored=True)
        assert await publish.start_journey(time_env.client, db, win_back, account, settings, worker)
        result = await (await start(time_env.client, welcome, worker, account, settings=settings)).result()
        assert result.ended_at == "done"
        left = [(row.node_id, row.payload["branch"]) for row in rows(db, "node_left", "customer-welcome")]
        assert left == [
            ("stop_win_back", "removed"),
            ("stop_nurture", "not_in_journey"),
            ("newsletter", "added"),
            ("done", "end"),
        ]
        [action] = rows(db, "operator_action", "re-engagement")
        assert action.payload["by"] == "journey 'customer-welcome' node 'stop_win_back'"
        assert action.payload["reason"] == "the account became a customer"
        [entered] = rows(db, "journey_entered", "newsletter-ab-test")
        assert entered.payload["by"] == "journey 'customer-welcome' node 'newsletter'"
        found = await describe(time_env, "newsletter-ab-test", account)
        assert found.status in (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.COMPLETED)


class TestShown:
    """What `journey show`, the graph, the Temporal UI and the editors' JSON Schema say about the two nodes."""

    def test_summaries_and_details(self, tmp_path: Path) -> None:
        """One line for the table and graph; the UI's details say what happens to the other journey and why."""
        source, _ = journeys(tmp_path, REMOVE)
        node = source.nodes["change"]
        assert node_summary(node) == "remove from 'nurture' (asked for a demo)"
        text = details.current_details(source, node, MOMENT, waiting="working")
        assert "Cancels the account's run of journey **nurture**" in text
        assert "by journey 'source' node 'change': asked for a demo" in text
        added, _ = journeys(tmp_path, ADD)
        assert node_summary(added.nodes["change"]) == "add to 'nurture'"
        assert "latest published version" in details.current_details(
            added, added.nodes["change"], MOMENT, waiting="working"
        )

    def test_branches_in_analytics(self) -> None:
        """The answers the event log shows are the contracts' outcomes, and the nodes page counts them on `next`."""
        assert {
            "add_to_journey": get_args(AddOutcome),
            "remove_from_journey": get_args(RemoveOutcome),
        } == journey_refs.OUTCOMES
        left = {"added": 2, "already_in": 1, "cancelled": 1}  # cancelled: an operator ended the journey there
        count = NodeCount(node="change", type="add_to_journey", entered=4, entries=4, now=0, left=left)
        assert page._exits(count, "next") == 3

    def test_schema(self) -> None:
        """Both nodes are in the JSON Schema generated from the model, with their required keys."""
        schema = JourneyFile.model_json_schema(mode="validation")
        definitions = schema["$defs"]
        assert definitions["RemoveFromJourney"]["required"] == ["id", "type", "journey", "reason", "next"]
        assert definitions["AddToJourney"]["properties"]["journey"]["pattern"] == "^[a-z0-9][a-z0-9-]*$"


@pytest.mark.parametrize("node", [ADD, REMOVE])
def test_target_must_be_in_the_folder(tmp_path: Path, node: str) -> None:
    """The compiler knows the folder's journeys: a target found only elsewhere is refused."""
    journeys(tmp_path, node)
    (tmp_path / "nurture.yaml").unlink()
    with pytest.raises(JourneyInvalidError, match="unknown journey 'nurture'"):
        compile_file(tmp_path / "source.yaml")
