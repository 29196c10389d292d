"""Activities that read and change accounts and write the journey's steps to the event log.

Each write carries a unique key stored in the event log in the same transaction, so a retried
activity changes nothing the second time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import account_values
from activities.keepalive import heartbeating
from engine.context import account_data
from engine.db import Account, ActivityEvent, engine_key, insert_new
from engine.language.variants import variant_of
from engine.workflow import change_match
from engine.workflow.contracts import (
    AccountRequest,
    OperatorLog,
    StepBatch,
    StepRecord,
    StoreResponseRequest,
    UpdateAccountRequest,
)

log = structlog.get_logger()

_COLUMNS = frozenset({"name", "industry", "employees", "annual_revenue", "country", "timezone", "owner_email"})


class AccountActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name="load_account")
    @heartbeating
    async def load_account(self, request: AccountRequest) -> dict[str, Any]:
        """The account as expressions see it, read fresh (a split decides on current data)."""
        return await asyncio.to_thread(self._load, request.account_id)

    def _load(self, account_id: str) -> dict[str, Any]:
        with Session(self.engine) as session:
            account = session.get(Account, account_id)
            if account is None:
                raise ApplicationError(
                    f"account '{account_id}' does not exist (deleted while its journey ran?)",
                    type="AccountNotFound",
                    non_retryable=True,
                )
            return account_data(account)

    @activity.defn(name="update_account")
    @heartbeating
    async def update_account(self, request: UpdateAccountRequest) -> dict[str, Any]:
        """Apply `set` and `add` once, however often the activity is retried; return the account's data."""
        return await asyncio.to_thread(self._update, request)

    def _update(self, request: UpdateAccountRequest) -> dict[str, Any]:
        def apply(account: Account, attributes: dict[str, Any]) -> dict[str, Any]:
            def value_of(name: str) -> Any:
                return getattr(account, name) if name in _COLUMNS else attributes.get(name)

            before = {name: value_of(name) for name in [*request.set, *request.add]}
            for name, value in request.set.items():
                if name in _COLUMNS:
                    setattr(account, name, value)
                else:
                    attributes[name] = value
            for name, amount in request.add.items():
                total = _number(value_of(name)) + amount
                if name in _COLUMNS:
                    setattr(account, name, total)
                else:
                    attributes[name] = int(total) if float(total).is_integer() else total
            # What changed, old -> new, as an upsert's account_updated says it: other journeys wait for it.
            changes = {
                name: {"old": old, "new": value_of(name)} for name, old in before.items() if value_of(name) != old
            }
            return {"set": request.set, "add": request.add, "changes": changes}

        return self._change_once(request, apply, "account update already applied")

    def _change_once(
        self,
        request: UpdateAccountRequest | StoreResponseRequest,
        apply: Callable[[Account, dict[str, Any]], dict[str, Any]],
        already: str,
    ) -> dict[str, Any]:
        """Change the account with `apply` (which edits it and its attributes, and returns the event's payload) and
        record the account_updated event under the request's key, in one transaction: once, however often the
        activity is retried or races itself. Returns the account's data."""
        with Session(self.engine) as session:
            if (
                session.exec(select(ActivityEvent.id).where(ActivityEvent.key == engine_key(request.key))).first()
                is not None
            ):
                log.info(already, key=request.key, account=request.account_id)
                return self._load(request.account_id)
            account = session.get(Account, request.account_id)
            if account is None:
                raise ApplicationError(
                    f"account '{request.account_id}' does not exist", type="AccountNotFound", non_retryable=True
                )
            attributes = dict(account.attributes or {})
            payload = apply(account, attributes)
            account.attributes = attributes
            session.add(account)
            session.add(
                ActivityEvent(
                    key=engine_key(request.key),
                    type="account_updated",
                    account_id=request.account_id,
                    journey_id=request.journey_id,
                    node_id=request.node_id,
                    payload=payload,
                    occurred_at=request.occurred_at,
                    shared=True,  # the relay signals it to the account's other journeys (a wait_for_change)
                )
            )
            try:
                session.commit()
            except IntegrityError:  # a concurrent attempt applied it first
                session.rollback()
            return self._load(request.account_id)

    @activity.defn(name="store_response")
    @heartbeating
    async def store_response(self, request: StoreResponseRequest) -> dict[str, Any]:
        """Save the fields an `external_action` chose from its service's answer, once however often the activity is
        retried; a value a field cannot take is left out and named in the event. Returns the account's data."""
        return await asyncio.to_thread(self._store, request)

    def _store(self, request: StoreResponseRequest) -> dict[str, Any]:
        def apply(account: Account, attributes: dict[str, Any]) -> dict[str, Any]:
            stored: dict[str, Any] = {}
            changes: dict[str, dict[str, Any]] = {}
            refused: dict[str, str] = {}
            for name, raw in request.values.items():
                try:
                    value = account_values.checked(name, raw)
                except account_values.ValueRefusedError as error:
                    refused[name] = str(error)
                    continue
                old = getattr(account, name) if name in _COLUMNS else attributes.get(name)
                if name in _COLUMNS:
                    setattr(account, name, value)
                else:
                    attributes[name] = value
                stored[name] = value
                if old != value:
                    changes[name] = {"old": old, "new": value}
            payload: dict[str, Any] = {"set": stored, "add": {}, "changes": changes, "service": request.service_name}
            if refused:
                log.warning(
                    "response fields refused",
                    journey=request.journey_id,
                    account=request.account_id,
                    node=request.node_id,
                    refused=refused,
                )
                payload["refused"] = refused
            return payload

        return self._change_once(request, apply, "response fields already stored")

    @activity.defn(name="record_step")
    @heartbeating
    async def record_step(self, step: StepRecord) -> None:
        """Write a node entered / left to the event log, once."""
        await asyncio.to_thread(self._record, step)

    def _record(self, step: StepRecord) -> None:
        self._write_once(_step_row(step))

    @activity.defn(name="record_steps")
    @heartbeating
    async def record_steps(self, steps: list[StepRecord]) -> None:
        """Write a batch of nodes entered / left (all the journey did since it last waited), each row once."""
        await asyncio.to_thread(self._record_all, steps)

    @activity.defn(name="log_steps")
    @heartbeating
    async def log_steps(self, batch: StepBatch) -> None:
        """The same rows as record_steps, from the compact batch that journeys started since shape 2 send."""
        await asyncio.to_thread(self._record_all, batch.records())

    def _record_all(self, steps: list[StepRecord]) -> None:
        """One statement: rows an earlier (or racing) attempt wrote are left alone."""
        rows = [_step_row(step).model_dump(exclude={"id"}) for step in steps]
        with self.engine.begin() as connection:
            insert_new(connection, ActivityEvent.__table__, rows)  # type: ignore[attr-defined]

    def _write_once(self, event: ActivityEvent) -> None:
        with Session(self.engine) as session:
            if session.exec(select(ActivityEvent.id).where(ActivityEvent.key == event.key)).first() is not None:
                return  # recorded by an earlier attempt
            session.add(event)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                if session.exec(select(ActivityEvent.id).where(ActivityEvent.key == event.key)).first() is None:
                    raise  # not a race with another attempt: a real problem (e.g. the account is gone)

    @activity.defn(name="record_operator_action")
    @heartbeating
    async def record_operator_action(self, action: OperatorLog) -> None:
        """Write an operator's action (who, why, what) to the event log, once."""
        await asyncio.to_thread(
            self._write_once,
            ActivityEvent(
                key=engine_key(action.key),
                type="operator_action",
                account_id=action.account_id,
                journey_id=action.journey_id,
                node_id=action.node_id,
                payload={"action": action.action, "by": action.by, "reason": action.reason, **action.detail},
                occurred_at=action.occurred_at,
            ),
        )


def _number(value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApplicationError(f"cannot add to '{value}': it is not a number", type="NotANumber", non_retryable=True)
    return float(value)


def _step_row(step: StepRecord) -> ActivityEvent:
    payload: dict[str, Any] = {
        "version": step.version,
        "node_type": step.node_type,
        "visit": step.visit,
        "branch": step.branch,
    }
    # The variant an A/B test gave the account, by name, so analytics group by it whatever its percent was.
    if step.type == "node_left" and step.node_type == "variant_split":
        payload["variant"] = variant_of(step.branch)
    # A change seen by wait_for_change: the branch stays the edge's label, what changed goes beside it.
    if step.type == "node_left" and step.node_type == "wait_for_change":
        payload["branch"], changed = change_match.split_branch(step.branch)
        if changed is not None:
            payload["changed"] = changed
    return ActivityEvent(
        key=engine_key(step.key),
        type=step.type,
        account_id=step.account_id,
        journey_id=step.journey_id,
        node_id=step.node_id,
        payload=payload,
        occurred_at=step.occurred_at,
    )
