"""wait_for_change: the language (shape, checks with located messages, summaries), which events count as the change,
and the node on the time-skipping server with the real activities: an account change signalled or made by another
journey's update_account through the relay, a person placed in the buying group by role rules, a threshold read on
entry and re-read on events, the timeout path, and the event log's node_left row saying what changed."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, add_person, start, wait_for_state, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.accounts import AccountActivities
from activities.buying_groups import BuyingGroupActivities
from activities.delivery import OutboxFileDelivery
from engine.buying_groups import admin, scoring
from engine.db import ActivityEvent
from engine.language.errors import JourneyInvalidError
from engine.language.model import EVENT_TYPES, GROUP_CHANGES, Change, JourneyFile
from engine.language.render import node_summary
from engine.language.workspace import load_workspace
from engine.runtime import publish, temporal
from engine.service.relay import Relay, TemporalLink
from engine.workflow import change_match, details
from engine.workflow.contracts import BuyingGroupRequest, JourneyEvent, JourneyResult, UpdateAccountRequest

BUYING_GROUPS = """\
role_templates:
  - id: duo
    roles:
      - role: decision_maker
        when: "person.job_title is matching('(?i)\\\\bceo\\\\b')"
      - role: champion
        when: "'champion' in person.job_title | lower"
solution_interests:
  - id: ai-seeds
    name: AI-based seeds
    role_template: duo
"""
WITH_INTEREST = "solution_interest: ai-seeds\n"
ENDS = """
- id: changed
  type: end
- id: timed_out
  type: end
"""


def watcher(folder: Path, change: str, journey: str = "watcher", timeout: str = "7d", interest: bool = True) -> Any:
    """A journey whose first node waits for `change` (YAML flow mapping), then ends at 'changed' or 'timed_out'."""
    (folder / "buying_groups.yaml").parent.mkdir(parents=True, exist_ok=True)
    (folder / "buying_groups.yaml").write_text(BUYING_GROUPS)
    body = f"""
