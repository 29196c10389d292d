"""The buying-group activities: place an account's people in roles by rule, score the group, hand it to sales once.

Exactly-once rests on unique constraints: one group per (account, solution interest), one role per person per
group, one Handoff per group (the journey whose key is in it performs the handoff's effects), one outbox row
for the owner's email and one event-log row for the CRM webhook.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import httpx
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import buying_group_store as store
from activities import handoff_summary
from activities.delivery import Delivery, RecipientRefusedError
from activities.email import DEFAULT_SENDER, message_id_left, send_once
from activities.keepalive import heartbeating
from activities.services import USER_AGENT
from engine.buying_groups import scoring
from engine.context import account_data, person_data
from engine.db import (
    Account,
    ActivityEvent,
    BuyingGroup,
    BuyingGroupMember,
    BuyingGroupRemoval,
    Handoff,
    OutboxMessage,
    Person,
    engine_key,
    utcnow,
)
from engine.language.conditions import Scope, compile_condition
from engine.language.errors import ExpressionError
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, HandoffResult

log = structlog.get_logger(__name__)

# Rules were checked against the workspace's scope when the journey compiled; here they only run.
RULE_SCOPE = Scope({"person": None, "account": None}, "role rules")
WEBHOOK_URL_ENV = "JOURNEY_CRM_WEBHOOK_URL"
WEBHOOK_SECRET_ENV = "JOURNEY_CRM_WEBHOOK_SECRET"
WEBHOOK_TIMEOUT_SECONDS = 30.0
RECENT_ACTIVITIES = 10
_SYNC_ATTEMPTS = 3


class BuyingGroupActivities:
    """`http` is the CRM webhook's client; without one a client is made on first use and closed by `aclose()`."""

    def __init__(self, engine: Engine, delivery: Delivery, http: httpx.AsyncClient | None = None) -> None:
        self._engine = engine
        self._delivery = delivery
        self._http = http
        self._own_http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()

    @activity.defn(name="assign_buying_group")
    @heartbeating
    async def assign(self, request: BuyingGroupRequest) -> BuyingGroupSnapshot:
        """Gets or creates the group, gives each person without a role the first matching role, rescores."""
        return await asyncio.to_thread(self._sync_group, request)

    @activity.defn(name="load_buying_group")
    @heartbeating
    async def load(self, request: BuyingGroupRequest) -> BuyingGroupSnapshot:
        """The same work as `assign`: `wait_for_completeness` loads on every re-check, and running the rules
        again is what lets a person who arrived since fill a role. A name of its own keeps the workflow's
        history saying which node asked, and lets loading change later without touching assignment."""
        return await asyncio.to_thread(self._sync_group, request)

    @activity.defn(name="sales_handoff")
    @heartbeating
    async def handoff(self, request: BuyingGroupRequest) -> HandoffResult:
        """Creates the group's one Handoff; only the journey that created it moves, emails and posts."""
        snapshot = await asyncio.to_thread(self._sync_group, request)
        handoff_id, won, summary = await asyncio.to_thread(self._claim, request, snapshot)
        logger = _logger(request).bind(buying_group=snapshot.id, handoff=handoff_id)
        if not won:
            logger.info("handoff.already_done")
            return HandoffResult(handoff_id=handoff_id, created=False, buying_group_id=snapshot.id, owner_emailed=False)
        owner_emailed = await asyncio.to_thread(self._email_owner, request, snapshot.id, summary)
        webhook_status = await self._post_webhook(request, snapshot.id, summary)
        logger.info("handoff.done", owner_emailed=owner_emailed, webhook_status=webhook_status)
        return HandoffResult(
            handoff_id=handoff_id,
            created=True,
            buying_group_id=snapshot.id,
            owner_emailed=owner_emailed,
            webhook_status=webhook_status,
        )

    # --- assignment and scores ------------------------------------------------------------------------

    def sync(self, request: BuyingGroupRequest) -> BuyingGroupSnapshot:
        """Assignment and scores without an activity context (the on-demand recompute)."""
        return self._sync_group(request)

    def _sync_group(self, request: BuyingGroupRequest) -> BuyingGroupSnapshot:
        for attempt in range(1, _SYNC_ATTEMPTS + 1):
            try:
                with Session(self._engine, expire_on_commit=False) as session:
                    return self._sync(session, request, datetime.now(UTC))
            except IntegrityError as error:
                # Another journey placed the same person in this group first: read again, decide again.
                _logger(request).info("buying_group.conflict", attempt=attempt)
                if attempt == _SYNC_ATTEMPTS:
                    raise ApplicationError(
                        f"{_where(request)}: buying group kept changing under us: {error.orig}",
                        type="BuyingGroupConflict",
                    ) from None
        raise AssertionError("unreachable")

    def _sync(self, session: Session, request: BuyingGroupRequest, now: datetime) -> BuyingGroupSnapshot:
        account = session.get(Account, request.account_id)
        if account is None:
            raise _permanent(request, "account not found", "AccountNotFound")
        group, changed = store.group_for(session, request)
        assert group.id is not None
        people = session.exec(select(Person).where(Person.account_id == account.id).order_by(col(Person.id))).all()
        members = {
            member.person_id: member
            for member in session.exec(select(BuyingGroupMember).where(BuyingGroupMember.buying_group_id == group.id))
        }
        removed = set(
            session.exec(select(BuyingGroupRemoval.person_id).where(BuyingGroupRemoval.buying_group_id == group.id))
        )
        # Everyone's score first: a rule may read `person.engagement_score` (the champion role does).
        scores = store.engagement_scores(session, [person.id for person in people if person.id is not None], now)
        for person in people:
            assert person.id is not None
            if person.engagement_score != scores[person.id]:
                person.engagement_score = scores[person.id]
        template = request.role_template
        try:
            rules = [(role, compile_condition(role.when, RULE_SCOPE)) for role in template.roles]
        except ExpressionError as error:
            raise _permanent(request, f"role template '{template.id}': {error}", "ExpressionError") from None
        account_values = account_data(account)
        placed: list[tuple[Person, str]] = []
        for person in people:
            if person.id is None or person.id in members or person.id in removed:
                continue  # a person a journey removed is not placed again by rule
            values = person_data(person)
            for role, rule in rules:
                try:
                    matched = rule.evaluate(person=values, account=account_values, now=now)
                except ExpressionError as error:
                    _logger(request).warning(
                        "buying_group.rule_failed", person=person.id, role=role.role, error=str(error)
                    )
                    continue
                if matched:
                    member = BuyingGroupMember(
                        buying_group_id=group.id,
                        person_id=person.id,
                        role=role.role,
                        assigned_by="rule",
                        rule=role.when,
                    )
                    session.add(member)
                    members[person.id] = member
                    placed.append((person, role.role))
                    changed = True
                    _logger(request).info(
                        "buying_group.assigned", buying_group=group.id, person=person.id, role=role.role
                    )
                    break
        fills = [
            scoring.RoleFill(
                role.role,
                role.members_required,
                sum(1 for member in members.values() if member.role == role.role),
                role.counts_toward_completeness,
            )
            for role in template.roles
        ]
        weights = {role.role: role.weight_value for role in template.roles}
        completeness = scoring.completeness(fills)
        engagement = scoring.group_engagement(
            (scores.get(person_id, 0.0), weights[member.role])
            for person_id, member in members.items()
            if member.role in weights
        )
        if changed or (group.completeness, group.engagement) != (completeness, engagement):
            group.completeness, group.engagement, group.updated_at = completeness, engagement, utcnow()
        if placed:
            store.record_placements(session, group, request, placed)
        session.commit()
        return store.snapshot(group, request, people, members, scores, scoring.missing_roles(fills))

    # --- handoff --------------------------------------------------------------------------------------

    def _claim(self, request: BuyingGroupRequest, snapshot: BuyingGroupSnapshot) -> tuple[int, bool, dict[str, Any]]:
        """(handoff id, whether this request's journey owns it, the stored summary)."""
        success = request.stages.success
        with Session(self._engine) as session:
            existing = _handoff(session, snapshot.id)
            if existing is None:
                group = session.get(BuyingGroup, snapshot.id)
                account = session.get(Account, request.account_id)
                assert group is not None and account is not None  # both read by _sync just before
                if group.stage != success:
                    try:
                        request.stages.check_move(group.stage, success)
                    except ValueError as error:
                        raise _permanent(
                            request, f"buying group {group.id} cannot be handed off: {error}", "StageError"
                        ) from None
                recent = session.exec(
                    select(ActivityEvent)
                    .where(ActivityEvent.account_id == account.id, col(ActivityEvent.person_id).is_not(None))
                    .order_by(col(ActivityEvent.occurred_at).desc(), col(ActivityEvent.id).desc())
                    .limit(RECENT_ACTIVITIES)
                ).all()
                summary = handoff_summary.build(
                    request.key, request.journey_id, snapshot, request.role_template, account, recent, success
                )
                # Row, stage and analytics event in one transaction: the unique constraint decides the winner.
                row = Handoff(
                    buying_group_id=snapshot.id, account_id=account.id, journey_id=request.journey_id, summary=summary
                )
                group.stage, group.updated_at = success, utcnow()
                session.add(row)
                session.add(
                    ActivityEvent(
                        key=engine_key("handoff", snapshot.id),
                        type="sales_handoff",
                        account_id=account.id,
                        journey_id=request.journey_id,
                        node_id=request.node_id,
                        payload=handoff_summary.webhook_body(summary),
                    )
                )
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                    existing = _handoff(session, snapshot.id)
                    assert existing is not None
                else:
                    assert row.id is not None
                    return row.id, True, summary
            assert existing.id is not None
            return existing.id, existing.summary.get("key") == request.key, existing.summary

    def _email_owner(self, request: BuyingGroupRequest, group_id: int, summary: dict[str, Any]) -> bool:
        logger = _logger(request).bind(buying_group=group_id)
        with Session(self._engine) as session:
            account = session.get(Account, request.account_id)
            owner = account.owner_email if account is not None else None
        if not owner:
            logger.info("handoff.owner_skipped", reason="account has no owner_email")
            return False
        key = f"handoff/{group_id}/owner"
        subject, html, text = handoff_summary.render(summary)
        sender = os.environ.get("JOURNEY_EMAIL_FROM") or DEFAULT_SENDER
        message = EmailMessage()
        message["From"] = sender
        message["To"] = Address(addr_spec=owner)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{message_id_left(key)}@{domain}>"
        message["X-Journey"] = request.journey_id
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        row = OutboxMessage(
            idempotency_key=key,
            journey_id=request.journey_id,
            account_id=request.account_id,
            node_id=request.node_id or "sales_handoff",
            to_address=owner,
            subject=subject,
            html=html,
            text=text,
        )
        try:
            delivered = send_once(self._engine, self._delivery, row, message)
        except RecipientRefusedError as error:
            logger.warning("handoff.owner_refused", error=str(error))
            return False
        except Exception as error:
            raise ApplicationError(
                f"{_where(request)}: emailing the account owner failed, will retry: {error}", type="EmailDeliveryError"
            ) from error
        logger.info("handoff.owner_emailed", already_sent=not delivered)
        return True

    async def _post_webhook(self, request: BuyingGroupRequest, group_id: int, summary: dict[str, Any]) -> int | None:
        url = os.environ.get(WEBHOOK_URL_ENV)
        if not url:
            return None
        key = f"handoff/{group_id}"
        recorded = await asyncio.to_thread(self._webhook_recorded, key)
        if recorded is not None:
            return recorded
        headers = {"Idempotency-Key": key, "User-Agent": USER_AGENT}
        secret = os.environ.get(WEBHOOK_SECRET_ENV, "").strip()
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        shown = str(httpx.URL(url).copy_with(query=None, fragment=None, userinfo=b""))
        where = f"{_where(request)}: CRM webhook {shown}"
        try:
            response = await self._client().post(
                url, json=handoff_summary.webhook_body(summary), headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS
            )
        except httpx.HTTPError as error:
            raise ApplicationError(f"{where}: {type(error).__name__}: {error}", type="WebhookUnavailable") from None
        status = response.status_code
        _logger(request).info("handoff.webhook", buying_group=group_id, status=status)
        if 200 <= status < 300:
            await asyncio.to_thread(self._record_webhook, request, key, status)
            return status
        answer = f"{where} answered {status} {response.reason_phrase}"
        if status >= 500 or status == 429:
            raise ApplicationError(answer, type="WebhookUnavailable")
        raise ApplicationError(answer, type="WebhookRejected", non_retryable=True)

    def _client(self) -> httpx.AsyncClient:
        if self._http is not None:
            return self._http
        if self._own_http is None:
            # Redirects are not followed: the bearer token would travel to whatever host the CRM names.
            self._own_http = httpx.AsyncClient(follow_redirects=False)
        return self._own_http

    def _webhook_recorded(self, key: str) -> int | None:
        """The CRM's answer when the webhook was delivered; receipts written before engine keys existed count
        too, but only rows of the internal type, which no sender can post."""
        receipts = webhook_receipts(key)
        with Session(self._engine) as session:
            event = session.exec(
                select(ActivityEvent).where(
                    col(ActivityEvent.key).in_(receipts), ActivityEvent.type == "handoff_webhook"
                )
            ).first()
            return None if event is None else int(event.payload.get("status", 200))

    def _record_webhook(self, request: BuyingGroupRequest, key: str, status: int) -> None:
        with Session(self._engine) as session:
            session.add(
                ActivityEvent(
                    key=engine_key(key, "webhook"),
                    type="handoff_webhook",
                    account_id=request.account_id,
                    journey_id=request.journey_id,
                    payload={"status": status},
                )
            )
            try:
                session.commit()
            except IntegrityError:  # recorded by an attempt that lost its result
                session.rollback()


def _handoff(session: Session, group_id: int) -> Handoff | None:
    return session.exec(select(Handoff).where(Handoff.buying_group_id == group_id)).first()


def _where(request: BuyingGroupRequest) -> str:
    interest = request.solution_interest.id
    return f"journey '{request.journey_id}' account '{request.account_id}' solution interest '{interest}'"


def _permanent(request: BuyingGroupRequest, message: str, kind: str) -> ApplicationError:
    return ApplicationError(f"{_where(request)}: {message}", type=kind, non_retryable=True)


def _logger(request: BuyingGroupRequest) -> Any:
    return log.bind(journey=request.journey_id, account=request.account_id, interest=request.solution_interest.id)


def webhook_receipts(handoff_key: str) -> tuple[str, str]:
    """The event-log keys a CRM webhook receipt of this handoff ('handoff/<group>') may have: the engine's, and
    the one used before engine keys existed. Read only with the internal type, which no sender can post."""
    return engine_key(handoff_key, "webhook"), f"{handoff_key}/webhook"
