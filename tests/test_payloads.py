"""Large payload values (a journey's Plan, email templates) are stored once in the journey database and
histories carry their keys (issue 14: Temporal's claim-check pattern)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, add_person, write_journey
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.db import PayloadBlob
from engine.runtime import temporal
from engine.runtime.payloads import MARK, BlobNotFoundError, ClaimCheckCodec
from engine.runtime.workers import running_worker
from engine.workflow.contracts import JourneyInput, JourneyResult

EMAIL = """
- id: intro
  type: send_email
  to: all
  subject: "Hello {{ person.first_name }}"
  template: emails/intro.html.j2
  next: done
- id: done
  type: end
"""
TEMPLATE = "<p>Hi {{ person.first_name }}</p>\n" + "<p>We grow seeds that grow more with less water.</p>\n" * 40


def payload(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


async def test_the_plan_is_stored_once_and_restored(db: Engine, tmp_path: Path) -> None:
    plan = write_journey(tmp_path, EMAIL, start="intro", templates={"emails/intro.html.j2": TEMPLATE})
    codec = ClaimCheckCodec(db)
    plain = [payload(JourneyInput(plan=plan, account_id=f"acct-{n}")) for n in range(3)]
    encoded = await codec.encode(plain)
    assert [MARK in item.metadata for item in encoded] == [True] * 3
    assert max(len(item.data) for item in encoded) < 600, [item.data for item in encoded]
    assert all(len(item.data) > 2_000 for item in plain)
    with Session(db) as session:
        assert len(session.exec(select(PayloadBlob)).all()) == 1  # one Plan, however many accounts
    restored = await ClaimCheckCodec(db).decode(encoded)  # another process: read from the database
    assert [json.loads(item.data) for item in restored] == [json.loads(item.data) for item in plain]
    assert [MARK in item.metadata for item in restored] == [False] * 3


async def test_small_and_old_payloads_pass_unchanged(db: Engine) -> None:
    codec = ClaimCheckCodec(db)
    small = payload({"account_id": "acme-corp"})
    assert await codec.encode([small]) == [small]
    assert await codec.decode([small]) == [small]


async def test_template_bodies_go_by_reference_however_short(db: Engine) -> None:
    """A send_email input carries no template body: 100 bytes are shared by every account of the version too."""
    short = "<p>Hi {{ person.first_name }}, news for {{ account.name }} from the seed team.</p>\n"
    request = {"key_prefix": "k", "subject": "Hello", "html_template": short, "text_template": "Hi"}
    encoded = (await ClaimCheckCodec(db).encode([payload(request)]))[0]
    assert short.encode() not in encoded.data
    assert json.loads(encoded.data)["text_template"] == "Hi"  # a reference would be longer than the value
    restored = await ClaimCheckCodec(db).decode([encoded])
    assert json.loads(restored[0].data) == request


async def test_an_accounts_own_large_values_stay_inline(db: Engine) -> None:
    """A buying group's members (people's addresses) are the account's own: never in the unencrypted blob table."""
    members = [{"email": f"person{n}@acme-corp.example", "role": "user"} for n in range(60)]
    request = {"key_prefix": "k", "buying_group": {"members": members}, "html_template": TEMPLATE}
    encoded = (await ClaimCheckCodec(db).encode([payload(request)]))[0]
    assert b"person59@acme-corp.example" in encoded.data
    assert TEMPLATE.encode() not in encoded.data
    with Session(db) as session:
        stored = b"".join(blob.data for blob in session.exec(select(PayloadBlob)))
    assert b"acme-corp.example" not in stored


async def test_a_missing_value_says_which_database_to_use(db: Engine) -> None:
    orphan = Payload(
        metadata={"encoding": b"json/plain", MARK: b"1"}, data=b'{"plan": {"$blob": "' + b"0" * 64 + b'"}}'
    )
    with pytest.raises(BlobNotFoundError, match="JOURNEY_DATABASE_URL"):
        await ClaimCheckCodec(db).decode([orphan])


async def test_a_journey_runs_with_its_plan_by_reference(
    time_env: WorkflowEnvironment, db: Engine, tmp_path: Path
) -> None:
    plan = write_journey(tmp_path, EMAIL, start="intro", templates={"emails/intro.html.j2": TEMPLATE})
    add_account(db)
    add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
    converter = dataclasses.replace(pydantic_data_converter, payload_codec=ClaimCheckCodec(db))
    client = Client(**{**time_env.client.config(), "data_converter": converter})
    task_queue = f"claim-{uuid.uuid4()}"
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        handle = await client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id="acme-corp"),
            id=temporal.workflow_id(plan.journey, f"acme-corp-{uuid.uuid4().hex[:6]}"),
            task_queue=task_queue,
            result_type=JourneyResult,
        )
        result = await handle.result()
    assert (result.ended_at, result.emails_sent) == ("done", 1)
    history = await time_env.client.get_workflow_handle(handle.id).fetch_history()  # as stored: no codec
    stored = b"".join(p.data for e in history.events for p in _inputs(e))
    assert b"$blob" in stored and b"We grow seeds" not in stored  # neither the Plan nor the template inline


def _inputs(event: object) -> list[Payload]:
    for field in ("workflow_execution_started_event_attributes", "activity_task_scheduled_event_attributes"):
        if event.HasField(field):  # type: ignore[attr-defined]
            return list(getattr(event, field).input.payloads)
    return []
