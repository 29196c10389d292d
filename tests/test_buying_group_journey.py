"""A buying-group journey on the time-skipping server: people arrive over simulated weeks, the group's
completeness rises, and the account is handed to sales exactly when the threshold is crossed, once."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, add_person, start, step_times, time_skipping_env, wait_for_state, write_journey
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.buying_groups import BuyingGroupActivities
from activities.delivery import OutboxFileDelivery
from activities.scores import ScoresActivities
from engine.buying_groups import admin
from engine.cli import app
from engine.db import ActivityEvent, BuyingGroup, Handoff, JourneyVersion, Person
from engine.language.workspace import Workspace, load_workspace
from engine.runtime import publish
from engine.runtime.scores import schedule_scores
from engine.runtime.workers import running_worker
from engine.workflow.contracts import BuyingGroupRequest, JourneyEvent
from engine.workflow.scores import WORKFLOW_ID

BUYING_GROUPS = """\
role_templates:
  - id: trio
    roles:
      - role: decision_maker
        weight: vital
        when: "person.job_title is matching('(?i)\\\\bceo\\\\b')"
      - role: champion
        weight: important
        when: "'champion' in person.job_title | lower"
      - role: influencer
        weight: normal
        when: "'engineer' in person.job_title | lower"
solution_interests:
  - id: ai-seeds
    name: AI-based seeds
    role_template: trio
