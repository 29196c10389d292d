"""What a people_split sends to its activities and gets back. Serialised into Temporal's history: fields are only
ever added with defaults. People travel as ids: their records are read by the activities, not carried through the
history (the buying-group snapshot aside, which every buying-group node records)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, Contract

# People of one account routed by one split, lowest ids first: bounds the routing activity's work, its transaction
# and the ids the workflow's history carries. The rest take no path and are counted in `left_out`.
MAX_PEOPLE = 1000


class RoutePeopleRequest(Contract):
    """Decide each person's path once per node visit: `key` (workflow / run / node / visit) keys the log rows."""

    key: str
    journey_id: str
    version: str
    account_id: str
    node_id: str
    visit: int
    whens: list[str] = Field(description="each path's condition, in order")
    names: list[str] = Field(description="each path's name, then 'otherwise'")
    buying_group: BuyingGroupSnapshot | None = Field(None, description="for person.role and buying_group.*")
    occurred_at: datetime


class RoutePeopleResult(Contract):
    people: list[list[int]] = Field(description="the ids of each path's people, then of otherwise's, ascending")
    left_out: int = Field(0, description="people beyond the routing limit, in no path (see activities/people.py)")

    def count(self) -> int:
        return sum(len(ids) for ids in self.people)


class AssignPeopleRoleRequest(Contract):
    """Put `people` into `role` of the journey's group by hand, each once: `key` + person id keys the event row."""

    group: BuyingGroupRequest
    key: str
    people: list[int]
    role: str
    occurred_at: datetime


class AssignPeopleRoleResult(Contract):
    assigned: list[int] = Field(default_factory=list, description="people this step gave the role (by any attempt)")
    snapshot: BuyingGroupSnapshot


class UpdatePeopleRequest(Contract):
    """Set fields and attributes on `people`, each once: `key` + person id keys the person_updated row."""

    key: str
    journey_id: str
    account_id: str
    node_id: str
    people: list[int]
    set: dict[str, Any]
    occurred_at: datetime


class UpdatePeopleResult(Contract):
    updated: list[int] = Field(default_factory=list, description="people this step changed (by any attempt)")