- id: watch
  type: wait_for_change
  change: {change}
  timeout: {timeout}
  on_change: changed
  on_timeout: timed_out
{ENDS}"""
    return write_journey(folder, body, "watch", journey=journey, header_extra=WITH_INTEREST if interest else "")


def event(type_: str, payload: dict[str, Any], email: str | None = None) -> JourneyEvent:
    return JourneyEvent(
        type=type_,
        event_id=f"e-{uuid.uuid4().hex[:8]}",
        account_id="acme-corp",
        email=email,
        payload=payload,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def stage_change(old: Any, new: Any, field: str = "crm_stage") -> JourneyEvent:
    return event("account_updated", {"changes": {field: {"old": old, "new": new}}})


def left(db: Engine, node: str = "watch") -> dict[str, Any]:
    with Session(db) as session:
        row = session.exec(
            select(ActivityEvent).where(ActivityEvent.type == "node_left", ActivityEvent.node_id == node)
        ).one()
        return dict(row.payload)


def problems(folder: Path, change: str, interest: bool = True) -> list[str]:
    with pytest.raises(JourneyInvalidError) as raised:
        watcher(folder, change, interest=interest)
    return [issue.message for issue in raised.value.issues]


class TestLanguage:
    """The node's shape and checks: each mistake named at its key, with what is allowed."""

    def test_summaries_and_what_operators_read(self, tmp_path: Path) -> None:
        """`journey show`, the graph and JourneyWaitingFor say what the account waits for."""
        plan = watcher(tmp_path, "{account: attributes.crm_stage, to: Opportunity}")
        node = plan.nodes["watch"]
        assert node_summary(node) == "wait 1w for account.attributes.crm_stage -> 'Opportunity'"
        assert details.waiting_for(node) == "change account.attributes.crm_stage -> 'Opportunity'"
        assert [(edge.label, edge.target) for edge in plan.edges["watch"]] == [
            ("on_change", "changed"),
            ("on_timeout", "timed_out"),
        ]
        shown = details.current_details(plan, node, datetime(2026, 1, 1, tzinfo=UTC), waiting="x")
        assert "changes this journey made itself do not count" in shown
        assert "on_timeout (2026-01-08 00:00 UTC) → timed_out" in shown

    @pytest.mark.parametrize(
        ("change", "described"),
        [
            ({"account": "industry"}, "any change of account.industry"),
            ({"person": "job_title", "to": "CTO"}, "person.job_title -> 'CTO'"),
            ({"buying_group": "completeness", "at_least": 60}, "buying_group.completeness >= 60"),
            ({"buying_group": "member_added", "role": "champion"}, "a champion added to the buying group"),
            ({"buying_group": "member_removed"}, "a person removed from the buying group"),
        ],
    )
    def test_describe(self, change: dict[str, Any], described: str) -> None:
        """Each kind of change reads as a marketer would say it."""
        assert Change(**change).describe() == described

    def test_json_schema_comes_from_the_model(self) -> None:
        """Editors complete the node and its buying-group changes from `journey schema`."""
        schema = JourneyFile.model_json_schema(mode="validation")
        assert schema["$defs"]["WaitForChange"]["required"] == [
            "id",
            "type",
            "change",
            "timeout",
            "on_change",
            "on_timeout",
        ]
        assert schema["$defs"]["Change"]["properties"]["buying_group"]["enum"] == list(GROUP_CHANGES)

    def test_unknown_field_lists_the_known_ones(self, tmp_path: Path) -> None:
        [message] = problems(tmp_path, "{account: industy}")
        assert message.startswith("change.account: unknown account field 'industy' (did you mean 'industry'?)")
        assert "or attributes.<name> for an imported attribute" in message

    def test_to_is_type_checked(self, tmp_path: Path) -> None:
        assert problems(tmp_path, "{account: employees, to: many}") == [
            "change.to: account.employees is a whole number, got 'many'"
        ]
        assert problems(tmp_path, "{person: unsubscribed, to: 1}") == [
            "change.to: person.unsubscribed is true or false, got 1"
        ]

    def test_group_changes_need_an_interest(self, tmp_path: Path) -> None:
        assert problems(tmp_path, "{buying_group: stage}", interest=False) == [
            "change.buying_group: 'stage' is a buying group change: give the journey a 'solution_interest'"
        ]

    def test_the_documented_example_compiles(self, tmp_path: Path) -> None:
        """docs/language.md's wait_for_change example is a valid journey."""
        docs = (Path(__file__).resolve().parents[1] / "docs" / "language.md").read_text()
        section = docs.split("### wait_for_change\n", 1)[1]
        snippet = section.split("```yaml\n", 1)[1].split("```", 1)[0]
        ends = "".join(f"- id: {name}\n  type: end\n" for name in ("evaluating", "alert", "done"))
        (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
        plan = write_journey(tmp_path, textwrap.dedent(snippet) + ends, "wait_opportunity", header_extra=WITH_INTEREST)
        assert [node.type for node in plan.nodes.values()][:3] == ["wait_for_change"] * 3

    def test_custom_attribute_of_the_journey_is_known(self, tmp_path: Path) -> None:
        """An attribute the journey's update_account sets is a field like the built-in ones."""
        (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
        body = (
            """
- id: mark
  type: update_account
  set: {nurture_stage: warm}
  next: watch
- id: watch
  type: wait_for_change
  change: {account: nurture_stage, to: hot}
  timeout: 7d
  on_change: changed
  on_timeout: timed_out
"""
            + ENDS
        )
        plan = write_journey(tmp_path, body, "mark", header_extra=WITH_INTEREST)
        assert plan.nodes["watch"].change.account == "nurture_stage"


class TestMatch:
    """Which events are the awaited change, in plain functions of the node and the event."""

    def test_account_field_to_a_value(self) -> None:
        change = Change(account="attributes.crm_stage", to="Opportunity")
        assert change_match.changed(change, stage_change("Lead", "Qualified"), "j", None) is None
        assert change_match.changed(change, stage_change("Lead", "Opportunity", "other"), "j", None) is None
        assert (
            change_match.changed(change, stage_change("Lead", "Opportunity"), "j", None)
            == "account.attributes.crm_stage 'Lead' -> 'Opportunity'"
        )

    def test_numbers_compare_as_numbers_but_true_is_not_one(self) -> None:
        revenue = Change(account="annual_revenue", to=5000000)
        assert change_match.changed(revenue, stage_change(1.0, 5000000.0, "annual_revenue"), "j", None)
        flag = Change(person="unsubscribed", to=True)
        updated = event("person_updated", {"changes": {"unsubscribed": {"old": False, "new": 1}}}, "a@acme.example")
        assert change_match.changed(flag, updated, "j", None) is None

    def test_own_journey_and_other_interest_do_not_count(self) -> None:
        change = Change(buying_group="stage")
        moved = {"changes": {"stage": {"old": "awareness", "new": "engaged"}}, "solution_interest": "ai-seeds"}
        assert (
            change_match.changed(change, event("buying_group_updated", {**moved, "journey": "j"}), "j", "ai-seeds")
            is None
        )
        assert change_match.changed(change, event("buying_group_updated", moved), "j", "irrigation") is None
        assert change_match.changed(change, event("buying_group_updated", moved), "j", "ai-seeds") == (
            "buying_group.stage 'awareness' -> 'engaged'"
        )

    def test_member_role(self) -> None:
        change = Change(buying_group="member_added", role="champion")
        added = event("member_added", {"role": "influencer", "solution_interest": "ai-seeds"}, "i@acme.example")
        assert change_match.changed(change, added, "j", "ai-seeds") is None
        by_hand = event("member_assigned", {"role": "champion"}, "c@acme.example")
        assert change_match.changed(change, by_hand, "j", "ai-seeds") == "'c@acme.example' added as 'champion'"

    def test_long_values_are_cut(self) -> None:
        what = change_match.changed(Change(account="industry"), stage_change("a", "x" * 5000, "industry"), "j", None)
        assert what is not None and len(what) < 200

    def test_engagement_rechecks_on_every_scored_event(self) -> None:
        """The events that move engagement are exactly those scoring weighs, plus people and roles."""
        assert frozenset(scoring.DEFAULT_WEIGHTS) == change_match.ENGAGEMENT_EVENTS
        change = Change(buying_group="engagement", at_least=40)
        assert change_match.rechecks(change, event("email_click", {}), "j")
        assert not change_match.rechecks(change, event("account_updated", {}), "j")
        assert not change_match.rechecks(Change(buying_group="completeness", at_least=40), event("web_visit", {}), "j")

    def test_branch_round_trip(self) -> None:
        assert change_match.split_branch(change_match.branch("x -> y")) == ("on_change", "x -> y")
        assert change_match.split_branch("on_timeout") == ("on_timeout", None)


async def listening(handle: Any) -> None:
    await wait_for_state(handle, lambda state: bool(state.get("listening")))


class TestWorkflow:
    """The node on the time-skipping server with the real activities and a SQLite database."""

    async def test_signalled_change_takes_on_change(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Other changes are ignored; the awaited one moves the account on and the event log says what changed."""
        add_account(db)
        plan = watcher(tmp_path, "{account: attributes.crm_stage, to: Opportunity}", interest=False)
        handle = await start(time_env.client, plan, worker)
        await listening(handle)
        await handle.signal("event", stage_change("Lead", "Qualified"))
        await handle.signal("event", stage_change("Qualified", "Opportunity"))
        assert (await handle.result()).ended_at == "changed"
        assert left(db) == {
            "version": plan.version,
            "node_type": "wait_for_change",
            "visit": 1,
            "branch": "on_change",
            "changed": "account.attributes.crm_stage 'Qualified' -> 'Opportunity'",
        }

    async def test_no_change_times_out(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        add_account(db)
        plan = watcher(tmp_path, "{person: job_title}", interest=False)
        handle = await start(time_env.client, plan, worker)
        await listening(handle)
        await handle.signal("event", stage_change("a", "b", "job_title"))  # an account's field, not a person's
        assert (await handle.result()).ended_at == "timed_out"
        assert left(db)["branch"] == "on_timeout"

    async def test_threshold_met_on_entry_and_after_a_change(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Completeness is read on entry; below the threshold, a new person re-reads it (no polling)."""
        add_account(db)
        add_person(db, "acme-corp", "ceo@acme-corp.example", job_title="CEO")
        plan = watcher(tmp_path, "{buying_group: completeness, at_least: 100}")
        handle = await start(time_env.client, plan, worker)
        state = await wait_for_state(handle, lambda state: bool(state.get("buying_group")))
        assert state["buying_group"]["completeness"] == 50
        person = add_person(db, "acme-corp", "champ@acme-corp.example", job_title="Champion of AI")
        await handle.signal("event", event("web_visit", {"url": "/"}))  # cannot change completeness: no re-read
        await handle.signal("event", event("person_added", {}, "champ@acme-corp.example"))
        assert (await handle.result()).ended_at == "changed"
        assert left(db)["changed"] == "buying_group.completeness 100.0 >= 100"
        with Session(db) as session:
            placed = session.exec(select(ActivityEvent).where(ActivityEvent.type == "member_added")).all()
        assert sorted((row.email, row.payload["role"]) for row in placed) == [
            ("ceo@acme-corp.example", "decision_maker"),
            ("champ@acme-corp.example", "champion"),
        ]
        assert {row.person_id for row in placed} >= {person}

        again = await start(time_env.client, plan, worker)  # already complete: on_change at once
        assert (await again.result()).ended_at == "changed"


async def relay_round(client: Client, db: Engine) -> int:
    async def connect() -> Client:
        return client

    return await Relay(db, TemporalLink(connect), EVENT_TYPES).deliver_pending()


class TestThroughTheRelay:
    """Changes recorded by the engine reach waiting accounts through the relay, as in production."""

    async def test_another_journeys_update_account_reaches_the_watcher(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """update_account's account_updated reaches the account's other journeys, not the journey that made it."""
        add_account(db)
        suffix = uuid.uuid4().hex[:6]
        plan = watcher(tmp_path / "w", "{account: attributes.crm_stage, to: Opportunity}", f"watch-{suffix}", "3d")
        writer = write_journey(
            tmp_path / "u",
            """
- id: mark
  type: update_account
  set: {crm_stage: Opportunity}
  next: watch
- id: watch
  type: wait_for_change
  change: {account: crm_stage}
  timeout: 3d
  on_change: changed
  on_timeout: timed_out
"""
            + ENDS,
            "mark",
            journey=f"write-{suffix}",
        )
        assert await publish.start_journey(time_env.client, db, plan, "acme-corp", task_queue=worker)
        watching = time_env.client.get_workflow_handle(
            temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult
        )
        await listening(watching)
        with Session(db) as session:  # a journey's own change recorded before such rows were shared: never sent late
            session.add(
                ActivityEvent(
                    key="before-sharing", type="account_updated", account_id="acme-corp", journey_id="older",
                    node_id="mark", payload={"crm_stage": "Opportunity"},
                )
            )  # fmt: skip
            session.commit()
        assert await publish.start_journey(time_env.client, db, writer, "acme-corp", task_queue=worker)
        writing = time_env.client.get_workflow_handle(
            temporal.workflow_id(writer.journey, "acme-corp"), result_type=JourneyResult
        )
        await listening(writing)
        with Session(db) as session:
            [row] = session.exec(
                select(ActivityEvent).where(
                    ActivityEvent.type == "account_updated", ActivityEvent.key != "before-sharing"
                )
            ).all()
        assert row.payload["changes"] == {"crm_stage": {"old": None, "new": "Opportunity"}}
        assert row.shared is True
        assert await relay_round(time_env.client, db) >= 1
        with Session(db) as session:
            older = session.exec(select(ActivityEvent).where(ActivityEvent.key == "before-sharing")).one()
        assert older.delivered_at is None
        assert (await watching.result()).ended_at == "changed"
        # The journey that made the change was not told of it: it changed the account before it waited.
        state = await writing.query("state")
        assert (state["position"], state["seen_event_ids"]) == ("watch", [])

    async def test_rule_placement_reaches_a_member_added_wait(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """A person the role rules place (here by another journey's read of the group) is recorded once and heard."""
        add_account(db)
        plan = watcher(tmp_path, "{buying_group: member_added, role: champion}", f"members-{uuid.uuid4().hex[:6]}")
        assert await publish.start_journey(time_env.client, db, plan, "acme-corp", task_queue=worker)
        handle = time_env.client.get_workflow_handle(
            temporal.workflow_id(plan.journey, "acme-corp"), result_type=JourneyResult
        )
        await listening(handle)
        add_person(db, "acme-corp", "ceo@acme-corp.example", job_title="CEO")
        add_person(db, "acme-corp", "champ@acme-corp.example", job_title="Champion")
        groups = BuyingGroupActivities(db, OutboxFileDelivery(tmp_path / "outbox"))
        request = BuyingGroupRequest(
            key="other/run/assign/1",
            journey_id="other",
            account_id="acme-corp",
            node_id="assign",
            solution_interest=plan.solution_interest,
            role_template=plan.role_template,
            stages=plan.stages,
        )
        groups.sync(request)
        groups.sync(request)  # a retry places nobody again and records nothing twice
        with Session(db) as session:
            rows = session.exec(
                select(ActivityEvent).where(ActivityEvent.type == "member_added").order_by(col(ActivityEvent.id))
            ).all()
        assert [(row.email, row.payload["role"], row.payload["journey"]) for row in rows] == [
            ("ceo@acme-corp.example", "decision_maker", "other"),
            ("champ@acme-corp.example", "champion", "other"),
        ]
        assert await relay_round(time_env.client, db) == 2
        assert (await handle.result()).ended_at == "changed"
        assert left(db)["changed"] == "'champ@acme-corp.example' added as 'champion'"


class TestRecordedOnce:
    """The change events a wait_for_change hears are written once, on SQLite and PostgreSQL, however often retried."""

    def test_rule_placement_records_member_added_once(self, engine: Engine, tmp_path: Path) -> None:
        add_account(engine)
        add_person(engine, "acme-corp", "champ@acme-corp.example", job_title="Champion")
        plan = watcher(tmp_path, "{buying_group: member_added}")
        groups = BuyingGroupActivities(engine, OutboxFileDelivery(tmp_path / "outbox"))
        request = BuyingGroupRequest(
            key="wf/run/assign/1",
            journey_id="nurture",
            account_id="acme-corp",
            node_id="assign",
            solution_interest=plan.solution_interest,
            role_template=plan.role_template,
            stages=plan.stages,
        )
        for _ in range(3):  # the first attempt, a retry and another journey's later read
            groups.sync(request)
        with Session(engine) as session:
            rows = session.exec(select(ActivityEvent).where(ActivityEvent.type == "member_added")).all()
        assert [(row.email, row.journey_id, row.payload["role"], row.payload["node"]) for row in rows] == [
            ("champ@acme-corp.example", None, "champion", "assign")
        ]

    def test_update_account_records_what_changed_once(self, engine: Engine) -> None:
        add_account(engine, employees=120)
        accounts = AccountActivities(engine)
        request = UpdateAccountRequest(
            key="wf/run/mark/1/update",
            journey_id="writer",
            account_id="acme-corp",
            node_id="mark",
            set={"crm_stage": "Opportunity", "industry": "Biotech"},
            add={"employees": 5},
            occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        accounts._update(request)
        accounts._update(request)  # a retry changes and records nothing again
        with Session(engine) as session:
            [row] = session.exec(select(ActivityEvent).where(ActivityEvent.type == "account_updated")).all()
        assert row.journey_id == "writer"  # analytics still see whose change it was; the relay skips that journey
        assert row.payload["changes"] == {
            "crm_stage": {"old": None, "new": "Opportunity"},
            "industry": {"old": "Agriculture", "new": "Biotech"},
            "employees": {"old": 120, "new": 125},
        }

    def test_a_stage_moved_by_hand_is_heard(self, engine: Engine, tmp_path: Path) -> None:
        """`journey move-stage` records buying_group_updated, which a wait_for_change on the stage takes."""
        add_account(engine)
        plan = watcher(tmp_path, "{buying_group: stage, to: engaged}")
        workspace = load_workspace(tmp_path)
        BuyingGroupActivities(engine, OutboxFileDelivery(tmp_path / "outbox")).sync(
            admin.request_for(workspace, "acme-corp", "ai-seeds")
        )
        assert admin.move_stage(engine, workspace, "acme-corp", "ai-seeds", "engaged") == "awareness"
        with Session(engine) as session:
            [row] = session.exec(select(ActivityEvent).where(ActivityEvent.type == "buying_group_updated")).all()
        heard = event("buying_group_updated", row.payload)
        assert change_match.changed(plan.nodes["watch"].change, heard, plan.journey, "ai-seeds") == (
            "buying_group.stage 'awareness' -> 'engaged'"
        )
