"""add_to_journey and remove_from_journey: start the account in another journey, or cancel it there as an operator's
`journey cancel` does. Each happens once across activity retries: the run an attempt starts carries the node visit's
key in its memo, so a later attempt knows it as its own; the cancel is a Temporal update whose id comes from that key,
and the other journey logs it under that id, so a later attempt finds it done."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime

import structlog
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.keepalive import heartbeating
from engine.context import account_data
from engine.db import Account, ActivityEvent, engine_key, utcnow
from engine.language import conditions
from engine.language.plan import Plan
from engine.runtime import journey_state, publish, temporal
from engine.workflow.contracts import OperatorRequest, OperatorResult
from engine.workflow.journey_contracts import (
    AddOutcome,
    AddToJourneyRequest,
    AddToJourneyResult,
    RemoveFromJourneyRequest,
    RemoveFromJourneyResult,
)

log = structlog.get_logger("journey_changes")
ADDED_BY = "added_by"  # memo key of a run an add_to_journey started: the node visit's key
AUDIENCE_SCOPE = conditions.Scope({"account": None}, "audience")


def added_by(journey_id: str, node_id: str) -> str:
    """Who added or removed the account, as the other journey's event log and the operator's cancel say it."""
    return f"journey '{journey_id}' node '{node_id}'"


def cancel_update_id(key: str) -> str:
    """The cancel update's id for a node visit: short, so the other journey's operator_action key fits its column."""
    return "remove_from_journey/" + hashlib.sha256(key.encode()).hexdigest()[:32]


class JourneyChangeActivities:
    def __init__(self, client: Client, engine: Engine, task_queue: str) -> None:
        self.client, self.engine, self.task_queue = client, engine, task_queue

    @activity.defn(name="add_to_journey")
    @heartbeating
    async def add_to_journey(self, request: AddToJourneyRequest) -> AddToJourneyResult:
        """Start the target's latest published version for the account, unless the target takes no entries (not
        published, closed, stopped, finished, outside its schedule), the account already runs it, its audience
        leaves the account out or its re-entry rule refuses it again."""
        plan = await asyncio.to_thread(publish.latest_version, self.engine, request.target)
        if plan is None:
            return self._answer(request, "not_live")
        handle = self.client.get_workflow_handle(temporal.workflow_id(request.target, request.account_id))
        found = await _describe(handle)
        if found is not None:
            memo = await found.memo()
            if memo.get(ADDED_BY) == request.key:  # an earlier attempt started it
                await asyncio.to_thread(self._record_entry, request, str(memo.get("version")))
                return self._answer(request, "added", str(memo.get("version")))
            if found.status == WorkflowExecutionStatus.RUNNING:
                return self._answer(request, "already_in")
        # Closed, stopped, finished, or outside its schedule (judged at the node's time, as the audience is).
        if await asyncio.to_thread(journey_state.entry_refusal, self.engine, request.target, request.occurred_at):
            return self._answer(request, "not_live")
        refused = await asyncio.to_thread(_refusal, self.engine, plan, request.account_id, request.occurred_at)
        if refused is not None:
            return self._answer(request, refused)
        memo = {ADDED_BY: request.key, "version": plan.version}
        run = await publish.start_for_journey(
            self.client, self.engine, plan, request.account_id, request.settings, self.task_queue, memo
        )
        if run is None:  # started by someone else since we looked
            return self._answer(request, "already_in")
        await asyncio.to_thread(self._record_entry, request, plan.version)
        return self._answer(request, "added", plan.version)

    @activity.defn(name="remove_from_journey")
    @heartbeating
    async def remove_from_journey(self, request: RemoveFromJourneyRequest) -> RemoveFromJourneyResult:
        """Cancel the account's running journey `target` through the operators' cancel update, with the reason."""
        handle = self.client.get_workflow_handle(temporal.workflow_id(request.target, request.account_id))
        update_id = cancel_update_id(request.key)
        found = await _describe(handle)
        if found is None:
            return RemoveFromJourneyResult(outcome="not_in_journey")
        where = await asyncio.to_thread(_logged_cancel, self.engine, request, update_id)
        if where is not None:  # an earlier attempt cancelled it
            return RemoveFromJourneyResult(outcome="removed", node=where)
        if found.status != WorkflowExecutionStatus.RUNNING:
            return RemoveFromJourneyResult(outcome="not_in_journey")
        cancel = OperatorRequest(by=added_by(request.journey_id, request.node_id), reason=request.reason)
        try:
            result = await handle.execute_update("cancel", cancel, id=update_id, result_type=OperatorResult)
        except (WorkflowUpdateFailedError, RPCError) as error:
            # Refused while the account is moving (an operator's skip or cancel under way) or has just ended: the
            # next attempt finds it running again, or ended (not_in_journey), or finds this cancel logged.
            raise ApplicationError(
                f"journey '{request.target}' account '{request.account_id}' could not be cancelled yet "
                f"({_why(error)}); trying again",
                type="CancelNotTaken",
            ) from None
        log.info("removed from journey", journey=request.target, account=request.account_id, node=result.node)
        return RemoveFromJourneyResult(outcome="removed", node=result.node)

    def _answer(
        self, request: AddToJourneyRequest, outcome: AddOutcome, version: str | None = None
    ) -> AddToJourneyResult:
        log.info("add to journey", journey=request.target, account=request.account_id, outcome=outcome)
        return AddToJourneyResult(outcome=outcome, version=version)

    def _record_entry(self, request: AddToJourneyRequest, version: str) -> None:
        """The target's `journey_entered` row, saying who added the account; once per node visit."""
        key = engine_key(request.key, "entered")
        with Session(self.engine) as session:
            if session.exec(select(ActivityEvent.id).where(ActivityEvent.key == key)).first() is not None:
                return
            session.add(
                ActivityEvent(
                    key=key,
                    type="journey_entered",
                    account_id=request.account_id,
                    journey_id=request.target,
                    payload={
                        "version": version,
                        "by": added_by(request.journey_id, request.node_id),
                        "from_journey": request.journey_id,
                        "from_node": request.node_id,
                    },
                    occurred_at=request.occurred_at,
                )
            )
            try:
                session.commit()
            except IntegrityError:  # a racing attempt wrote it first
                session.rollback()


