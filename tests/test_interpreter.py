"""The journey workflow on Temporal's time-skipping server: every node type and every branch, with real
activities against a real SQLite database and real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import (
    WAIT_FOR_DEMO,
    add_account,
    add_person,
    start,
    step_times,
    steps,
    wait_for_state,
    write_journey,
)
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.db import Account
from engine.runtime.workers import running_worker
from engine.workflow.contracts import JourneyEvent, JourneyResult, JourneySettings


def event(type_: str = "form_fill", event_id: str | None = None, **payload: Any) -> JourneyEvent:
    return JourneyEvent(
        type=type_,
        event_id=event_id or uuid.uuid4().hex,
        account_id="acme-corp",
        email="ada@acme-corp.example",
        payload=payload,
        occurred_at=datetime.now(UTC),
    )


class TestWaitAndUpdate:
    """`wait`, `update_account`, `split` and `end`, over a month of workflow time in seconds."""

    async def test_thirty_day_journey(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Update, wait 30 days, split on the updated data: the right branch, each step logged once."""
        plan = write_journey(
            tmp_path,
            """
            - id: warm_up
              type: update_account
              set: {nurture_stage: warm, industry: Biotech}
              add: {touches: 2}
              next: month
            - id: month
              type: wait
              duration: 30d
              next: decide
            - id: decide
              type: split
              paths:
                - when: "account.touches >= 2 and account.nurture_stage == 'warm'"
                  next: done
              otherwise: other
            - id: done
              type: end
            - id: other
              type: end
        """,
            start="warm_up",
        )
        add_account(db)
        started = time.monotonic()
        handle = await start(time_env.client, plan, worker)
        result = await handle.result()
        assert time.monotonic() - started < 10
        assert result.ended_at == "done"
        assert steps(db) == [
            ("node_entered", "warm_up", None),
            ("node_left", "warm_up", "next"),
            ("node_entered", "month", None),
            ("node_left", "month", "next"),
            ("node_entered", "decide", None),
            ("node_left", "decide", "when account.touches >= 2 and account.nurture_stage == 'warm'"),
            ("node_entered", "done", None),
            ("node_left", "done", "end"),
        ]
        entered, left = step_times(db, "month", "node_entered")[0], step_times(db, "month", "node_left")[0]
        assert timedelta(days=30) <= left - entered < timedelta(days=30, minutes=1)
        with Session(db) as session:
            account = session.get(Account, "acme-corp")
            assert account is not None
            assert account.industry == "Biotech"
            assert account.attributes == {"nurture_stage": "warm", "touches": 2}

    async def test_split_otherwise(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """No path matches: `otherwise`; a missing attribute does not fail the journey."""
        plan = write_journey(
            tmp_path,
            """
            - id: decide
              type: split
              paths:
                - when: "account.annual_revenue >= 50000000"
                  next: big
                - when: "account.industry == 'Retail'"
                  next: big
              otherwise: small
            - id: big
              type: end
            - id: small
              type: end
        """,
            start="decide",
        )
        add_account(db, annual_revenue=None)
        result = await (await start(time_env.client, plan, worker)).result()
        assert result.ended_at == "small"

    async def test_split_over_the_limits_fails_for_good(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """A condition that would build a huge number from the account's data fails the journey at once, naming
        journey, account and node, instead of holding the worker (issue 13)."""
        plan = write_journey(
            tmp_path,
            """
            - id: decide
              type: split
              paths:
                - when: "9 ** account.employees > 1"
                  next: big
              otherwise: small
            - id: big
              type: end
            - id: small
              type: end
        """,
            start="decide",
        )
        add_account(db, employees=10**9)
        started = time.monotonic()
        with pytest.raises(WorkflowFailureError) as failure:
            await (await start(time_env.client, plan, worker)).result()
        assert time.monotonic() - started < 20
        cause = failure.value.cause
        assert cause.type == "ExpressionLimit"  # type: ignore[attr-defined]
        assert cause.message.startswith("journey 'test-journey' account 'acme-corp' node 'decide': ")  # type: ignore[attr-defined]
        assert "too large" in cause.message  # type: ignore[attr-defined]

    async def test_wait_until_cron_in_account_zone(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """`until` waits for the next matching time in the account's time zone."""
        plan = write_journey(
            tmp_path,
            """
            - id: tuesday
              type: wait
              until: "0 9 * * 2"
              next: done
            - id: done
              type: end
        """,
            start="tuesday",
        )
        add_account(db, timezone="Asia/Seoul")
        await (await start(time_env.client, plan, worker)).result()
        entered, left = step_times(db, "tuesday", "node_entered")[0], step_times(db, "tuesday", "node_left")[0]
        local = left.replace(tzinfo=UTC).astimezone(ZoneInfo("Asia/Seoul"))
        assert (local.weekday(), local.hour, local.minute) == (1, 9, 0)
        assert timedelta(0) < left - entered <= timedelta(days=7)


class TestWaitForEvent:
    """`wait_for_event` listens from the moment the account enters the node."""

    async def test_matching_event(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """A matching form fill takes `on_event`."""
        plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo")
        add_account(db)
        handle = await start(time_env.client, plan, worker)
        await wait_for_state(handle, lambda state: state["listening"])
        await handle.signal("event", event(form="demo-request"))
        assert (await handle.result()).ended_at == "converted"

    async def test_non_matching_and_duplicate(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Another form is ignored; a matching event reusing a seen event id is a duplicate: timeout."""
        plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo")
        add_account(db)
        handle = await start(time_env.client, plan, worker)
        await wait_for_state(handle, lambda state: state["listening"])
        await handle.signal("event", event(event_id="evt-1", form="newsletter"))
        await handle.signal("event", event("web_visit", url="/demo"))
        await handle.signal("event", event(event_id="evt-1", form="demo-request"))
        await wait_for_state(handle, lambda state: len(state["seen_event_ids"]) == 2)
        assert (await handle.result()).ended_at == "timed_out"
        assert steps(db)[-3] == ("node_left", "wait_demo", "on_timeout")

    async def test_events_before_the_node_are_ignored(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """An event that arrives while the account is still in an earlier wait does not count later."""
        pause = "- id: pause\n  type: wait\n  duration: 1d\n  next: wait_demo\n"
        plan = write_journey(tmp_path, pause + WAIT_FOR_DEMO.strip("\n"), start="pause")
        add_account(db)
        handle = await start(time_env.client, plan, worker)
        await wait_for_state(handle, lambda state: state["position"] == "pause")
        await handle.signal("event", event(form="demo-request"))
        assert (await handle.result()).ended_at == "timed_out"

    async def test_continue_as_new_keeps_everything(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Past the history limit the run continues as new inside the wait: same deadline, same seen ids,
        same visit; the journey still ends the right way."""
        plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo")
        add_account(db)
        handle = await start(time_env.client, plan, worker, settings=JourneySettings(max_history_events=30))
        first_run = (await handle.describe()).run_id
        await wait_for_state(handle, lambda state: state["listening"])
        for number in range(12):
            await handle.signal("event", event(event_id=f"noise-{number}", form="newsletter"))
        await wait_for_state(handle, lambda state: "noise-11" in state["seen_event_ids"])
        latest = time_env.client.get_workflow_handle(handle.id, result_type=JourneyResult)
        assert (await latest.describe()).run_id != first_run
        await latest.signal("event", event(event_id="noise-3", form="demo-request"))  # seen before the new run
        await latest.signal("event", event(event_id="real", form="demo-request"))
        result = await latest.result()
        assert result.ended_at == "converted"
        assert result.visits == {"wait_demo": 1, "converted": 1}
        assert [step for step in steps(db) if step[1] == "wait_demo"] == [
            ("node_entered", "wait_demo", None),
            ("node_left", "wait_demo", "on_event"),
        ]


class _Service(BaseHTTPRequestHandler):
    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append((self.path, body))
        if self.path == "/slow":
            time.sleep(2)
        status = {"/ok": 200, "/fail": 500}.get(self.path, 200)
        payload = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the slow path's client has given up (timeout): its broken pipe is the point of the test


@pytest.fixture
def service_url() -> Iterator[str]:
    """A real HTTP server on loopback standing in for the CRM."""
    _Service.calls = []
    server = _QuietServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class TestExternalAction:
    """`external_action` takes on_success, on_error or on_timeout."""

    @pytest.mark.parametrize(
        ("path", "branch", "calls"), [("/ok", "success", 1), ("/fail", "error", 2), ("/slow", "timeout", 2)]
    )
    async def test_branches(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        service_url: str,
        path: str,
        branch: str,
        calls: int,
    ) -> None:
        """Each outcome takes its branch, after the bounded retries."""
        plan = write_journey(
            tmp_path,
            """
            - id: crm
              type: external_action
              service: crm
              on_success: success
              on_error: error
              on_timeout: timeout
            - id: success
              type: end
            - id: error
              type: end
            - id: timeout
              type: end
        """,
            start="crm",
            services=f"""
            services:
              crm:
                url: {service_url}{path}
                timeout: 1s
                retries: 1
        """,
        )
        add_account(db)
        result = await (await start(time_env.client, plan, worker)).result()
        assert result.ended_at == branch
        assert len(_Service.calls) == calls
        assert _Service.calls[0][1]["account"]["id"] == "acme-corp"


class TestFailures:
    """A permanent failure ends the run with a message naming journey, account and node."""

    async def test_missing_account(self, time_env: WorkflowEnvironment, worker: str, tmp_path: Path) -> None:
        """An account that does not exist fails the journey at once, clearly."""
        plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo")
        handle = await start(time_env.client, plan, worker, account_id="ghost")
        with pytest.raises(WorkflowFailureError) as raised:
            await handle.result()
        assert "account 'ghost' does not exist" in str(raised.value.cause)


class TestSendEmail:
    """`send_email` through the workflow: the send window in the account's zone, then exactly one email each."""

    async def test_waits_for_send_window(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """Outside the window the email waits until it opens (account time zone), then goes to everyone."""
        plan = write_journey(
            tmp_path,
            """
            - id: intro
              type: send_email
              to: all
              subject: "Hello {{ account.name }}"
              template: emails/intro.html.j2
              next: done
            - id: done
              type: end
        """,
            start="intro",
            templates={"emails/intro.html.j2": "<p>Hi {{ person.first_name }}</p>\n"},
            header_extra='send_window: "* 9-10 * * 3"\n',
        )
        add_account(db, timezone="America/Chicago")
        for number in range(2):
            add_person(db, "acme-corp", f"p{number}@acme-corp.example", first_name=f"P{number}")
        add_person(db, "acme-corp", "gone@acme-corp.example", unsubscribed=True)
        result = await (await start(time_env.client, plan, worker)).result()
        assert result.emails_sent == 2
        left = step_times(db, "intro", "node_left")[0].replace(tzinfo=UTC)
        local = left.astimezone(ZoneInfo("America/Chicago"))
        assert local.weekday() == 2 and 9 <= local.hour <= 10
        assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


class HeldDelivery(OutboxFileDelivery):
    """File delivery that holds each message until the test lets it go: the email is still being sent."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.sending, self.release = threading.Event(), threading.Event()

    def deliver(self, message: Any, key: str) -> None:
        self.sending.set()
        assert self.release.wait(timeout=30)
        super().deliver(message, key)


EMAIL_THEN_CLICK = """
- id: intro
  type: send_email
  to: all
  subject: Hello
  template: emails/intro.html.j2
  next: {after}
{nap}- id: wait_click
  type: wait_for_event
  event: email_click
  timeout: 3d
  on_event: clicked
  on_timeout: ignored
- id: clicked
  type: end
- id: ignored
  type: end
"""


NAP = """- id: nap
  type: wait
  duration: 1h
  next: wait_click
"""


@pytest.mark.parametrize(("after", "branch"), [("wait_click", "clicked"), ("nap", "ignored")])
async def test_event_during_a_step_that_does_not_wait(
    time_env: WorkflowEnvironment, db: Engine, tmp_path: Path, after: str, branch: str
) -> None:
    """A click that arrives while its email is still going out reaches the wait right after the send;
    one that arrives before a timer does not reach the wait after that timer (the timer did not want it)."""
    plan = write_journey(
        tmp_path,
        EMAIL_THEN_CLICK.format(after=after, nap=NAP if after == "nap" else ""),
        start="intro",
        templates={"emails/intro.html.j2": "<p>Hi</p>\n"},
    )
    add_account(db)
    add_person(db, "acme-corp", "ana@acme-corp.example", first_name="Ana")
    delivery = HeldDelivery(tmp_path / "outbox")
    task_queue = f"test-{uuid.uuid4()}"
    async with running_worker(time_env.client, db, delivery, task_queue):
        handle = await start(time_env.client, plan, task_queue)
        assert await asyncio.to_thread(delivery.sending.wait, 30)
        await handle.signal("event", event("email_click"))
        state = await handle.query("state")
        assert state["position"] == "intro" and not state["listening"]
        delivery.release.set()
        result = await handle.result()
    assert result.ended_at == branch
