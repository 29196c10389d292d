"""people_split: person-level paths inside an account. The language (schema, summaries, operator details), the
activities against SQLite and PostgreSQL (each person's path decided once, each change made once however often an
activity is retried), and the node on the time-skipping server with a real SMTP server: emails only to a path's
people, roles and fields set, the rows analytics count, and the example journey."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import SmtpInbox, add_account, add_person, start, step_times, steps, wait_for_state, write_journey
from temporalio.testing import WorkflowEnvironment

from activities.buying_groups import BuyingGroupActivities
from activities.delivery import SmtpDelivery
from activities.people import PeopleActivities
from engine.analytics.selectors import parse_selector
from engine.db import Account, ActivityEvent, BuyingGroupMember, OutboxMessage, Person
from engine.dev.demo_data import load_demo_data
from engine.language import render
from engine.language.compiler import compile_file
from engine.language.model import JourneyFile, PeopleSplit, RoleTemplate, SolutionInterest
from engine.workflow import details, people_details
from engine.workflow.contracts import BuyingGroupRequest, OperatorRequest, OperatorResult
from engine.workflow.people_contracts import AssignPeopleRoleRequest, RoutePeopleRequest, UpdatePeopleRequest

REPO = Path(__file__).resolve().parent.parent
BUYING_GROUPS = """\
role_templates:
  - id: duo
    roles:
      - role: decision_maker
        weight: vital
        when: "person.job_title is matching('(?i)\\\\bceo\\\\b')"
      - role: champion
        weight: important
        when: "'champion' in person.job_title | lower"
solution_interests:
  - id: ai-seeds
    name: AI-based seeds
    role_template: duo
"""
TEMPLATES = {
    "emails/lead.html.j2": "<p>Hi {{ person.first_name }} ({{ person.role }}), {{ account.name }}.</p>\n",
    "emails/lead.txt.j2": "Hi {{ person.first_name }} ({{ person.role }}), {{ account.name }}.\n",
}
SPLIT = """
- id: assign
  type: assign_buying_group
  next: by_person
- id: by_person
  type: people_split
  paths:
    - name: leaders
      when: "person.role == 'decision_maker'"
      steps:
        - type: send_email
          subject: "For {{ person.first_name }}"
          template: emails/lead.html.j2
        - type: update_person
          set: {track: leaders, seniority: executive}
    - name: engineers
      when: "'engineer' in (person.job_title or '') | lower"
      steps:
        - type: assign_role
          role: champion
  otherwise:
    steps:
      - type: update_person
        set: {track: general}
  next: done
- id: done
  type: end
