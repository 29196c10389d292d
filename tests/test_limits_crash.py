"""Caps and exactly-once across a worker crash: the worker is killed after delivering, before reporting; the retry
on a fresh worker is not held back by the messages it reserved itself, sends nothing twice, and the next email
is counted against the cap those messages filled. Real dev server, real SMTP, real SQLite."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import SmtpInbox, add_account, add_person, write_journey
from temporalio.testing import WorkflowEnvironment

from activities.delivery import SmtpDelivery
from engine.db import OutboxMessage
from engine.runtime import temporal
from engine.runtime.workers import running_worker
from engine.workflow.contracts import JourneyInput, JourneyResult, JourneySettings

REPO = Path(__file__).resolve().parent.parent
TWO_EMAILS = """
- id: intro
  type: send_email
  to: all
  subject: "Hello {{ person.first_name }}"
  template: emails/intro.html.j2
  next: follow_up
- id: follow_up
  type: send_email
  to: all
  subject: "Again, {{ person.first_name }}"
  template: emails/intro.html.j2
  next: done
- id: done
  type: end
"""


async def test_crash_after_delivery_neither_resends_nor_suppresses_itself(
    dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path, smtp: tuple[str, SmtpInbox]
) -> None:
    smtp_url, inbox = smtp
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "limits.yaml").write_text("person:\n  - {max: 1, per: 7d}\n")
    plan = write_journey(folder, TWO_EMAILS, "intro", templates={"emails/intro.html.j2": "<p>Hi</p>\n"})
    add_account(db)
    people = [add_person(db, "acme-corp", f"p{n}@acme-corp.example", first_name=f"P{n}") for n in range(3)]
    task_queue = f"crash-{uuid.uuid4()}"
    marker = tmp_path / "delivered"
    command = [sys.executable, str(REPO / "tests" / "crash_worker.py"), "--address"]
    command += [dev_env.client.service_client.config.target_host, "--task-queue", task_queue]
    command += ["--database-url", str(db.url), "--smtp-url", smtp_url, "--marker", str(marker)]
    crashing = subprocess.Popen(command, cwd=REPO)
    handle = await dev_env.client.start_workflow(
        "Journey",
        JourneyInput(plan=plan, account_id="acme-corp", settings=JourneySettings(email_heartbeat_timeout_seconds=2)),
        id=temporal.workflow_id(plan.journey, f"acme-corp-{uuid.uuid4().hex[:6]}"),
        task_queue=task_queue,
        result_type=JourneyResult,
    )
    assert await asyncio.to_thread(crashing.wait, 60) == -9  # killed after delivering the first email
    assert marker.read_text() == "3\n"

    async with running_worker(dev_env.client, db, SmtpDelivery(smtp_url), task_queue):
        result = await asyncio.wait_for(handle.result(), timeout=60)

    assert (result.ended_at, result.emails_sent) == ("done", 3)
    assert sorted(rcpt for rcpts, _ in inbox.messages for rcpt in rcpts) == [
        f"p{n}@acme-corp.example" for n in range(3)
    ]
    with Session(db) as session:
        rows = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
    assert sorted((row.node_id, row.person_id, row.status, row.suppressed_by) for row in rows) == [
        *[("follow_up", person, "suppressed", "limit:person:1/7d") for person in people],
        *[("intro", person, "sent", None) for person in people],
    ]
