"""The activities of people_split: decide each person's path, give the path's people a role, change their fields.

Each decision and each change commits in one transaction with its event-log row, keyed by the node visit, the path
step and the person: an attempt that finds the row decides or changes nothing again, so retries and replays never
repeat an effect. Paths are decided here, not in the workflow: conditions read each person's whole record without
it passing through Temporal's history (the result carries ids only), and the rows analytics count are written in
the transaction that makes the decision.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.buying_groups import BuyingGroupActivities
from activities.keepalive import heartbeating
from engine.context import account_data, person_data
from engine.db import Account, ActivityEvent, BuyingGroupMember, Person, engine_key, insert_new, utcnow
from engine.language.conditions import Condition, Scope, compile_condition
from engine.language.errors import ExpressionError, ExpressionLimitError
from engine.language.people_checks import SETTABLE_PERSON_FIELDS
from engine.workflow.people_contracts import (
    MAX_PEOPLE,
    AssignPeopleRoleRequest,
    AssignPeopleRoleResult,
    RoutePeopleRequest,
    RoutePeopleResult,
    UpdatePeopleRequest,
    UpdatePeopleResult,
)

log = structlog.get_logger(__name__)

# Conditions were checked against the workspace's names when the journey compiled; here they only run.
PEOPLE_SCOPE = Scope({"person": None, "account": None, "buying_group": None}, "people conditions")
PATH_ROW = "person_path"


class PeopleActivities:
    def __init__(self, engine: Engine, groups: BuyingGroupActivities) -> None:
        self._engine = engine
        self._groups = groups

    @activity.defn(name="route_people")
    @heartbeating
    async def route(self, request: RoutePeopleRequest) -> RoutePeopleResult:
        """Each person of the account takes the first path whose condition holds, else otherwise; decided once per
        node visit and logged as one `person_path` row per person."""
        return await asyncio.to_thread(self._route, request)

    @activity.defn(name="assign_people_role")
    @heartbeating
    async def assign_role(self, request: AssignPeopleRoleRequest) -> AssignPeopleRoleResult:
        """Gives the path's people the role by hand (`member_assigned` once each) and rescores the group."""
        return await asyncio.to_thread(self._assign_role, request)

    @activity.defn(name="update_people")
    @heartbeating
    async def update(self, request: UpdatePeopleRequest) -> UpdatePeopleResult:
        """Sets fields and attributes on the path's people (`person_updated` once each, with what changed)."""
        return await asyncio.to_thread(self._update, request)

    # --- route -----------------------------------------------------------------------------------------

    def _route(self, request: RoutePeopleRequest) -> RoutePeopleResult:
        prefix = engine_key(request.key, PATH_ROW) + "/"
        with Session(self._engine) as session:
            recorded = _rows(session, prefix)
            if recorded:
                return _routed(recorded, len(request.names))
            account = session.get(Account, request.account_id)
            if account is None:
                raise _permanent(request.journey_id, request.account_id, request.node_id, "account not found")
            of_account = Person.account_id == request.account_id
            people = session.exec(select(Person).where(of_account).order_by(col(Person.id)).limit(MAX_PEOPLE)).all()
            total = session.exec(select(func.count()).select_from(Person).where(of_account)).one()
            left_out = max(0, total - MAX_PEOPLE)
            rows = self._decide(request, account, people, prefix, left_out)
            insert_new(session.connection(), ActivityEvent.__table__, rows)  # type: ignore[attr-defined]
            session.commit()
            recorded = _rows(session, prefix)
        result = _routed(recorded, len(request.names))
        counts = {name: len(ids) for name, ids in zip(request.names, result.people, strict=True)}
        _logger(request.journey_id, request.account_id, request.node_id).info(
            "people.routed", paths=counts, left_out=result.left_out
        )
        return result

    def _decide(
        self, request: RoutePeopleRequest, account: Account, people: Any, prefix: str, left_out: int
    ) -> list[dict[str, Any]]:
        logger = _logger(request.journey_id, request.account_id, request.node_id)
        try:
            conditions = [compile_condition(when, PEOPLE_SCOPE) for when in request.whens]
        except ExpressionError as error:
            raise _permanent(request.journey_id, request.account_id, request.node_id, str(error)) from None
        snapshot = request.buying_group
        group = snapshot.as_data() if snapshot is not None else None
        roles = {member.person_id: member.role for member in snapshot.members} if snapshot is not None else {}
        account_values = account_data(account)
        rows = []
        for person in people:
            values = person_data(person, roles.get(person.id))
            chosen = _first_holding(conditions, values, account_values, group, request, logger)
            payload = {"path": request.names[chosen], "path_index": chosen, "visit": request.visit}
            rows.append(
                {
                    "key": f"{prefix}{person.id}",
                    "type": PATH_ROW,
                    "account_id": request.account_id,
                    "person_id": person.id,
                    "email": person.email,
                    "status": "matched",
                    "reason": None,
                    "journey_id": request.journey_id,  # the journey's own record: the relay does not deliver it
                    "node_id": request.node_id,
                    "payload": {**payload, "version": request.version, "left_out": left_out},
                    "occurred_at": request.occurred_at,
                    "recorded_at": utcnow(),
                    "delivered_at": None,
                }
            )
        return rows

    # --- assign_role -----------------------------------------------------------------------------------

    def _assign_role(self, request: AssignPeopleRoleRequest) -> AssignPeopleRoleResult:
        group_request = request.group
        snapshot = self._groups.sync(group_request)  # creates the group when it does not exist yet
        prefix = engine_key(request.key, "assigned") + "/"
        logger = _logger(group_request.journey_id, group_request.account_id, group_request.node_id)
        with Session(self._engine) as session:
            done = {_person_of(key, prefix) for key in _keys(session, prefix)}
            people = _people(session, group_request.account_id, request.people)
            members = {
                member.person_id: member
                for member in session.exec(
                    select(BuyingGroupMember).where(
                        BuyingGroupMember.buying_group_id == snapshot.id,
                        col(BuyingGroupMember.person_id).in_(list(people)),
                    )
                )
            }
            role, held = request.role, (request.role, "manual")
            for person_id, person in people.items():
                member = members.get(person_id)
                if person_id in done or (member is not None and (member.role, member.assigned_by) == held):
                    continue  # given by an earlier attempt, or already held by hand: nothing to record
                before = member.role if member is not None else None
                member = member or BuyingGroupMember(buying_group_id=snapshot.id, person_id=person_id, role=role)
                member.role, member.assigned_by, member.rule, member.assigned_at = role, "manual", None, utcnow()
                session.add(member)
                session.add(
                    ActivityEvent(
                        key=f"{prefix}{person_id}",
                        type="member_assigned",
                        account_id=group_request.account_id,
                        person_id=person_id,
                        email=person.email,
                        journey_id=None,  # the relay delivers it: a waiting completeness gate re-checks
                        payload={
                            "buying_group": snapshot.id,
                            "solution_interest": snapshot.solution_interest,
                            "role": role,
                            "role_before": before,
                            "journey": group_request.journey_id,
                            "node": group_request.node_id,
                        },
                        occurred_at=request.occurred_at,
                    )
                )
            try:
                session.commit()
            except IntegrityError:  # a racing attempt assigned them first: the rows it wrote stand
                session.rollback()
            assigned = sorted(_person_of(key, prefix) for key in _keys(session, prefix))
        logger.info("people.role_assigned", role=request.role, people=assigned)
        return AssignPeopleRoleResult(assigned=assigned, snapshot=self._groups.sync(group_request))

    # --- update_person ---------------------------------------------------------------------------------

    def _update(self, request: UpdatePeopleRequest) -> UpdatePeopleResult:
        prefix = engine_key(request.key, "updated") + "/"
        with Session(self._engine) as session:
            done = {_person_of(key, prefix) for key in _keys(session, prefix)}
            for person_id, person in _people(session, request.account_id, request.people).items():
                if person_id in done:
                    continue
                changes = _apply(person, request.set)
                if not changes:
                    continue  # already so: nothing changes, nothing is recorded (as an upsert does)
                session.add(person)
                session.add(
                    ActivityEvent(
                        key=f"{prefix}{person_id}",
                        type="person_updated",
                        account_id=request.account_id,
                        person_id=person_id,
                        email=person.email,
                        journey_id=None,  # like an upsert's person_updated: the relay delivers it to journeys
                        payload={"changes": changes, "journey": request.journey_id, "node": request.node_id},
                        occurred_at=request.occurred_at,
                    )
                )
            try:
                session.commit()
            except IntegrityError:  # a racing attempt changed them first
                session.rollback()
            updated = sorted(_person_of(key, prefix) for key in _keys(session, prefix))
        _logger(request.journey_id, request.account_id, request.node_id).info("people.updated", people=updated)
        return UpdatePeopleResult(updated=updated)


