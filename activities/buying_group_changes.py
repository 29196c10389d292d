"""The activities of update_buying_group and remove_from_buying_group: change a buying group once, however often
they are retried, and record the change in the event log (`buying_group_updated`, `member_removed`).

Exactly-once rests on the event log's unique key: the change and its event row commit in one transaction, the
row keyed by the node visit (workflow / run / node / visit); an attempt that finds the row changes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.buying_groups import BuyingGroupActivities
from activities.keepalive import heartbeating
from engine.context import account_data, person_data
from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    BuyingGroupRemoval,
    Person,
    engine_key,
    utcnow,
)
from engine.language.conditions import Scope, compile_condition
from engine.language.errors import ExpressionError
from engine.workflow.contracts import BuyingGroupRequest
from engine.workflow.group_contracts import (
    GroupUpdateRequest,
    GroupUpdateResult,
    RemoveMembersRequest,
    RemoveMembersResult,
)

log = structlog.get_logger(__name__)

# `who.where` was checked against the workspace's names when the journey compiled; here it only runs.
MEMBER_SCOPE = Scope({"person": None, "account": None, "buying_group": None}, "member conditions")


class BuyingGroupChangeActivities:
    def __init__(self, engine: Engine, groups: BuyingGroupActivities) -> None:
        self._engine = engine
        self._groups = groups

    @activity.defn(name="update_buying_group")
    @heartbeating
    async def update(self, request: GroupUpdateRequest) -> GroupUpdateResult:
        """Moves the group to `stage` if the stage model allows it from its current stage, sets `status`; a
        refused move changes nothing and says why."""
        return await asyncio.to_thread(self._update, request)

    @activity.defn(name="remove_from_buying_group")
    @heartbeating
    async def remove(self, request: RemoveMembersRequest) -> RemoveMembersResult:
        """Takes the chosen members out of the group (rules will not place them again) and rescores it."""
        return await asyncio.to_thread(self._remove, request)

    # --- update ----------------------------------------------------------------------------------------

    def _update(self, request: GroupUpdateRequest) -> GroupUpdateResult:
        snapshot = self._groups.sync(request.group)  # creates the group in its entry stage when needed
        key = engine_key(request.group.key, "group")
        logger = _logger(request.group).bind(buying_group=snapshot.id)
        with Session(self._engine) as session:
            recorded = _event(session, key)
            if recorded is not None:
                logger.info("buying_group.update_already_applied")
                return _result_from(recorded.payload, self._groups.sync(request.group))
            group = session.get(BuyingGroup, snapshot.id)
            assert group is not None  # read by sync just before
            stage_before, status_before = group.stage, group.status
            stage_after = request.stage if request.stage is not None else group.stage
            status_after = (request.status or None) if request.status is not None else group.status
            if stage_after != stage_before:
                try:
                    request.group.stages.check_move(stage_before, stage_after)
                except ValueError as error:
                    logger.warning("buying_group.move_refused", stage=stage_before, to=stage_after, reason=str(error))
                    return GroupUpdateResult(
                        allowed=False,
                        stage_before=stage_before,
                        stage_after=stage_before,
                        status_before=status_before,
                        status_after=status_before,
                        refusal=str(error),
                        snapshot=snapshot,
                    )
            changes: dict[str, dict[str, Any]] = {}
            if stage_after != stage_before:
                changes["stage"] = {"old": stage_before, "new": stage_after}
            if status_after != status_before:
                changes["status"] = {"old": status_before, "new": status_after}
            if not changes:
                logger.info("buying_group.unchanged", stage=stage_before, status=status_before)
                return GroupUpdateResult(
                    allowed=True,
                    stage_before=stage_before,
                    stage_after=stage_before,
                    status_before=status_before,
                    status_after=status_before,
                    snapshot=snapshot,
                )
            group.stage, group.status, group.updated_at = stage_after, status_after, utcnow()
            session.add(group)
            payload = {
                "buying_group": group.id,
                "solution_interest": group.solution_interest_id,
                "changes": changes,
                **_source(request.group),
            }
            session.add(
                ActivityEvent(
                    key=key,
                    type="buying_group_updated",
                    account_id=request.group.account_id,
                    journey_id=None,  # like an upsert's account_updated: the relay delivers it to journeys
                    payload=payload,
                    occurred_at=request.occurred_at,
                )
            )
            try:
                session.commit()
            except IntegrityError:  # a racing attempt applied it first
                session.rollback()
                recorded = _event(session, key)
                assert recorded is not None
                payload = recorded.payload
            else:
                logger.info("buying_group.updated", changes=changes)
        return _result_from(payload, self._groups.sync(request.group))

    # --- remove ----------------------------------------------------------------------------------------

    def _remove(self, request: RemoveMembersRequest) -> RemoveMembersResult:
        group_request = request.group
        snapshot = self._groups.sync(group_request)
        logger = _logger(group_request).bind(buying_group=snapshot.id)
        prefix = engine_key(group_request.key, "removed") + "/"
        try:
            condition = compile_condition(request.who.where, MEMBER_SCOPE) if request.who.where else None
        except ExpressionError as error:
            raise _permanent(group_request, f"who.where: {error}", "ExpressionError") from None
        with Session(self._engine) as session:
            account = session.get(Account, group_request.account_id)
            if account is None:
                raise _permanent(group_request, "account not found", "AccountNotFound")
            account_values, group_values = account_data(account), snapshot.as_data()
            members = session.exec(
                select(BuyingGroupMember)
                .where(BuyingGroupMember.buying_group_id == snapshot.id)
                .order_by(col(BuyingGroupMember.person_id))
            ).all()
            now = datetime.now(UTC)
            chosen: list[tuple[BuyingGroupMember, Person | None]] = []
            for member in members:
                person = session.get(Person, member.person_id)
                if request.who.roles is not None and member.role not in request.who.roles:
                    continue
                if condition is not None:
                    if person is None:
                        continue
                    values = person_data(person, member.role)
                    try:
                        if not condition.evaluate(
                            person=values, account=account_values, buying_group=group_values, now=now
                        ):
                            continue
                    except ExpressionError as error:
                        logger.warning("buying_group.remove_condition_failed", person=person.id, error=str(error))
                        continue
                chosen.append((member, person))
            # Removed before, placed again by hand since: the first removal's row stands.
            already = set(
                session.exec(
                    select(BuyingGroupRemoval.person_id).where(BuyingGroupRemoval.buying_group_id == snapshot.id)
                )
            )
            for member, person in chosen:
                session.delete(member)
                if member.person_id not in already:
                    session.add(
                        BuyingGroupRemoval(
                            buying_group_id=snapshot.id, person_id=member.person_id, journey_id=group_request.journey_id
                        )
                    )
                session.add(
                    ActivityEvent(
                        key=f"{prefix}{member.person_id}",
                        type="member_removed",
                        account_id=group_request.account_id,
                        person_id=member.person_id,
                        email=person.email if person is not None else None,
                        journey_id=None,  # delivered by the relay, like buying_group_updated
                        payload={
                            "buying_group": snapshot.id,
                            "solution_interest": snapshot.solution_interest,
                            "role": member.role,
                            **_source(group_request),
                        },
                        occurred_at=request.occurred_at,
                    )
                )
            try:
                session.commit()
            except IntegrityError:  # a racing attempt removed some of them first: the rows it wrote stand
                session.rollback()
            removed = sorted(
                int(str(event_key).removeprefix(prefix))
                for event_key in session.exec(
                    select(ActivityEvent.key).where(col(ActivityEvent.key).startswith(prefix, autoescape=True))
                )
            )
        logger.info("buying_group.members_removed", people=removed)
        return RemoveMembersResult(removed=removed, snapshot=self._groups.sync(group_request))


def _source(request: BuyingGroupRequest) -> dict[str, Any]:
    """Which journey and node made the change: the row's own journey column stays empty so the relay sends it."""
    return {"journey": request.journey_id, "node": request.node_id}


def _event(session: Session, key: str) -> ActivityEvent | None:
    return session.exec(select(ActivityEvent).where(ActivityEvent.key == key)).first()


def _result_from(payload: dict[str, Any], snapshot: Any) -> GroupUpdateResult:
    changes = payload.get("changes", {})
    stage, status = changes.get("stage"), changes.get("status")
    return GroupUpdateResult(
        allowed=True,
        changed=True,
        stage_before=stage["old"] if stage else snapshot.stage,
        stage_after=stage["new"] if stage else snapshot.stage,
        status_before=status["old"] if status else snapshot.status,
        status_after=status["new"] if status else snapshot.status,
        snapshot=snapshot,
    )


def _where(request: BuyingGroupRequest) -> str:
    return f"journey '{request.journey_id}' account '{request.account_id}' node '{request.node_id}'"


def _permanent(request: BuyingGroupRequest, message: str, kind: str) -> ApplicationError:
    return ApplicationError(f"{_where(request)}: {message}", type=kind, non_retryable=True)


def _logger(request: BuyingGroupRequest) -> Any:
    return log.bind(journey=request.journey_id, account=request.account_id, node=request.node_id)