async def _describe(handle: WorkflowHandle[object, object]) -> WorkflowExecutionDescription | None:
    """The latest run of the workflow id, or None when there never was one (or it is past retention)."""
    try:
        return await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


def _refusal(engine: Engine, plan: Plan, account_id: str, now: datetime) -> AddOutcome | None:
    """Why the target's audience or re-entry rule keeps the account out, judged at `now`; None: it may enter."""
    with Session(engine) as session:
        account = session.get(Account, account_id)
        if account is None:
            raise ApplicationError(f"account '{account_id}' does not exist", type="AccountNotFound", non_retryable=True)
        data = account_data(account)
        entered = session.exec(
            select(func.max(ActivityEvent.occurred_at)).where(
                ActivityEvent.journey_id == plan.journey,
                ActivityEvent.account_id == account_id,
                ActivityEvent.type == "journey_entered",
            )
        ).first()
    try:
        matched = conditions.compile_condition(plan.audience.accounts, AUDIENCE_SCOPE).evaluate(account=data, now=now)
    except Exception as error:  # odd data or an expression over its limits: the account is left out
        log.warning("audience condition failed", journey=plan.journey, account=account_id, error=str(error))
        matched = False
    if not matched:
        return "not_in_audience"
    after = plan.audience.reentry_after
    if entered is not None and (after is None or _aware(entered) + after > now):
        return "reentry_not_allowed"
    return None


def _logged_cancel(engine: Engine, request: RemoveFromJourneyRequest, update_id: str) -> str | None:
    """The node the target journey logged this cancel at, when it did (the row's key ends with the update id)."""
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent.key, ActivityEvent.node_id)
            .where(
                ActivityEvent.type == "operator_action",
                ActivityEvent.journey_id == request.target,
                ActivityEvent.account_id == request.account_id,
            )
            .order_by(col(ActivityEvent.id))
        ).all()
    return next((node or "" for key, node in rows if key.endswith(f"/operator/{update_id}")), None)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything this project stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


def _why(error: WorkflowUpdateFailedError | RPCError) -> str:
    cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else None
    return cause.message if isinstance(cause, ApplicationError) else str(cause or error)
