"""What the buying-group change nodes (update_buying_group, remove_from_buying_group) and sales_alert send to
their activities and get back. Serialised into Temporal's history: fields are only ever added with defaults."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from engine.language.model import Members
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, Contract


class GroupUpdateRequest(Contract):
    """Set the group's stage and/or status once: `group.key` keys the change in the event log."""

    group: BuyingGroupRequest
    stage: str | None = None
    status: str | None = None
    occurred_at: datetime


class GroupUpdateResult(Contract):
    allowed: bool = Field(description="false when the stage model refuses the move; nothing was changed then")
    changed: bool = Field(False, description="false when the group already had that stage and status")
    stage_before: str
    stage_after: str
    status_before: str | None = None
    status_after: str | None = None
    refusal: str | None = Field(None, description="why the stage model refuses the move")
    snapshot: BuyingGroupSnapshot


class RemoveMembersRequest(Contract):
    group: BuyingGroupRequest
    who: Members
    occurred_at: datetime


class RemoveMembersResult(Contract):
    removed: list[int] = Field(default_factory=list, description="ids of the people removed (by any attempt)")
    snapshot: BuyingGroupSnapshot


class SalesAlertRequest(Contract):
    """Templates come from the pinned Plan; `key` is the outbox idempotency key (one alert per node visit)."""

    key: str
    journey_id: str
    journey_name: str
    version: str
    account_id: str
    node_id: str
    to: str | None = Field(None, description="the node's `to`; None: the account's owner_email")
    subject: str
    html_template: str
    text_template: str | None = None
    buying_group: BuyingGroupSnapshot | None = None


class SalesAlertResult(Contract):
    sent: bool = Field(description="true when this attempt or an earlier one delivered the alert")
    already_sent: bool = False
    to: str | None = None
    skipped: str | None = Field(None, description="why nothing was sent: 'no_owner' or 'refused'")