"""


def journey(folder: Path, body: str = SPLIT, header: str = "") -> Any:
    (folder / "buying_groups.yaml").write_text(BUYING_GROUPS)
    header = "solution_interest: ai-seeds\n" + header
    return write_journey(folder, body, "assign", templates=TEMPLATES, header_extra=header)


def people(db: Engine) -> dict[str, int]:
    add_account(db)
    return {
        "ceo": add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO"),
        "eng": add_person(db, "acme-corp", "eng@acme-corp.example", first_name="Eli", job_title="Staff Engineer"),
        "ops": add_person(db, "acme-corp", "ops@acme-corp.example", first_name="Olu", job_title="Operations"),
        "cfo": add_person(
            db, "acme-corp", "cfo@acme-corp.example", first_name="Fay", job_title="CEO", unsubscribed=True
        ),
    }


def rows(db: Engine, type_: str) -> list[ActivityEvent]:
    with Session(db) as session:
        query = select(ActivityEvent).where(ActivityEvent.type == type_).order_by(col(ActivityEvent.person_id))
        return list(session.exec(query))


def person(db: Engine, person_id: int) -> Person:
    with Session(db) as session:
        found = session.get(Person, person_id)
        assert found is not None
        session.expunge(found)
        return found


class TestLanguage:
    """The node's schema, summary and what the operator reads while it runs."""

    def test_schema(self) -> None:
        """The JSON Schema editors use knows people_split, its paths' limits and the three step types."""
        schema = JourneyFile.model_json_schema(mode="validation")
        split = schema["$defs"]["PeopleSplit"]
        assert (split["properties"]["paths"]["minItems"], split["properties"]["paths"]["maxItems"]) == (1, 20)
        steps_schema = schema["$defs"]["PeoplePath"]["properties"]["steps"]
        assert set(steps_schema["items"]["discriminator"]["mapping"]) == {"send_email", "assign_role", "update_person"}

    def test_summary_and_details(self, tmp_path: Path) -> None:
        """`journey show` lists each path's steps; the UI counts people per path and names the running step."""
        node = journey(tmp_path).nodes["by_person"]
        assert isinstance(node, PeopleSplit)
        assert render.node_summary(node) == (
            "per person: leaders → email 'lead', set track=leaders, seniority=executive · engineers → make champion"
            " · otherwise → set track=general"
        )
        assert details.rests(node) is True
        assert people_details.progress(node, [[1], [2, 3], []], 0, (1, 0)) == (
            "People routed: leaders 1 · engineers 2 · otherwise 0 (3 in all).\n\n"
            "Now: path 'engineers' step 1 of 1: make champion for 2 people."
        )


def group_request(db: Engine, key: str = "wf/run/by_person/1") -> BuyingGroupRequest:
    template = RoleTemplate.model_validate(
        {"id": "duo", "roles": [{"role": "decision_maker", "when": "false"}, {"role": "champion", "when": "false"}]}
    )
    return BuyingGroupRequest(
        key=key,
        journey_id="test-journey",
        account_id="acme-corp",
        node_id="by_person",
        solution_interest=SolutionInterest(id="ai-seeds", name="AI seeds", role_template="duo"),
        role_template=template,
    )


