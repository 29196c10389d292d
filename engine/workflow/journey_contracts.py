"""What add_to_journey and remove_from_journey send to their activities and get back. Serialised into Temporal's
history: fields are only ever added with defaults."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from engine.workflow.contracts import Contract, JourneySettings

# The node_left branch of each answer, in the event log and in analytics.
AddOutcome = Literal["added", "not_live", "not_in_audience", "reentry_not_allowed", "already_in"]
RemoveOutcome = Literal["removed", "not_in_journey"]


class AddToJourneyRequest(Contract):
    """Start the account in `target` once: `key` (the node visit) marks the run it starts, so a retried attempt
    recognises that run as its own instead of finding the account 'already in'."""

    key: str
    journey_id: str
    account_id: str
    node_id: str
    target: str
    settings: JourneySettings = Field(description="the knobs the adding run was started with, passed on")
    occurred_at: datetime = Field(description="when the account was at the node: audience and re-entry are judged then")


class AddToJourneyResult(Contract):
    outcome: AddOutcome
    version: str | None = Field(None, description="the target's version that was started (added)")


class RemoveFromJourneyRequest(Contract):
    """Cancel the account's run of `target` as an operator's cancel does; `key` (the node visit) gives the update
    its id, so a retried attempt is the same update and the target's event log has the cancel once."""

    key: str
    journey_id: str
    account_id: str
    node_id: str
    target: str
    reason: str


class RemoveFromJourneyResult(Contract):
    outcome: RemoveOutcome
    node: str | None = Field(None, description="where the account was in the target journey (removed)")
