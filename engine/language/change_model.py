"""The wait_for_change node and the change it waits for: of an account field, a person's field, or the buying group."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from engine.language.errors import did_you_mean
from engine.language.model_base import Duration, NodeBase, NodeId, Strict

GROUP_CHANGES = ("stage", "status", "completeness", "engagement", "member_added", "member_removed")
THRESHOLDS = frozenset({"completeness", "engagement"})
MEMBER_CHANGES = frozenset({"member_added", "member_removed"})


class Change(Strict):
    """What a wait_for_change node waits for: one subject (an account field, a field of any person of the account,
    or something of the buying group) and, where it applies, the value it must change to, a threshold or a role."""

    account: str | None = Field(None, description="an account field (industry, employees, ...) or attributes.<name>")
    person: str | None = Field(None, description="a field of any person of the account, or attributes.<name>")
    buying_group: str | None = Field(
        None, description="what of the buying group changes", json_schema_extra={"enum": list(GROUP_CHANGES)}
    )
    to: str | int | float | bool | None = Field(None, description="the value it must change to; left out: any change")
    at_least: float | None = Field(
        None, description="completeness or engagement: 0-100", json_schema_extra={"minimum": 0, "maximum": 100}
    )
    role: str | None = Field(None, min_length=1, description="member_added or member_removed: only this role")

    @field_validator("buying_group")
    @classmethod
    def _known_change(cls, value: str | None) -> str | None:
        if value is not None and value not in GROUP_CHANGES:
            hint = did_you_mean(value, GROUP_CHANGES)
            raise ValueError(f"unknown buying group change '{value}'{hint}; expected one of {', '.join(GROUP_CHANGES)}")
        return value

    @field_validator("at_least")
    @classmethod
    def _percent(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 100:
            raise ValueError(f"must be between 0 and 100, got {value:g}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Change:
        subjects = [name for name in ("account", "person", "buying_group") if getattr(self, name) is not None]
        if len(subjects) != 1:
            raise ValueError("give exactly one of 'account', 'person' or 'buying_group': what to wait for")
        group = self.buying_group
        if "to" in self.model_fields_set and self.to is None:
            raise ValueError("'to: null' is not a value to wait for; leave 'to' out to wait for any change")
        if self.to is not None and group is not None and group not in ("stage", "status"):
            raise ValueError(f"'to' applies to account and person fields and buying_group stage or status, not {group}")
        if (group in THRESHOLDS) != (self.at_least is not None):
            raise ValueError(
                f"buying_group {group} needs 'at_least' (percent)"
                if group in THRESHOLDS
                else "'at_least' applies only to buying_group completeness or engagement"
            )
        if self.role is not None and group not in MEMBER_CHANGES:
            raise ValueError("'role' applies only to buying_group member_added or member_removed")
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Only the keys given: a Plan read back (in the workflow) validates as the file did."""
        data = handler(self)
        return {key: value for key, value in data.items() if value is not None} if isinstance(data, dict) else data

    @property
    def subject(self) -> str:
        """ "account.industry", "person.job_title", "buying_group.stage": what the change is about."""
        for name in ("account", "person", "buying_group"):
            value = getattr(self, name)
            if value is not None:
                return f"{name}.{value}"
        raise AssertionError("a change always has a subject")

    def describe(self) -> str:
        """What the node waits for, as an operator reads it: "account.industry -> 'Biotech'"."""
        group = self.buying_group
        if group in THRESHOLDS:
            return f"{self.subject} >= {self.at_least:g}"
        if group in MEMBER_CHANGES:
            who = f"a {self.role}" if self.role else "a person"
            return f"{who} {'added to' if group == 'member_added' else 'removed from'} the buying group"
        if self.to is not None:
            return f"{self.subject} -> {self.to!r}"
        return f"any change of {self.subject}"


class WaitForChange(NodeBase):
    """Wait, driven by the change events that imports, upserts and the engine record, for a change of the account,
    one of its people or its buying group; on_timeout when none comes in time."""

    type: Literal["wait_for_change"]
    change: Change
    timeout: Duration
    on_change: NodeId
    on_timeout: NodeId