class TestActivities:
    """Each decision and change is made once per node visit, step and person, on SQLite and PostgreSQL."""

    def route_request(self, **changes: Any) -> RoutePeopleRequest:
        values: dict[str, Any] = {
            "key": "wf/run/by_person/1",
            "journey_id": "test-journey",
            "version": "v1",
            "account_id": "acme-corp",
            "node_id": "by_person",
            "visit": 1,
            "whens": ["person.job_title == 'CEO'", "'engineer' in person.job_title | lower"],
            "names": ["leaders", "engineers", "otherwise"],
            "occurred_at": datetime(2026, 1, 5, tzinfo=UTC),
        }
        return RoutePeopleRequest(**{**values, **changes})

    def test_route_decides_once(self, engine: Engine) -> None:
        """A person matches the first path that holds; a retry after a change returns the recorded decision."""
        ids = people(engine)
        activities = PeopleActivities(engine, BuyingGroupActivities(engine, SmtpDelivery("smtp://localhost:1")))
        first = activities._route(self.route_request())
        assert first.people == [[ids["ceo"], ids["cfo"]], [ids["eng"]], [ids["ops"]]]
        with Session(engine) as session:
            row = session.get(Person, ids["ops"])
            assert row is not None
            row.job_title = "Engineer"
            session.add(row)
            session.commit()
        assert activities._route(self.route_request()) == first
        recorded = rows(engine, "person_path")
        assert [(row.person_id, row.payload["path"], row.journey_id, row.node_id) for row in recorded] == [
            (ids["ceo"], "leaders", "test-journey", "by_person"),
            (ids["eng"], "engineers", "test-journey", "by_person"),
            (ids["ops"], "otherwise", "test-journey", "by_person"),
            (ids["cfo"], "leaders", "test-journey", "by_person"),
        ]
        selector = parse_selector("person_path where event.path == 'leaders'")  # what analytics count
        with Session(engine) as session:
            leaders = session.exec(select(func.count()).select_from(ActivityEvent).where(selector.condition())).one()
        assert (selector.in_sql, leaders) == (True, 2)
        second_visit = activities._route(self.route_request(key="wf/run/by_person/2", visit=2))
        assert second_visit.people == [[ids["ceo"], ids["cfo"]], [ids["eng"], ids["ops"]], []]

    def test_update_and_assign_once(self, engine: Engine) -> None:
        """update_people and assign_people_role, run twice with one key, change and record each person once."""
        ids = people(engine)
        groups = BuyingGroupActivities(engine, SmtpDelivery("smtp://localhost:1"))
        activities = PeopleActivities(engine, groups)
        update = UpdatePeopleRequest(
            key="wf/run/by_person/1/0/1",
            journey_id="test-journey",
            account_id="acme-corp",
            node_id="by_person",
            people=[ids["ceo"], ids["eng"]],
            set={"seniority": "executive", "track": "leaders"},
            occurred_at=datetime(2026, 1, 5, tzinfo=UTC),
        )
        assert activities._update(update).updated == [ids["ceo"], ids["eng"]]
        assert activities._update(update).updated == [ids["ceo"], ids["eng"]]
        changed = rows(engine, "person_updated")
        assert [(row.person_id, row.payload["changes"], row.journey_id) for row in changed] == [
            (
                ids[name],
                {"seniority": {"old": None, "new": "executive"}, "track": {"old": None, "new": "leaders"}},
                None,
            )
            for name in ("ceo", "eng")
        ]
        assert (person(engine, ids["ceo"]).seniority, person(engine, ids["ceo"]).attributes) == (
            "executive",
            {"track": "leaders"},
        )
        assign = AssignPeopleRoleRequest(
            group=group_request(engine),
            key="wf/run/by_person/1/1/0",
            people=[ids["eng"], ids["ops"]],
            role="champion",
            occurred_at=datetime(2026, 1, 5, tzinfo=UTC),
        )
        result = activities._assign_role(assign)
        assert activities._assign_role(assign).assigned == result.assigned == [ids["eng"], ids["ops"]]
        assert sorted((m.person_id, m.role) for m in result.snapshot.members) == [
            (ids["eng"], "champion"),
            (ids["ops"], "champion"),
        ]
        with Session(engine) as session:
            members = session.exec(select(BuyingGroupMember).order_by(col(BuyingGroupMember.person_id))).all()
            assert [(m.person_id, m.role, m.assigned_by) for m in members] == [
                (ids["eng"], "champion", "manual"),
                (ids["ops"], "champion", "manual"),
            ]
        assigned = rows(engine, "member_assigned")
        assert [(row.person_id, row.payload["role"], row.payload["node"]) for row in assigned] == [
            (ids["eng"], "champion", "by_person"),
            (ids["ops"], "champion", "by_person"),
        ]


