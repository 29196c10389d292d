"""The frozen, serialisable Plan a journey workflow receives: the compiled journey and all it needs.

The Plan carries its email template sources, role template and services, so an account that started
on one version keeps exactly that version, whatever is edited or re-published later. `version` is a
content hash: the same journey compiles to the same version on any machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from engine.language.limits import LimitsFile
from engine.language.model import Audience, Node, RoleTemplate, Service, SolutionInterest, Stages
from engine.language.schedule_model import Schedule


class Edge(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str  # the branch: next, on_event, on_timeout, when <expression>, otherwise, ...
    target: str


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    journey: str
    name: str
    description: str | None = None
    version: str = ""
    source: str = Field(description="the journey file's path, for messages")
    audience: Audience
    solution_interest: SolutionInterest | None = None
    role_template: RoleTemplate | None = None
    stages: Stages | None = Field(None, description="the buying-group stage model, when the journey has groups")
    send_window: str | None = None
    start: str
    nodes: dict[str, Node]
    edges: dict[str, list[Edge]]
    templates: dict[str, str] = Field(default_factory=dict, description="template path -> source")
    services: dict[str, Service] = Field(default_factory=dict)
    custom_account_attributes: list[str] = Field(default_factory=list)
    limits: LimitsFile | None = Field(None, description="the workspace's limits.yaml, pinned like its services")
    schedule: Schedule | None = Field(None, description="when entry opens and closes (journey header)")

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A journey with no limits.yaml serialises as before limits existed: same version, same payloads."""
        data = handler(self)
        if isinstance(data, dict) and self.limits is None:
            data.pop("limits", None)
        if isinstance(data, dict) and self.schedule is None:  # likewise for journeys without a schedule
            data.pop("schedule", None)
        return data

    def content_hash(self) -> str:
        content: dict[str, Any] = self.model_dump(mode="json", exclude={"version", "source"})
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def with_version(self) -> Plan:
        return self.model_copy(update={"version": self.content_hash()})
