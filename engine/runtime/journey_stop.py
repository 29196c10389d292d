"""`journey stop`: mark the journey stopped (so nobody new enters), then cancel every running account through the
operators' cancel update, each logged with who stopped it and why, as `journey cancel` logs it.

Safe to run again after a crash: the state is already stopped, the accounts cancelled before are no longer running,
and an account whose cancel was sent but not answered gets the same update id again, which Temporal answers with
the first outcome instead of cancelling twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.runtime import journey_state, operators
from engine.workflow.contracts import OperatorRequest, OperatorResult

CONCURRENT_CANCELS = 20
UPDATE_ID = "journey-stop"  # one stop per run: a journey is stopped once, and a stopped one takes nobody new
ROUNDS = 5  # listings: an account whose start was under way when the journey stopped shows up in a later one
RETRY_PAUSE = 1.0  # seconds before asking an account again that refused (it was moving, or not started yet)


@dataclass
class StopSummary:
    journey: str
    newly_stopped: bool
    cancelled: list[str] = field(default_factory=list)
    ended_meanwhile: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # workflow id -> why, after every retry


async def running(client: Client, journey_id: str) -> list[str]:
    """The workflow ids of the journey's running accounts (a visibility query)."""
    return [execution.id async for execution in client.list_workflows(operators.stuck_query(journey_id))]


async def stop(
    client: Client,
    engine: Engine,
    journey_id: str,
    by: str,
    reason: str,
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> StopSummary:
    """Stop the journey and cancel its running accounts; `progress(done, total)` after each account."""
    newly = await asyncio.to_thread(journey_state.stop, engine, journey_id, by, reason, now)
    summary = StopSummary(journey_id, newly)
    request = OperatorRequest(by=by, reason=reason)
    handled: set[str] = set()
    limit = asyncio.Semaphore(CONCURRENT_CANCELS)

    async def one(workflow_id: str) -> None:
        async with limit:
            outcome = await _cancel(client, workflow_id, request)
            for _ in range(ROUNDS):
                if outcome is None or outcome == "ended" or "try again" not in outcome:
                    break
                await asyncio.sleep(RETRY_PAUSE)
                outcome = await _cancel(client, workflow_id, request)
        if outcome is None:
            summary.cancelled.append(workflow_id)
        elif outcome == "ended":
            summary.ended_meanwhile.append(workflow_id)
        else:
            summary.refused[workflow_id] = outcome
        if progress is not None:
            progress(len(summary.cancelled) + len(summary.ended_meanwhile) + len(summary.refused), len(handled))

    for _ in range(ROUNDS):
        found = [workflow_id for workflow_id in await running(client, journey_id) if workflow_id not in handled]
        if not found:
            break
        handled.update(found)
        await asyncio.gather(*(one(workflow_id) for workflow_id in found))
    summary.cancelled.sort()
    summary.ended_meanwhile.sort()
    return summary


async def _cancel(client: Client, workflow_id: str, request: OperatorRequest) -> str | None:
    """None when cancelled (now, or by an earlier run of this stop), 'ended' when the run ended meanwhile, or why the
    account refused ('... try again' when it may take it a moment later)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.execute_update("cancel", request, id=UPDATE_ID, result_type=OperatorResult)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        why = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        return f"{why}; try again" if "try again" in why or "already leaving" in why else why
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return "ended"
        raise
    return None