def _first_holding(
    conditions: list[Condition],
    person: dict[str, Any],
    account: dict[str, Any],
    group: dict[str, Any] | None,
    request: RoutePeopleRequest,
    logger: Any,
) -> int:
    """The index of the first path whose condition holds for the person; len(conditions) is otherwise."""
    for index, condition in enumerate(conditions):
        try:
            # The workflow's time, not this worker's clock: the same person decides the same way on a retry.
            if condition.evaluate(person=person, account=account, buying_group=group, now=request.occurred_at):
                return index
        except ExpressionLimitError as error:
            raise _permanent(request.journey_id, request.account_id, request.node_id, str(error)) from None
        except Exception as error:  # a condition failing on one person's odd data skips the path for them
            logger.warning("people.condition_failed", person=person.get("id"), path=index, error=str(error))
    return len(conditions)


def _apply(person: Person, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Set the fields and attributes on the row; the changes as {name: {old, new}} (none: it already had them)."""
    changes: dict[str, dict[str, Any]] = {}
    attributes = dict(person.attributes or {})
    for name, value in values.items():
        if name in SETTABLE_PERSON_FIELDS:
            old = getattr(person, name)
            if old != value:
                setattr(person, name, value)
                changes[name] = {"old": old, "new": value}
        elif name not in attributes or attributes[name] != value:
            changes[name] = {"old": attributes.get(name), "new": value}
            attributes[name] = value
    if any(name not in SETTABLE_PERSON_FIELDS for name in changes):
        person.attributes = attributes  # a new dict: the JSON column is written only when it is replaced
    return changes


def _people(session: Session, account_id: str, ids: list[int]) -> dict[int, Person]:
    """The account's people among `ids`, by id (someone erased since is simply not there)."""
    query = select(Person).where(Person.account_id == account_id, col(Person.id).in_(ids)).order_by(col(Person.id))
    return {person.id: person for person in session.exec(query) if person.id is not None}


def _rows(session: Session, prefix: str) -> list[ActivityEvent]:
    query = select(ActivityEvent).where(col(ActivityEvent.key).startswith(prefix, autoescape=True))
    return list(session.exec(query.order_by(col(ActivityEvent.person_id))))


def _keys(session: Session, prefix: str) -> list[str]:
    query = select(ActivityEvent.key).where(col(ActivityEvent.key).startswith(prefix, autoescape=True))
    return list(session.exec(query))


def _person_of(key: str, prefix: str) -> int:
    return int(key.removeprefix(prefix))


def _routed(rows: list[ActivityEvent], paths: int) -> RoutePeopleResult:
    people: list[list[int]] = [[] for _ in range(paths)]
    for row in rows:
        if row.person_id is not None:
            people[int(row.payload["path_index"])].append(row.person_id)
    left_out = int(rows[0].payload.get("left_out", 0)) if rows else 0
    return RoutePeopleResult(people=[sorted(ids) for ids in people], left_out=left_out)


def _permanent(journey: str, account: str, node: str, message: str) -> ApplicationError:
    return ApplicationError(
        f"journey '{journey}' account '{account}' node '{node}': {message}", type="PeopleSplitError", non_retryable=True
    )


def _logger(journey: str, account: str, node: str | None) -> Any:
    return log.bind(journey=journey, account=account, node=node)
