"""The benchmark journey written by hand: the same activity calls, in the same order and with the same options,
as the engine's `Journey` workflow makes for the reference journey of bench/throughput.py, with the graph
hard-coded instead of interpreted from a Plan.

    intro (send_email, all) -> pause (wait 1s) -> wait_demo (form_fill where form == 'demo', 1h)
        -> decide (split: employees >= 100 -> follow_up (send_email) -> done; otherwise -> done)
        on timeout -> done

Per node: record_step node_entered, the node's own work, record_step node_left; load_account once at start
and again in the split. Like the engine it listens for events only while at `wait_demo` (earlier events are
dropped, duplicate ids too) and answers a `state` query with `listening`. What it leaves out is the engine's
own bookkeeping: the Plan in the input, the JourneyState model copies, compiled conditions, activity
summaries and current details.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow

from engine.language.model import Recipients
from engine.workflow.contracts import (
    AccountRequest,
    JourneyEvent,
    JourneyResult,
    SendEmailRequest,
    SendEmailResult,
    StepKind,
    StepRecord,
)
from engine.workflow.interpreter import EMAIL_RETRY
from engine.workflow.state import DB_RETRY, QUICK

JOURNEY, NAME, VERSION = "bench-throughput", "Bench Throughput", "hand-written"
SUBJECT = "Hello {{ account.name }}"
TEMPLATE = "<p>Hi {{ person.first_name }}, news for {{ account.name }}.</p>\n"
SPLIT_LABEL = "when account.employees >= 100"
EMAIL_HEARTBEAT = timedelta(seconds=60)  # JourneySettings().email_heartbeat_timeout_seconds


@workflow.defn(name="HandWrittenJourney")
class HandWrittenJourney:
    def __init__(self) -> None:
        self._account_id = ""
        self._listening = False
        self._inbox: list[JourneyEvent] = []
        self._seen: set[str] = set()
        self._visits: dict[str, int] = {}
        self._emails_sent = 0

    @workflow.signal(name="event")
    def event(self, event: JourneyEvent) -> None:
        if event.event_id in self._seen:
            return
        self._seen.add(event.event_id)
        if self._listening:
            self._inbox.append(event)

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        return {"listening": self._listening}

    @workflow.run
    async def run(self, account_id: str) -> JourneyResult:
        self._account_id = account_id
        await self._load_account()

        await self._record("node_entered", "intro", "send_email")
        await self._send_email("intro")
        await self._record("node_left", "intro", "send_email", "next")

        entered = workflow.now()
        await self._record("node_entered", "pause", "wait")
        if (remaining := entered + timedelta(seconds=1) - workflow.now()) > timedelta(0):
            await workflow.sleep(remaining)
        await self._record("node_left", "pause", "wait", "next")

        entered = workflow.now()
        self._listening, self._inbox = True, []
        await self._record("node_entered", "wait_demo", "wait_for_event")
        branch = await self._wait_for_demo(entered + timedelta(hours=1))
        await self._record("node_left", "wait_demo", "wait_for_event", branch)
        self._listening = False

        if branch == "on_event":
            await self._record("node_entered", "decide", "split")
            account = await self._load_account()
            big = (account.get("employees") or 0) >= 100
            await self._record("node_left", "decide", "split", SPLIT_LABEL if big else "otherwise")
            if big:
                await self._record("node_entered", "follow_up", "send_email")
                await self._send_email("follow_up")
                await self._record("node_left", "follow_up", "send_email", "next")

        await self._record("node_entered", "done", "end")
        await self._record("node_left", "done", "end", "end")
        return JourneyResult(
            journey=JOURNEY,
            version=VERSION,
            account_id=account_id,
            ended_at="done",
            visits=self._visits,
            emails_sent=self._emails_sent,
        )

    async def _wait_for_demo(self, deadline: Any) -> str:
        while True:
            while self._inbox:
                event = self._inbox.pop(0)
                if event.type == "form_fill" and event.payload.get("form") == "demo":
                    return "on_event"
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return "on_timeout"
            try:
                await workflow.wait_condition(lambda: bool(self._inbox), timeout=remaining)
            except TimeoutError:
                return "on_timeout"

    async def _load_account(self) -> dict[str, Any]:
        account: dict[str, Any] = await workflow.execute_activity(
            "load_account",
            AccountRequest(account_id=self._account_id),
            result_type=dict,
            start_to_close_timeout=QUICK,
            retry_policy=DB_RETRY,
        )
        return account

    async def _send_email(self, node: str) -> None:
        result = await workflow.execute_activity(
            "send_email",
            SendEmailRequest(
                key_prefix=self._key(node),
                journey_id=JOURNEY,
                journey_name=NAME,
                version=VERSION,
                account_id=self._account_id,
                node_id=node,
                to=Recipients(all=True),
                subject=SUBJECT,
                html_template=TEMPLATE,
            ),
            result_type=SendEmailResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=EMAIL_HEARTBEAT,
            retry_policy=EMAIL_RETRY,
        )
        self._emails_sent += result.sent

    async def _record(self, kind: StepKind, node: str, node_type: str, branch: str | None = None) -> None:
        if kind == "node_entered":
            self._visits[node] = self._visits.get(node, 0) + 1
        step = StepRecord(
            key=f"{self._key(node)}/{kind}",
            type=kind,
            journey_id=JOURNEY,
            version=VERSION,
            account_id=self._account_id,
            node_id=node,
            node_type=node_type,
            visit=self._visits[node],
            branch=branch,
            occurred_at=workflow.now(),
        )
        await workflow.execute_activity("record_step", step, start_to_close_timeout=QUICK, retry_policy=DB_RETRY)

    def _key(self, node: str) -> str:
        info = workflow.info()
        return f"{info.workflow_id}/{info.first_execution_run_id}/{node}/{self._visits.get(node, 1)}"
