"""Finding accounts by their search attributes and acting on them: what `journey status`, `journey stuck`
and `journey skip|pause|resume|cancel` do. Every lookup is a visibility query (never a listing of
every workflow), and the query is returned too, so an operator can paste it into the Temporal UI."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.db import utcnow
from engine.workflow import visibility
from engine.workflow.contracts import OperatorRequest, OperatorResult

ACTIONS = ("skip", "pause", "resume", "cancel")
CONCURRENT_ACTIONS = 20


@dataclass
class Parked:
    """One account's journey as visibility sees it."""

    workflow_id: str
    journey: str | None
    account: str | None
    account_name: str | None
    node: str | None
    node_type: str | None
    waiting_for: str | None
    since: datetime | None
    completeness: float | None
    status: str

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data


def stuck_query(
    journey: str | None = None,
    node: str | None = None,
    waiting_for: str | None = None,
    older_than: timedelta | None = None,
    account: str | None = None,
    now: datetime | None = None,
) -> str:
    """The visibility query for running journeys matching the filters, e.g.
    `JourneyNode = "wait_demo" AND JourneyNodeSince < "2026-11-20T09:00:00Z" AND ExecutionStatus = "Running"`."""
    parts = ['WorkflowType = "Journey"']
    if journey:
        parts.append(f"{visibility.JOURNEY_ID.name} = {visibility.quoted(journey)}")
    if account:
        parts.append(f"{visibility.ACCOUNT_ID.name} = {visibility.quoted(account)}")
    if node:
        parts.append(f"{visibility.NODE.name} = {visibility.quoted(node)}")
    if waiting_for:
        parts.append(f"{visibility.WAITING_FOR.name} = {visibility.quoted(waiting_for)}")
    if older_than is not None:
        before = (now or utcnow()) - older_than
        parts.append(f"{visibility.NODE_SINCE.name} < {visibility.quoted(before.strftime('%Y-%m-%dT%H:%M:%SZ'))}")
    parts.append('ExecutionStatus = "Running"')
    return " AND ".join(parts)


def account_query(account: str, journey: str | None = None) -> str:
    """Every journey of the account, running or ended."""
    query = f'WorkflowType = "Journey" AND {visibility.ACCOUNT_ID.name} = {visibility.quoted(account)}'
    return query + (f" AND {visibility.JOURNEY_ID.name} = {visibility.quoted(journey)}" if journey else "")


async def find(client: Client, query: str, limit: int | None = None) -> list[Parked]:
    found = []
    async for execution in client.list_workflows(query, limit=limit):
        found.append(_parked(execution))
    # Longest parked first: the accounts most likely stuck.
    found.sort(key=lambda parked: (parked.since is None, parked.since.timestamp() if parked.since else 0.0))
    return found


def _parked(execution: WorkflowExecution) -> Parked:
    attributes = execution.typed_search_attributes
    since = attributes.get(visibility.NODE_SINCE)
    return Parked(
        workflow_id=execution.id,
        journey=attributes.get(visibility.JOURNEY_ID),
        account=attributes.get(visibility.ACCOUNT_ID),
        account_name=attributes.get(visibility.ACCOUNT_NAME),
        node=attributes.get(visibility.NODE),
        node_type=attributes.get(visibility.NODE_TYPE),
        waiting_for=attributes.get(visibility.WAITING_FOR),
        since=since,
        completeness=attributes.get(visibility.COMPLETENESS),
        status=execution.status.name.lower() if execution.status else "unknown",
    )


async def status(client: Client, account: str, journey: str | None = None) -> list[dict[str, Any]]:
    """Each of the account's journeys, with the full state of running ones (path, inbox, buying group)."""
    rows = []
    for parked in await find(client, account_query(account, journey)):
        row = parked.as_json()
        if parked.status == "running":
            state = await client.get_workflow_handle(parked.workflow_id).query("state")
            row["paused"] = state.get("paused")
            row["path"] = [visit["node"] for visit in state.get("path", [])]
            row["inbox"] = [event["type"] for event in state.get("inbox") or []]
            row["emails_sent"] = state.get("emails_sent")
            group = state.get("buying_group") or {}
            row["missing_roles"] = group.get("missing_roles")
        rows.append(row)
    return rows


@dataclass
class Outcome:
    workflow_id: str
    ok: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def act(client: Client, action: str, workflow_ids: list[str], request: OperatorRequest) -> list[Outcome]:
    """Send the update to each workflow; a refusal (the validator's reason) is an outcome, not an error."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action '{action}': expected one of {', '.join(ACTIONS)}")
    limit = asyncio.Semaphore(CONCURRENT_ACTIONS)

    async def one(workflow_id: str) -> Outcome:
        async with limit:
            handle = client.get_workflow_handle(workflow_id)
            try:
                result = await handle.execute_update(action, request, result_type=OperatorResult)
            except WorkflowUpdateFailedError as error:
                cause = error.cause
                reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
                return Outcome(workflow_id, False, f"refused: {reason}")
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    return Outcome(workflow_id, False, "refused: not running (ended, or never started)")
                raise
            return Outcome(workflow_id, True, result.message)

    return list(await asyncio.gather(*(one(workflow_id) for workflow_id in workflow_ids)))
