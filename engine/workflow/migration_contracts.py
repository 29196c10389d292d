"""What `journey publish --migrate` sends a running account (the Temporal update `migrate`) and gets back. Serialised
into Temporal's history: fields are only ever added with defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.language.plan import Plan
from engine.workflow.contracts import Contract

MigrateOutcome = Literal["moved", "not_moved"]


class MigrateRequest(Contract):
    """Move the account to `plan` (a later version of its journey) at its next safe point: the waiting node it is
    at, under the same id in `plan` or the id `node_map` gives it."""

    plan: Plan
    node_map: dict[str, str] = Field(default_factory=dict, description="old node id -> node id in `plan`")
    by: str = Field(description="who moves it, kept in the event log")
    reason: str = ""


class MigrateResult(Contract):
    journey_id: str
    account_id: str
    outcome: MigrateOutcome
    from_version: str
    to_version: str
    from_node: str
    to_node: str | None = Field(None, description="where the account goes on in the new version; None if not moved")
    message: str