"""


def arrival(person: str) -> JourneyEvent:
    return JourneyEvent(
        type="person_added",
        event_id=f"added-{person}",
        account_id="acme-corp",
        email=person,
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture
async def own_env(db: Engine, tmp_path: Path) -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A time-skipping server of this test's own (0.1 s to start) with a worker: tests that skip time
    with env.sleep get one, since a manual sleep on the shared server can leave its clock held for the
    tests after it."""
    async with await time_skipping_env() as env:
        task_queue = f"own-{uuid.uuid4()}"
        async with running_worker(env.client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
            yield env, task_queue


async def test_handoff_when_threshold_crossed(
    own_env: tuple[WorkflowEnvironment, str], db: Engine, tmp_path: Path
) -> None:
    """33% -> 67% -> 100% over two weeks; the handoff follows the third person, once."""
    env, worker = own_env
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    plan = write_journey(
        tmp_path,
        """
        - id: assign
          type: assign_buying_group
          next: gate
        - id: gate
          type: wait_for_completeness
          threshold: 100
          timeout: 60d
          on_complete: handoff
          on_timeout: gave_up
        - id: handoff
          type: sales_handoff
          next: done
        - id: done
          type: end
        - id: gave_up
          type: end
    """,
        start="assign",
        header_extra="solution_interest: ai-seeds\n",
    )
    add_account(db, owner_email="owner@sales.example")
    add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
    handle = await start(env.client, plan, worker)
    state = await wait_for_state(handle, lambda state: state["listening"] and state["buying_group"] is not None)
    assert round(state["buying_group"]["completeness"], 1) == 33.3

    await env.sleep(timedelta(weeks=1))
    add_person(db, "acme-corp", "eng@acme-corp.example", first_name="Eli", job_title="Staff Engineer")
    await handle.signal("event", arrival("eng@acme-corp.example"))
    state = await wait_for_state(handle, lambda state: round(state["buying_group"]["completeness"], 1) == 66.7)
    assert state["position"] == "gate"

    await env.sleep(timedelta(weeks=1))
    add_person(db, "acme-corp", "champ@acme-corp.example", first_name="Cam", job_title="Internal Champion")
    await handle.signal("event", arrival("champ@acme-corp.example"))
    result = await handle.result()

    assert result.ended_at == "done"
    entered_gate = step_times(db, "gate", "node_entered")[0]
    handed_off = step_times(db, "handoff", "node_entered")[0]
    assert timedelta(weeks=2) <= handed_off - entered_gate < timedelta(weeks=2, days=1)
    with Session(db) as session:
        assert len(session.exec(select(Handoff)).all()) == 1
        group = session.exec(select(BuyingGroup)).one()
        assert (group.stage, round(group.completeness)) == ("sales_qualified", 100)
        handoffs = session.exec(select(ActivityEvent).where(ActivityEvent.type == "sales_handoff")).all()
        assert [event.node_id for event in handoffs] == ["handoff"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1  # the owner's summary, once

    # What sales and operators read afterwards.
    env = {"JOURNEY_DATABASE_URL": str(db.url)}
    report = CliRunner().invoke(app, ["buying-group", "acme-corp", "--journeys", str(tmp_path), "--json"], env=env)
    assert report.exit_code == 0, report.output
    (group,) = json.loads(report.output)
    assert (group["stage"], group["completeness"], group["missing_roles"]) == ("sales_qualified", 100, [])
    assert [(member["role"], member["name"]) for member in group["members"]] == [
        ("decision_maker", "Cleo"),
        ("champion", "Cam"),
        ("influencer", "Eli"),
    ]
    assert group["history"][-1]["what"] == f"handed to sales by journey '{plan.journey}'"
    listing = CliRunner().invoke(app, ["handoffs", "--json"], env=env)
    assert [(row["account"], row["solution_interest"]) for row in json.loads(listing.output)] == [
        ("acme-corp", "ai-seeds")
    ]


class _Crm(BaseHTTPRequestHandler):
    calls: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:  # http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls.append(self.headers.get("Idempotency-Key"))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


async def test_two_journeys_race_for_one_handoff(
    time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two journeys on one buying group reach sales_handoff together: one record, one email, one CRM call."""
    _Crm.calls = []
    crm = ThreadingHTTPServer(("127.0.0.1", 0), _Crm)
    threading.Thread(target=crm.serve_forever, daemon=True).start()
    monkeypatch.setenv("JOURNEY_CRM_WEBHOOK_URL", f"http://127.0.0.1:{crm.server_address[1]}/handoffs")
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    body = """
        - id: assign
          type: assign_buying_group
          next: handoff
        - id: handoff
          type: sales_handoff
          next: done
        - id: done
          type: end
    """
    plans = [
        write_journey(
            tmp_path, body, start="assign", journey=f"race-{side}", header_extra="solution_interest: ai-seeds\n"
        )
        for side in ("a", "b")
    ]
    add_account(db, owner_email="owner@sales.example")
    add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
    try:
        # No timers here: with time skipping on, a loaded machine's slow poll let the test server jump ten
        # years ahead while the handoff activity waited to be picked up, and the run timed out.
        with time_env.auto_time_skipping_disabled():
            handles = [await start(time_env.client, plan, worker) for plan in plans]
            results = await asyncio.gather(*(handle.result() for handle in handles))
    finally:
        crm.shutdown()
        crm.server_close()
    assert [result.ended_at for result in results] == ["done", "done"]
    with Session(db) as session:
        (handoff,) = session.exec(select(Handoff)).all()
        assert handoff.journey_id in ("race-a", "race-b")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    assert _Crm.calls == [f"handoff/{handoff.buying_group_id}"]


def _scored_group(db: Engine, tmp_path: Path) -> tuple[BuyingGroupActivities, int, float]:
    """A published one-node buying-group journey, Acme with its CEO, and the group scored once:
    (the activities, the CEO's person id, the group's engagement then)."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    body = "- id: assign\n  type: assign_buying_group\n  next: done\n- id: done\n  type: end"
    plan = write_journey(tmp_path, body, start="assign", header_extra="solution_interest: ai-seeds\n")
    publish.store_version(db, plan)
    add_account(db)
    ceo = add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
    assert plan.solution_interest is not None and plan.role_template is not None
    groups = BuyingGroupActivities(db, OutboxFileDelivery(tmp_path / "outbox"))
    request = BuyingGroupRequest(
        key="k",
        journey_id=plan.journey,
        account_id="acme-corp",
        solution_interest=plan.solution_interest,
        role_template=plan.role_template,
    )
    return groups, ceo, groups.sync(request).engagement


def test_scores_recompute(db: Engine, tmp_path: Path) -> None:
    """The recompute (scheduled or `journey scores recompute`) refreshes engagement from the event log,
    using the role template of the latest published journey of each group's solution interest."""
    groups, ceo, engagement = _scored_group(db, tmp_path)
    assert engagement == 0
    with Session(db) as session:
        for day in range(3):
            session.add(
                ActivityEvent(
                    key=f"visit-{day}",
                    type="web_visit",
                    account_id="acme-corp",
                    person_id=ceo,
                    occurred_at=datetime.now(UTC) - timedelta(days=day, hours=1),
                )
            )
        session.commit()
    result = ScoresActivities(db, groups).recompute_now()
    assert (result.groups, result.skipped) == (1, 0)
    with Session(db) as session:
        group = session.exec(select(BuyingGroup)).one()
        person = session.get(Person, ceo)
        assert person is not None and person.engagement_score > 0
        assert group.engagement > 0


class TestChangesByHand:
    """Assigning a role and moving a stage by hand, checked against the template and the stage model."""

    def _setup(self, db: Engine, tmp_path: Path) -> Workspace:
        (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
        add_account(db)
        add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
        add_person(db, "acme-corp", "sam@acme-corp.example", first_name="Sam", job_title="Sales Ops")
        return load_workspace(tmp_path)

    def _make_sam_champion(self, db: Engine, tmp_path: Path, workspace: Workspace) -> None:
        admin.assign_role(
            db,
            OutboxFileDelivery(tmp_path / "o"),
            workspace,
            "acme-corp",
            "ai-seeds",
            "sam@acme-corp.example",
            "champion",
        )

    def test_assign_role(self, db: Engine, tmp_path: Path) -> None:
        """A hand-assigned champion counts toward completeness and survives the rules."""
        workspace = self._setup(db, tmp_path)
        outbox = OutboxFileDelivery(tmp_path / "outbox")
        snapshot = admin.assign_role(
            db, outbox, workspace, "acme-corp", "ai-seeds", "sam@acme-corp.example", "champion"
        )
        assert round(snapshot.completeness, 1) == 66.7
        assert [(m.name, m.role, m.assigned_by) for m in snapshot.members] == [
            ("Cleo", "decision_maker", "rule"),
            ("Sam", "champion", "manual"),
        ]

    def test_unknown_role(self, db: Engine, tmp_path: Path) -> None:
        """A role the template lacks is refused, with a suggestion and the roles there are."""
        workspace = self._setup(db, tmp_path)
        with pytest.raises(admin.GroupChangeError) as raised:
            admin.assign_role(
                db,
                OutboxFileDelivery(tmp_path / "o"),
                workspace,
                "acme-corp",
                "ai-seeds",
                "sam@acme-corp.example",
                "champoin",
            )
        assert str(raised.value) == (
            "role template 'trio' has no role 'champoin' (did you mean 'champion'?) "
            "(roles: decision_maker, champion, influencer)"
        )

    def test_stage_moves(self, db: Engine, tmp_path: Path) -> None:
        """Allowed moves go through; a move out of the final success stage is refused, naming the rule."""
        workspace = self._setup(db, tmp_path)
        self._make_sam_champion(db, tmp_path, workspace)
        assert admin.move_stage(db, workspace, "acme-corp", "ai-seeds", "engaged") == "awareness"
        assert admin.move_stage(db, workspace, "acme-corp", "ai-seeds", "sales_qualified") == "engaged"
        with pytest.raises(admin.GroupChangeError) as raised:
            admin.move_stage(db, workspace, "acme-corp", "ai-seeds", "awareness")
        assert str(raised.value) == (
            "a buying group cannot move from 'sales_qualified' to 'awareness' (allowed: none: it is final)"
        )

    def test_move_stage_command(self, db: Engine, tmp_path: Path) -> None:
        """`journey move-stage` moves allowed stages (exit 0) and explains a refused move (exit 1)."""
        workspace = self._setup(db, tmp_path)
        self._make_sam_champion(db, tmp_path, workspace)
        env = {"JOURNEY_DATABASE_URL": str(db.url)}
        command = ["move-stage", "acme-corp", "--interest", "ai-seeds", "--journeys", str(tmp_path), "--to"]
        moved = CliRunner().invoke(app, [*command, "disqualified"], env=env)
        assert (moved.exit_code, moved.output) == (
            0,
            "acme-corp's ai-seeds group moved from awareness to disqualified\n",
        )
        refused = CliRunner().invoke(app, [*command, "engaged"], env=env)
        assert refused.exit_code == 1
        assert "cannot move from 'disqualified' to 'engaged' (allowed: awareness)" in refused.output


async def test_event_condition_on_role(time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
    """`person.role` in a wait_for_event condition is the person's role in the journey's buying group."""
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    plan = write_journey(
        tmp_path,
        """
        - id: assign
          type: assign_buying_group
          next: wait_dm
        - id: wait_dm
          type: wait_for_event
          event: form_fill
          where: "person.role == 'decision_maker'"
          timeout: 7d
          on_event: heard
          on_timeout: silent
        - id: heard
          type: end
        - id: silent
          type: end
    """,
        start="assign",
        header_extra="solution_interest: ai-seeds\n",
    )
    add_account(db)
    ceo = add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
    eng = add_person(db, "acme-corp", "eng@acme-corp.example", first_name="Eli", job_title="Engineer")
    handle = await start(time_env.client, plan, worker)
    await wait_for_state(handle, lambda state: state["listening"])
    for person_id, email in ((eng, "eng@acme-corp.example"), (ceo, "ceo@acme-corp.example")):
        await handle.signal(
            "event",
            JourneyEvent(
                type="form_fill",
                event_id=f"f-{person_id}",
                account_id="acme-corp",
                email=email,
                person={"id": person_id, "email": email},
                payload={"form": "demo"},
                occurred_at=datetime.now(UTC),
            ),
        )
    result = await handle.result()
    assert result.ended_at == "heard"


async def test_scores_workflow_wakes_on_cron(
    own_env: tuple[WorkflowEnvironment, str], db: Engine, tmp_path: Path
) -> None:
    """The journey-scores workflow sleeps to its cron time and recomputes the groups' engagement then.

    It never ends, so it runs on a time-skipping server of its own rather than the shared one.
    """
    env, task_queue = own_env
    _, ceo, _ = _scored_group(db, tmp_path)
    with Session(db) as session:
        session.add(
            ActivityEvent(
                key="visit",
                type="web_visit",
                account_id="acme-corp",
                person_id=ceo,
                occurred_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        session.commit()
    await schedule_scores(env.client, "0 3 * * *", task_queue)
    await env.sleep(timedelta(days=1, hours=1))
    history = await env.client.get_workflow_handle(WORKFLOW_ID).fetch_history()
    completed = [event for event in history.events if event.HasField("activity_task_completed_event_attributes")]
    assert len(completed) >= 1
    with Session(db) as session:
        assert session.exec(select(BuyingGroup)).one().engagement > 0


def test_buying_group_report_uses_the_template_in_force(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from any folder, `journey buying-group` names the missing roles of the published journey's
    template (it said 'none' outside the project folder); with no template anywhere it refuses, saying why."""
    _scored_group(db, tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    env = {"JOURNEY_DATABASE_URL": str(db.url)}
    here = CliRunner().invoke(app, ["buying-group", "acme-corp", "--json"], env=env)
    assert here.exit_code == 0, here.output
    beside = CliRunner().invoke(
        app, ["buying-group", "acme-corp", "--journeys", str(tmp_path / "project"), "--json"], env=env
    )
    (group,) = json.loads(here.output)
    assert group["missing_roles"] and json.loads(beside.output) == json.loads(here.output)
    with Session(db) as session:
        for version in session.exec(select(JourneyVersion)).all():
            session.delete(version)
        session.commit()
    refused = CliRunner().invoke(app, ["buying-group", "acme-corp"], env=env)
    assert refused.exit_code == 1
    assert "no published journey works on solution interest 'ai-seeds'" in refused.output
