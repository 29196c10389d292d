"""update_buying_group, remove_from_buying_group and sales_alert on the time-skipping server, with the real
activities, a SQLite database and a real SMTP server: each node and branch, the stage checked against the
stage model, the alert sent exactly once across an activity retry, and the change events the engine records."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from structlog.testing import capture_logs
from support import SmtpInbox, add_account, add_person, start, write_journey
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities import sales_alert
from activities.delivery import SmtpDelivery
from engine.buying_groups import report
from engine.cli.app import app
from engine.db import ActivityEvent, BuyingGroup, BuyingGroupMember, BuyingGroupRemoval, OutboxMessage
from engine.language.errors import JourneyInvalidError
from engine.language.render import node_summary
from engine.language.workspace import load_workspace
from engine.runtime.workers import running_worker
from engine.workflow import details
from engine.workflow.group_contracts import SalesAlertRequest, SalesAlertResult

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
        members_required: 2
        weight: normal
        when: "'engineer' in person.job_title | lower"
solution_interests:
  - id: ai-seeds
    name: AI-based seeds
    role_template: trio
"""
WITH_INTEREST = "solution_interest: ai-seeds\n"
ALERT = {
    "emails/alert.html.j2": (
        "<p>{{ account.name }} is {{ buying_group.stage }} ({{ buying_group.status }}),"
        " {{ buying_group.members | length }} members.</p>\n"
    ),
    "emails/alert.txt.j2": "{{ account.name }} is {{ buying_group.stage }} ({{ buying_group.status }})\n",
}
PLAIN_ALERT = {"emails/plain.html.j2": "<p>{{ account.name }} ({{ journey.name }}) asked for a demo.</p>\n"}


def journey(folder: Path, body: str, start_at: str = "assign", **options: Any) -> Any:
    (folder / "buying_groups.yaml").write_text(options.pop("buying_groups", BUYING_GROUPS))
    return write_journey(folder, body, start_at, header_extra=options.pop("header_extra", WITH_INTEREST), **options)


def people(db: Engine) -> None:
    add_account(db, owner_email="owner@sales.example")
    add_person(db, "acme-corp", "ceo@acme-corp.example", first_name="Cleo", job_title="CEO")
    add_person(db, "acme-corp", "eng@acme-corp.example", first_name="Eli", job_title="Staff Engineer")
    add_person(db, "acme-corp", "arch@acme-corp.example", first_name="Ada", job_title="Engineer, platform")


def group_row(db: Engine) -> BuyingGroup:
    with Session(db) as session:
        group = session.exec(select(BuyingGroup)).one()
        session.expunge(group)
        return group


def events(db: Engine, type_: str) -> list[ActivityEvent]:
    with Session(db) as session:
        rows = session.exec(select(ActivityEvent).where(ActivityEvent.type == type_).order_by(col(ActivityEvent.id)))
        return [row for row in rows]


def messages(inbox: SmtpInbox) -> list[tuple[list[str], Any]]:
    return [(to, message_from_bytes(raw, policy=policy.default)) for to, raw in inbox.messages]


def buying_group_cli(db: Engine, folder: Path) -> str:
    """What `journey buying-group acme-corp` prints."""
    shown = CliRunner().invoke(
        app, ["buying-group", "acme-corp", "--journeys", str(folder)], env={"JOURNEY_DATABASE_URL": str(db.url)}
    )
    assert shown.exit_code == 0, shown.output
    return " ".join(shown.output.split())


async def failure(handle: Any) -> tuple[str | None, str]:
    """(error type, message) of the workflow's failure."""
    with pytest.raises(WorkflowFailureError) as raised:
        await handle.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type, cause.message


