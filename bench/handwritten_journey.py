"""The benchmark journey as a Temporal engineer writes it without this engine: only the journey's effects, no
per-step bookkeeping.

    load the account -> send the intro email -> sleep 1s -> wait up to 1h for the 'demo' form fill
        -> read the account again -> employees >= 100: send the follow-up -> return

The same activities (load_account, send_email against the same code and outbox) with the same options as the
engine's calls; no event-log rows, no search attributes, no operator details, no summaries. A form fill that
arrives before the wait is kept (the signal handler buffers it), as a hand-written workflow naturally does.

One line is the benchmark's, not the journey's: `listening` tells the driver in this process that the account
now waits for the form fill, so that it signals while the account waits, as it does the engine's. It costs
nothing in Temporal (no command, no history event) and fires again harmlessly when a history is replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

from engine.language.model import Recipients
from engine.workflow.contracts import AccountRequest, JourneyEvent, JourneyResult, SendEmailRequest, SendEmailResult
from engine.workflow.interpreter import EMAIL_RETRY
from engine.workflow.state import DB_RETRY, QUICK

JOURNEY, NAME, VERSION = "bench-throughput", "Bench Throughput", "hand-written"
SUBJECT = "Hello {{ account.name }}"
TEMPLATE = "<p>Hi {{ person.first_name }}, news for {{ account.name }}.</p>\n"
listening: Callable[[str], None] = lambda account_id: None  # noqa: E731 (set by bench/throughput.py)
EMAIL_HEARTBEAT = timedelta(seconds=10)  # JourneySettings().email_heartbeat_timeout_seconds
HEARTBEAT = timedelta(seconds=10)  # JourneySettings().activity_heartbeat_timeout_seconds


@workflow.defn(name="HandWrittenJourney")
class HandWrittenJourney:
    def __init__(self) -> None:
        self._account_id = ""
        self._form_filled = False
        self._emails_sent = 0

    @workflow.signal(name="event")
    def event(self, event: JourneyEvent) -> None:
        if event.type == "form_fill" and event.payload.get("form") == "demo":
            self._form_filled = True

    @workflow.run
    async def run(self, account_id: str) -> JourneyResult:
        self._account_id = account_id
        await self._load_account()
        await self._send_email("intro")
        await workflow.sleep(timedelta(seconds=1))
        listening(account_id)
        try:
            await workflow.wait_condition(lambda: self._form_filled, timeout=timedelta(hours=1))
        except TimeoutError:
            return self._result()
        account = await self._load_account()
        if (account.get("employees") or 0) >= 100:
            await self._send_email("follow_up")
        return self._result()

    def _result(self) -> JourneyResult:
        return JourneyResult(
            journey=JOURNEY,
            version=VERSION,
            account_id=self._account_id,
            ended_at="done",
            visits={},
            emails_sent=self._emails_sent,
        )

    async def _load_account(self) -> dict[str, Any]:
        account: dict[str, Any] = await workflow.execute_activity(
            "load_account",
            AccountRequest(account_id=self._account_id),
            result_type=dict,
            start_to_close_timeout=QUICK,
            heartbeat_timeout=HEARTBEAT,
            retry_policy=DB_RETRY,
        )
        return account

    async def _send_email(self, node: str) -> None:
        info = workflow.info()
        result = await workflow.execute_activity(
            "send_email",
            SendEmailRequest(
                key_prefix=f"{info.workflow_id}/{info.first_execution_run_id}/{node}/1",
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
