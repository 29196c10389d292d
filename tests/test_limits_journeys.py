"""limits.yaml through the journey workflow on the time-skipping server, with the real activities and SQLite:
quiet hours hold an email until they end (a transactional one goes at once), many journeys emailing one person
at once send no more than the cap, and the nodes report counts each node's suppressed sends by cap."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, add_person, start, step_times, write_journey
from temporalio.testing import WorkflowEnvironment

from engine.analytics.containers import Filters
from engine.analytics.node_emails import NodeEmails
from engine.analytics.nodes import node_counts
from engine.analytics.tables import tables
from engine.db import OutboxMessage
from engine.workflow import details, visibility

ZONE = "America/New_York"
TEMPLATES = {"emails/hello.html.j2": "<p>Hi {{ person.first_name }}</p>\n"}
RECEIPT_THEN_NEWS = """
- id: receipt
  type: send_email
  to: all
  transactional: true
  subject: Your order
  template: emails/hello.html.j2
  next: news
- id: news
  type: send_email
  to: all
  subject: News
  template: emails/hello.html.j2
  next: done
- id: done
  type: end
"""
TWO_EMAILS = """
- id: first
  type: send_email
  to: all
  subject: First
  template: emails/hello.html.j2
  next: second
- id: second
  type: send_email
  to: all
  subject: Second
  template: emails/hello.html.j2
  next: done
- id: done
  type: end
"""

ONE_EMAIL = """
- id: first
  type: send_email
  to: all
  subject: News
  template: emails/hello.html.j2
  next: done
- id: done
  type: end
"""


def _local(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(ZONE))


class TestQuietHours:
    """An email due in the quiet hours waits, in the workflow, until they end in the account's time zone."""

    async def test_marketing_waits_transactional_does_not(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        # Quiet from two hours ago to four hours from now, in the account's zone: the journey starts inside them.
        now = datetime.now(ZoneInfo(ZONE))
        start_at, end_at = (now - timedelta(hours=2)).strftime("%H:%M"), (now + timedelta(hours=4)).strftime("%H:%M")
        (tmp_path / "limits.yaml").write_text(f'quiet_hours:\n  start: "{start_at}"\n  end: "{end_at}"\n')
        plan = write_journey(tmp_path, RECEIPT_THEN_NEWS, "receipt", templates=TEMPLATES)
        add_account(db, timezone=ZONE)
        add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
        result = await (await start(time_env.client, plan, worker)).result()
        assert result.emails_sent == 2
        receipt_left = _local(step_times(db, "receipt", "node_left")[0])
        news_left = _local(step_times(db, "news", "node_left")[0])
        assert receipt_left - now < timedelta(hours=1)  # at once, though quiet
        assert news_left.strftime("%H:%M") == end_at
        assert news_left - now > timedelta(hours=3, minutes=58)
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2

    async def test_send_window_then_quiet_hours(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """At 20:00 the window '9-17' is closed: wait for 09:00, then for the quiet hours' end at 10:00."""
        offset = (20 - datetime.now(UTC).hour + 12) % 24 - 12  # a zone where it is 20:00 now
        zone = f"Etc/GMT{-offset:+d}"  # the Etc zones' signs are inverted: Etc/GMT-2 is UTC+2
        (tmp_path / "limits.yaml").write_text('quiet_hours:\n  start: "21:00"\n  end: "10:00"\n')
        plan = write_journey(
            tmp_path, ONE_EMAIL, "first", templates=TEMPLATES, header_extra='send_window: "* 9-17 * * *"\n'
        )
        add_account(db, timezone=zone)
        add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
        assert (await (await start(time_env.client, plan, worker)).result()).emails_sent == 1
        left = step_times(db, "first", "node_left")[0].replace(tzinfo=UTC).astimezone(ZoneInfo(zone))
        assert left.strftime("%H:%M") == "10:00"

    def test_operators_see_the_quiet_hours(self, tmp_path: Path) -> None:
        (tmp_path / "limits.yaml").write_text('quiet_hours:\n  start: "20:00"\n  end: "08:00"\n')
        plan = write_journey(tmp_path, RECEIPT_THEN_NEWS, "receipt", templates=TEMPLATES)
        shown = details.current_details(plan, plan.nodes["news"], datetime.now(UTC), waiting=visibility.QUIET_HOURS)
        assert "Holding the email through the quiet hours `20:00-08:00` (account time zone)." in shown


class TestCapAcrossJourneys:
    """Fifty journeys emailing the same person at once, each its own workflow, send no more than the cap."""

    async def test_fifty_workflows_send_three(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        (tmp_path / "limits.yaml").write_text("person:\n  - {max: 3, per: 7d}\n")
        add_account(db)
        add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
        journeys = [write_journey(tmp_path, ONE_EMAIL, "first", f"news-{n}", TEMPLATES) for n in range(50)]
        # Nothing here waits on a timer: real time, so a workflow task slowed by the others is not timed out by a
        # skip of the server's clock.
        with time_env.auto_time_skipping_disabled():
            handles = await asyncio.gather(*(start(time_env.client, plan, worker) for plan in journeys))
            results = await asyncio.gather(*(handle.result() for handle in handles))
        assert sum(result.emails_sent for result in results) == 3
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3
        with Session(db) as session:
            statuses = Counter(session.exec(select(OutboxMessage.status)).all())
        assert statuses == {"sent": 3, "suppressed": 47}


class TestCountedPerNode:
    """The nodes report shows, per send_email node, what was sent and what a cap suppressed, by cap."""

    async def test_second_email_suppressed_and_counted(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        (tmp_path / "limits.yaml").write_text("person:\n  - {max: 1, per: 1d}\n")
        plan = write_journey(tmp_path, TWO_EMAILS, "first", templates=TEMPLATES)
        add_account(db)
        add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
        add_person(db, "acme-corp", "bo@acme-corp.example", first_name="Bo")
        result = await (await start(time_env.client, plan, worker)).result()
        assert (result.ended_at, result.emails_sent) == ("done", 2)
        report = node_counts(db, plan.journey, Filters())
        assert report.emails == [
            NodeEmails(node="first", sent=2, failed=0, pending=0, suppressed=0, suppressed_by={}),
            NodeEmails(
                node="second", sent=0, failed=0, pending=0, suppressed=2, suppressed_by={"limit:person:1/1d": 2}
            ),
        ]
        emails = next(table for table in tables(report) if table.name == "emails")
        assert emails.rows[1] == ["second", 0, 0, 0, 2, "limit:person:1/1d: 2"]