class TestWorkflow:
    """The node on the time-skipping server, with the real activities, SQLite and a real SMTP server."""

    async def test_paths_run_for_their_people(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Leaders get the email (not the unsubscribed one) and their fields; engineers become champions;
        everyone else is tagged; one person_path row each; the account leaves by `next`."""
        ids = people(db)
        plan = journey(tmp_path)
        handle = await start(time_env.client, plan, mail_worker[0])
        result = await handle.result()
        assert (result.ended_at, result.emails_sent) == ("done", 1)
        inbox = mail_worker[1]
        sent = [(to, message_from_bytes(raw, policy=policy.default)["Subject"]) for to, raw in inbox.messages]
        assert sent == [(["ceo@acme-corp.example"], "For Cleo")]
        paths = {row.person_id: row.payload["path"] for row in rows(db, "person_path")}
        assert paths == {ids["ceo"]: "leaders", ids["cfo"]: "leaders", ids["eng"]: "engineers", ids["ops"]: "otherwise"}
        assert Counter(paths.values()) == {"leaders": 2, "engineers": 1, "otherwise": 1}
        assert person(db, ids["ceo"]).attributes == {"track": "leaders"}
        assert person(db, ids["cfo"]).seniority == "executive"  # unsubscribed: no email, still updated
        assert person(db, ids["ops"]).attributes == {"track": "general"}
        assert person(db, ids["eng"]).attributes == {}
        with Session(db) as session:
            roles = {m.person_id: (m.role, m.assigned_by) for m in session.exec(select(BuyingGroupMember))}
            outbox = session.exec(select(OutboxMessage)).all()
        assert roles[ids["eng"]] == ("champion", "manual")
        # The outbox key: node visit / path / step / person.
        assert [row.idempotency_key.rsplit("/", 5)[1:] for row in outbox] == [
            ["by_person", "1", "0", "0", str(ids["ceo"])]
        ]
        assert ("node_left", "by_person", "next") in steps(db)
        state = await handle.query("state")
        assert state["buying_group"]["completeness"] == 100.0

    async def test_email_waits_for_send_window(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """A path's email waits for the journey's send window in the account's time zone, as send_email does."""
        people(db)
        with Session(db) as session:
            account = session.get(Account, "acme-corp")
            assert account is not None
            account.timezone = "America/Chicago"
            session.add(account)
            session.commit()
        plan = journey(tmp_path, header='send_window: "* 9-10 * * 3"\n')
        result = await (await start(time_env.client, plan, mail_worker[0])).result()
        assert result.emails_sent == 1
        left = step_times(db, "by_person", "node_left")[0].replace(tzinfo=UTC)
        local = left.astimezone(ZoneInfo("America/Chicago"))
        assert local.weekday() == 2 and 9 <= local.hour <= 10

    async def test_operator_skip_stops_between_steps(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Skipped while the first email waits for the send window: no email, no later step, the skip's branch."""
        people(db)
        # Open only on 29 February: closed whatever time earlier tests skipped the server to.
        plan = journey(tmp_path, header='send_window: "* 3 29 2 *"\n')
        handle = await start(time_env.client, plan, mail_worker[0])
        await wait_for_state(handle, lambda state: state["position"] == "by_person")
        await asyncio.sleep(0.5)  # the routing activity runs, then the email step waits for the window
        request = OperatorRequest(by="ops@example.com", reason="wrong audience", to="done")
        answer = await handle.execute_update("skip", request, result_type=OperatorResult)
        assert answer.node == "by_person"
        result = await handle.result()
        assert (result.ended_at, result.emails_sent) == ("done", 0)
        assert ("node_left", "by_person", "operator_skip") in steps(db)
        assert len(rows(db, "person_path")) == 4  # decided before the skip
        assert rows(db, "person_updated") == rows(db, "member_assigned") == []
        assert mail_worker[1].messages == []

    async def test_example_journey(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine
    ) -> None:
        """journeys/persona_tracks.yaml runs for the demo account: every path takes someone, leaders and builders
        get their own email, and the account goes on to wait for a demo request."""
        load_demo_data(db, REPO / "journeys", accounts=5)
        plan = compile_file(REPO / "journeys" / "persona_tracks.yaml")
        handle = await start(time_env.client, plan, mail_worker[0])
        result = await handle.result()
        assert result.ended_at == "done"
        taken = Counter(row.payload["path"] for row in rows(db, "person_path") if row.account_id == "acme-corp")
        assert set(taken) == {"leaders", "builders", "otherwise"}
        subjects = {message_from_bytes(raw, policy=policy.default)["Subject"] for _, raw in mail_worker[1].messages}
        assert subjects == {"Acme Corp: the AI seed brief for leaders"} | {
            subject for subject in subjects if subject.startswith("Hands-on with AI-based seeds")
        }
        assert any(subject.startswith("Hands-on") for subject in subjects)
        assert result.emails_sent == len(mail_worker[1].messages)