class TestUpdateBuyingGroup:
    """The stage moves as the stage model allows, the status is set, and each change is recorded once."""

    async def test_moves_stage_and_sets_status(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """awareness -> engaged with a status, then the status alone; two buying_group_updated events."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: engaged
            - id: engaged
              type: update_buying_group
              stage: engaged
              status: "Demo booked"
              next: note
            - id: note
              type: update_buying_group
              status: "Pricing sent"
              next: done
            - id: done
              type: end
            """,
        )
        handle = await start(time_env.client, plan, mail_worker[0])
        result = await handle.result()
        assert result.ended_at == "done"
        group = group_row(db)
        assert (group.stage, group.status) == ("engaged", "Pricing sent")
        updates = events(db, "buying_group_updated")
        assert [event.payload["changes"] for event in updates] == [
            {"stage": {"old": "awareness", "new": "engaged"}, "status": {"old": None, "new": "Demo booked"}},
            {"status": {"old": "Demo booked", "new": "Pricing sent"}},
        ]
        assert [(event.payload["journey"], event.payload["node"], event.journey_id) for event in updates] == [
            (plan.journey, "engaged", None),
            (plan.journey, "note", None),
        ]
        state = await handle.query("state")
        assert (state["buying_group"]["stage"], state["buying_group"]["status"]) == ("engaged", "Pricing sent")

        shown = buying_group_cli(db, tmp_path)
        assert "stage engaged · status Pricing sent ·" in shown
        assert "stage awareness -> engaged by journey" in shown
        assert "status Demo booked -> Pricing sent by journey" in shown

    async def test_same_stage_is_no_change(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Moving to the stage the group is in is allowed and records nothing."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: stay
            - id: stay
              type: update_buying_group
              stage: awareness
              next: done
              on_not_allowed: refused
            - id: done
              type: end
            - id: refused
              type: end
            """,
        )
        result = await (await start(time_env.client, plan, mail_worker[0])).result()
        assert result.ended_at == "done"
        assert events(db, "buying_group_updated") == []

    async def test_refused_move_takes_on_not_allowed(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """A handed-off group (final stage) cannot go back to engaged: on_not_allowed, nothing changed."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: won
            - id: won
              type: update_buying_group
              stage: sales_qualified
              next: back
            - id: back
              type: update_buying_group
              stage: engaged
              status: "Back to nurture"
              next: done
              on_not_allowed: refused
            - id: done
              type: end
            - id: refused
              type: end
            """,
        )
        result = await (await start(time_env.client, plan, mail_worker[0])).result()
        assert result.ended_at == "refused"
        group = group_row(db)
        assert (group.stage, group.status) == ("sales_qualified", None)
        assert len(events(db, "buying_group_updated")) == 1

    async def test_refused_move_without_branch_fails_the_account(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Without on_not_allowed the account fails with a message naming the node and the allowed moves."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: lost
            - id: lost
              type: update_buying_group
              stage: no_interest
              next: evaluating
            - id: evaluating
              type: update_buying_group
              stage: evaluating
              next: done
            - id: done
              type: end
            """,
        )
        kind, message = await failure(await start(time_env.client, plan, mail_worker[0]))
        assert kind == "StageNotAllowed"
        assert message == (
            f"journey '{plan.journey}' account 'acme-corp' node 'evaluating': a buying group cannot move from "
            "'no_interest' to 'evaluating' (allowed: awareness) (give the node an on_not_allowed branch to go on "
            "instead)"
        )
        assert group_row(db).stage == "no_interest"

    async def test_custom_stage_model(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Stages come from the workspace's model: its own names compile and its transitions decide at run time."""
        people(db)
        stages = (
            "stages:\n  entry: [new]\n  progress: [working]\n  success: won\n  failure: [lost]\n"
            "  transitions: {new: [working, lost], working: [won, lost], lost: [new]}\n"
        )
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: working
            - id: working
              type: update_buying_group
              stage: working
              next: skip_back
            - id: skip_back
              type: update_buying_group
              stage: new
              next: done
              on_not_allowed: refused
            - id: done
              type: end
            - id: refused
              type: end
            """,
            buying_groups=BUYING_GROUPS + stages,
        )
        result = await (await start(time_env.client, plan, mail_worker[0])).result()
        assert (result.ended_at, group_row(db).stage) == ("refused", "working")

    def test_unknown_stage_is_refused_at_validation(self, tmp_path: Path) -> None:
        """A stage the model lacks is a located validation problem with a suggestion."""
        with pytest.raises(JourneyInvalidError) as raised:
            journey(
                tmp_path,
                """
                - id: assign
                  type: assign_buying_group
                  next: move
                - id: move
                  type: update_buying_group
                  stage: engagd
                  next: done
                - id: done
                  type: end
                """,
            )
        assert [issue.message for issue in raised.value.issues] == [
            "stage: unknown stage 'engagd' (did you mean 'engaged'?) (stages: awareness, engaged, evaluating, "
            "sales_qualified, disqualified, no_interest)"
        ]


class TestRemoveFromBuyingGroup:
    """Chosen members leave the group, rules do not put them back, and each removal is recorded once."""

    async def test_removes_by_role_and_rules_do_not_reassign(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """Both influencers go; a later assign_buying_group leaves them out; completeness drops."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: drop
            - id: drop
              type: remove_from_buying_group
              who: {roles: [influencer]}
              next: again
            - id: again
              type: assign_buying_group
              next: done
            - id: done
              type: end
            """,
        )
        handle = await start(time_env.client, plan, mail_worker[0])
        assert (await handle.result()).ended_at == "done"
        with Session(db) as session:
            roles = sorted(member.role for member in session.exec(select(BuyingGroupMember)))
            removed = sorted(row.person_id for row in session.exec(select(BuyingGroupRemoval)))
        assert roles == ["decision_maker"]
        assert removed == [2, 3]
        removals = events(db, "member_removed")
        assert [(event.person_id, event.email, event.payload["role"]) for event in removals] == [
            (2, "eng@acme-corp.example", "influencer"),
            (3, "arch@acme-corp.example", "influencer"),
        ]
        state = await handle.query("state")
        assert [member["role"] for member in state["buying_group"]["members"]] == ["decision_maker"]
        assert round(state["buying_group"]["completeness"]) == 33
        (group,) = report.buying_groups(db, load_workspace(tmp_path), "acme-corp")
        removed_lines = [entry["what"] for entry in group["history"] if "removed" in entry["what"]]
        assert removed_lines == [f"Eli removed by journey '{plan.journey}'", f"Ada removed by journey '{plan.journey}'"]
        assert group["status"] is None

    async def test_removes_by_condition(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """`who.where` reads the member's data and role; the others stay."""
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: drop
            - id: drop
              type: remove_from_buying_group
              who: {where: "person.role == 'influencer' and person.first_name == 'Eli'"}
              next: done
            - id: done
              type: end
            """,
        )
        await (await start(time_env.client, plan, mail_worker[0])).result()
        with Session(db) as session:
            kept = sorted(member.person_id for member in session.exec(select(BuyingGroupMember)))
        assert kept == [1, 3]
        assert [event.person_id for event in events(db, "member_removed")] == [2]


class TestSalesAlert:
    """The alert goes to the owner (or `to`), rendered from the template, once per visit."""

    async def test_owner_alerted_exactly_once_across_a_retry(
        self,
        time_env: WorkflowEnvironment,
        db: Engine,
        tmp_path: Path,
        smtp: tuple[str, SmtpInbox],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The first attempt sends, then fails as a lost worker would; the retry finds the alert sent."""
        original = sales_alert.SalesAlertActivities._alert
        results: list[SalesAlertResult] = []

        def flaky(self: sales_alert.SalesAlertActivities, request: SalesAlertRequest) -> SalesAlertResult:
            result = original(self, request)
            results.append(result)
            if len(results) == 1:
                raise RuntimeError("worker lost after sending")
            return result

        monkeypatch.setattr(sales_alert.SalesAlertActivities, "_alert", flaky)
        url, inbox = smtp
        people(db)
        plan = journey(
            tmp_path,
            """
            - id: assign
              type: assign_buying_group
              next: evaluating
            - id: evaluating
              type: update_buying_group
              stage: evaluating
              status: "Demo booked"
              next: alert
            - id: alert
              type: sales_alert
              subject: "{{ account.name }} booked a demo"
              template: emails/alert.html.j2
              next: done
            - id: done
              type: end
            """,
            templates=ALERT,
        )
        task_queue = f"flaky-{uuid.uuid4()}"
        async with running_worker(time_env.client, db, SmtpDelivery(url), task_queue):
            assert (await (await start(time_env.client, plan, task_queue)).result()).ended_at == "done"
        assert [(result.sent, result.already_sent) for result in results] == [(True, False), (True, True)]
        sent = messages(inbox)
        assert [(to, message["Subject"]) for to, message in sent] == [
            (["owner@sales.example"], "Acme Corp booked a demo")
        ]
        body = sent[0][1].get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert body == "Acme Corp is evaluating (Demo booked)\n"
        with Session(db) as session:
            rows = session.exec(select(OutboxMessage)).all()
        assert [(row.node_id, row.to_address, row.status) for row in rows] == [("alert", "owner@sales.example", "sent")]

    async def test_to_overrides_owner_without_solution_interest(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """A journey with no buying group alerts the address in `to`, not the owner."""
        add_account(db, owner_email="owner@sales.example")
        plan = journey(
            tmp_path,
            """
            - id: alert
              type: sales_alert
              to: emea-team@sales.example
              subject: "Demo request: {{ account.name }}"
              template: emails/plain.html.j2
              next: done
            - id: done
              type: end
            """,
            start_at="alert",
            header_extra="",
            templates=PLAIN_ALERT,
        )
        assert (await (await start(time_env.client, plan, mail_worker[0])).result()).ended_at == "done"
        sent = messages(mail_worker[1])
        assert [(to, message["Subject"]) for to, message in sent] == [
            (["emea-team@sales.example"], "Demo request: Acme Corp")
        ]
        html = sent[0][1].get_body(("html",)).get_content().replace("\r\n", "\n")
        assert html == "<p>Acme Corp (Test Journey) asked for a demo.</p>\n"

    async def test_account_without_owner_goes_on_and_logs(
        self, time_env: WorkflowEnvironment, mail_worker: tuple[str, SmtpInbox], db: Engine, tmp_path: Path
    ) -> None:
        """No owner and no `to`: nothing is sent, the activity logs why, and the account goes on along next."""
        add_account(db)
        plan = journey(
            tmp_path,
            """
            - id: alert
              type: sales_alert
              subject: "Demo request: {{ account.name }}"
              template: emails/plain.html.j2
              next: done
            - id: done
              type: end
            """,
            start_at="alert",
            header_extra="",
            templates=PLAIN_ALERT,
        )
        with capture_logs() as logs:
            result = await (await start(time_env.client, plan, mail_worker[0])).result()
        assert result.ended_at == "done"
        assert mail_worker[1].messages == []
        assert [entry["event"] for entry in logs if entry["event"].startswith("sales_alert.")] == [
            "sales_alert.no_owner"
        ]


def test_show_and_operator_details(tmp_path: Path) -> None:
    """`journey show` says what each node does; the group changes pass through, the alert rests."""
    plan = journey(
        tmp_path,
        """
        - id: assign
          type: assign_buying_group
          next: move
        - id: move
          type: update_buying_group
          stage: evaluating
          status: "Demo booked"
          next: drop
          on_not_allowed: drop
        - id: drop
          type: remove_from_buying_group
          who: {roles: [influencer]}
          next: alert
        - id: alert
          type: sales_alert
          to: team@sales.example
          subject: "{{ account.name }}"
          template: emails/alert.html.j2
          next: done
        - id: done
          type: end
        """,
        templates=ALERT,
    )
    nodes = plan.nodes
    assert [node_summary(nodes[name]) for name in ("move", "drop", "alert")] == [
        "buying group: stage -> evaluating, status 'Demo booked'",
        "remove influencer from the buying group",
        "alert team@sales.example with 'alert'",
    ]
    assert [details.rests(nodes[name]) for name in ("move", "drop", "alert")] == [False, False, True]
    assert [(edge.label, edge.target) for edge in plan.edges["move"]] == [("next", "drop"), ("on_not_allowed", "drop")]
