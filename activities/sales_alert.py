"""The sales_alert activity: email sales (the account owner unless the node names an address) a summary rendered
from the journey's template, exactly once per node visit.

Exactly-once rests on the outbox, as for the handoff's owner email: the node visit's key is the row's unique
idempotency key and the Message-ID, and a row that says 'sent' is never delivered again.
"""

from __future__ import annotations

import asyncio
import os
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import Delivery, RecipientRefusedError
from activities.email import DEFAULT_SENDER, RENDER_ERRORS, message_id_left, render_message, send_once
from activities.keepalive import heartbeating
from engine.context import account_data
from engine.db import Account, OutboxMessage
from engine.workflow.group_contracts import SalesAlertRequest, SalesAlertResult

log = structlog.get_logger(__name__)


class SalesAlertActivities:
    def __init__(self, engine: Engine, delivery: Delivery, sender: str | None = None) -> None:
        self._engine = engine
        self._delivery = delivery
        self._sender = sender or os.environ.get("JOURNEY_EMAIL_FROM") or DEFAULT_SENDER

    @activity.defn(name="sales_alert")
    @heartbeating
    async def sales_alert(self, request: SalesAlertRequest) -> SalesAlertResult:
        """Sends the alert once; an account without an owner (and no `to`) gets none, which is logged."""
        return await asyncio.to_thread(self._alert, request)

    def _alert(self, request: SalesAlertRequest) -> SalesAlertResult:
        logger = log.bind(journey=request.journey_id, account=request.account_id, node=request.node_id)
        with Session(self._engine) as session:
            account = session.get(Account, request.account_id)
            if account is None:
                raise _permanent(request, "account not found", "AccountNotFound")
            values = account_data(account)
        to = request.to or values.get("owner_email")
        if not to:
            logger.warning("sales_alert.no_owner", reason="the account has no owner_email and the node no 'to'")
            return SalesAlertResult(sent=False, skipped="no_owner")
        subject, html, text = self._render(request, values)
        message = EmailMessage()
        message["From"] = self._sender
        try:
            message["To"] = Address(addr_spec=str(to))
        except (ValueError, IndexError, HeaderParseError) as error:
            logger.warning("sales_alert.bad_address", to=to, error=str(error))
            return SalesAlertResult(sent=False, to=str(to), skipped="refused")
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        domain = parseaddr(self._sender)[1].rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{message_id_left(request.key)}@{domain}>"
        message["X-Journey"] = request.journey_id
        message["X-Journey-Node"] = request.node_id
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        row = OutboxMessage(
            idempotency_key=request.key,
            journey_id=request.journey_id,
            account_id=request.account_id,
            node_id=request.node_id,
            to_address=str(to),
            subject=subject,
            html=html,
            text=text,
        )
        try:
            delivered = send_once(self._engine, self._delivery, row, message)
        except RecipientRefusedError as error:
            logger.warning("sales_alert.refused", to=to, error=str(error))
            return SalesAlertResult(sent=False, to=str(to), skipped="refused")
        except Exception as error:
            raise ApplicationError(
                f"{_where(request)}: sending the sales alert to {to} failed, will retry: {error}",
                type="EmailDeliveryError",
            ) from error
        logger.info("sales_alert.sent", to=to, already_sent=not delivered)
        return SalesAlertResult(sent=True, already_sent=not delivered, to=str(to))

    def _render(self, request: SalesAlertRequest, account: dict[str, Any]) -> tuple[str, str, str]:
        context = {
            "account": account,
            "buying_group": request.buying_group.as_data() if request.buying_group is not None else None,
            "journey": {"id": request.journey_id, "name": request.journey_name, "version": request.version},
        }
        try:
            return render_message(request.subject, request.html_template, request.text_template, context)
        except RENDER_ERRORS as error:
            # Same templates, same data: a retry would fail the same way.
            raise _permanent(request, f"sales alert template failed: {error}", "TemplateError") from None


def _where(request: SalesAlertRequest) -> str:
    return f"journey '{request.journey_id}' account '{request.account_id}' node '{request.node_id}'"


def _permanent(request: SalesAlertRequest, message: str, kind: str) -> ApplicationError:
    return ApplicationError(f"{_where(request)}: {message}", type=kind, non_retryable=True)
