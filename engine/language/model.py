"""The journey language as pydantic models: the header, every node type, buying groups and services.

Nodes form a discriminated union on `type`. The models check shapes and single values (durations,
cron, ranges); everything that needs the whole journey (references, graph, expressions, templates)
is the compiler's job. The shared building blocks (model_base), people_split (people_model) and
wait_for_change (change_model) have their own modules; their names are exported from here too.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, field_validator, model_serializer, model_validator

from engine.language.change_model import GROUP_CHANGES as GROUP_CHANGES
from engine.language.change_model import MEMBER_CHANGES as MEMBER_CHANGES
from engine.language.change_model import THRESHOLDS as THRESHOLDS
from engine.language.change_model import Change as Change
from engine.language.change_model import WaitForChange as WaitForChange
from engine.language.durations import parse_duration
from engine.language.model_base import Cron as Cron
from engine.language.model_base import Duration as Duration
from engine.language.model_base import Expression as Expression
from engine.language.model_base import JourneyId as JourneyId
from engine.language.model_base import NodeBase as NodeBase
from engine.language.model_base import NodeId as NodeId
from engine.language.model_base import Strict as Strict
from engine.language.people_model import MAX_PEOPLE_PATHS as MAX_PEOPLE_PATHS
from engine.language.people_model import MAX_PERSON_STEPS as MAX_PERSON_STEPS
from engine.language.people_model import PERSON_STEP_TYPES as PERSON_STEP_TYPES
from engine.language.people_model import AssignRole as AssignRole
from engine.language.people_model import PeopleOtherwise as PeopleOtherwise
from engine.language.people_model import PeoplePath as PeoplePath
from engine.language.people_model import PeopleSplit as PeopleSplit
from engine.language.people_model import PersonEmail as PersonEmail
from engine.language.people_model import PersonStep as PersonStep
from engine.language.people_model import UpdatePerson as UpdatePerson
from engine.language.schedule_model import Schedule as Schedule
from engine.language.variants import BUCKETS, NAME_PATTERN

WEIGHTS: dict[str, int] = {"trivial": 20, "minor": 40, "normal": 60, "important": 80, "vital": 100}
EVENT_TYPES = (
    "form_fill",
    "email_open",
    "email_click",
    "web_visit",
    "person_added",
    "person_updated",
    "opportunity_created",
    "opportunity_stage_changed",
    "account_updated",  # recorded by the engine when an import or upsert changes an account; not sent
    "buying_group_updated",  # recorded by update_buying_group: stage / status before -> after; not sent
    "member_removed",  # recorded by remove_from_buying_group, one per person removed; not sent
    "member_added",  # recorded when role rules place a person in a buying group; not sent
)
_ADDRESS = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"']+")
_REENTRY = re.compile(r"^(never|after\s+\d+\s*[smhdw])$")


class Audience(Strict):
    accounts: Expression = Field(description="which accounts enter the journey")
    refresh: Cron | None = Field(None, description="when to re-evaluate the audience and start new accounts")
    reentry: str = Field("never", description="'never', or 'after 90d': an account may enter again after")

    @field_validator("reentry")
    @classmethod
    def _reentry_form(cls, value: str) -> str:
        if not _REENTRY.match(value):
            raise ValueError(f"expected 'never' or 'after <duration>' (e.g. 'after 90d'), got '{value}'")
        if value != "never":
            parse_duration(value.removeprefix("after").strip())  # 'after 0d' is refused here, not at run time
        return value

    @property
    def reentry_after(self) -> timedelta | None:
        return None if self.reentry == "never" else parse_duration(self.reentry.removeprefix("after").strip())


class Recipients(Strict):
    """Who an email goes to; exactly one of the ways below. The string 'all' is short for all: true."""

    all: bool = False
    roles: list[str] | None = Field(None, min_length=1)
    missing_roles: bool = False
    where: Expression | None = None

    @model_validator(mode="before")
    @classmethod
    def _all_shorthand(cls, value: Any) -> Any:
        if value == "all":
            return {"all": True}
        if not isinstance(value, dict):
            raise ValueError(f"expected 'all' or a mapping with one of all, roles, missing_roles, where; got '{value}'")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Recipients:
        chosen = [name for name in ("all", "roles", "missing_roles", "where") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError("choose exactly one of 'all', roles, missing_roles: true, where")
        return self


class SendEmail(NodeBase):
    type: Literal["send_email"]
    to: Recipients
    subject: str = Field(min_length=1, description="Jinja2 template for the subject line")
    template: str = Field(min_length=1, description="Jinja2 HTML template, relative to the journey file")
    transactional: bool = Field(False, description="not marketing: limits.yaml's caps and quiet hours do not apply")
    next: NodeId

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A node that is not transactional serialises as before the key existed: its Plan keeps its version."""
        data = handler(self)
        if isinstance(data, dict) and not self.transactional:
            data.pop("transactional", None)
        return data


class Wait(NodeBase):
    type: Literal["wait"]
    duration: Duration | None = None
    until: Cron | None = Field(None, description="wait until this cron time, in the account's time zone")
    next: NodeId

    @model_validator(mode="after")
    def _one_way(self) -> Wait:
        if (self.duration is None) == (self.until is None):
            raise ValueError("give exactly one of 'duration' or 'until'")
        return self


class WaitForEvent(NodeBase):
    type: Literal["wait_for_event"]
    event: str = Field(description="event type: " + ", ".join(EVENT_TYPES))
    where: Expression | None = None
    timeout: Duration
    on_event: NodeId
    on_timeout: NodeId


class SplitPath(Strict):
    when: Expression
    next: NodeId


class Split(NodeBase):
    type: Literal["split"]
    paths: list[SplitPath] = Field(min_length=1)
    otherwise: NodeId


class Variant(Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=32, description="shown in analytics: A, B, subject-short")
    percent: int = Field(
        strict=True,
        description="whole percent of the accounts, 1-100; all add up to 100",
        json_schema_extra={"minimum": 1, "maximum": 100},
    )
    next: NodeId
    holdout: bool = Field(False, description="the control group: no email is reachable from its path")

    @field_validator("percent")
    @classmethod
    def _percent(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError(f"must be a whole percent from 1 to 100, got {value}")
        return value


class VariantSplit(NodeBase):
    """An A/B(/n) test: each account takes one variant, drawn from a hash of (journey, account, split id, salt)."""

    type: Literal["variant_split"]
    salt: str = Field("", max_length=64, description="change it to draw new variants; keep it to keep them")
    variants: list[Variant] = Field(
        description="2-20 paths, percents adding up to 100, at most one holdout",
        json_schema_extra={"minItems": 2, "maxItems": 20},
    )

    @field_validator("variants")
    @classmethod
    def _shares(cls, value: list[Variant]) -> list[Variant]:
        if not 2 <= len(value) <= 20:
            raise ValueError(f"a variant split needs 2 to 20 variants, got {len(value)}")
        total = sum(variant.percent for variant in value)
        if total != BUCKETS:
            shares = " + ".join(str(variant.percent) for variant in value)
            raise ValueError(f"percents must add up to 100, got {shares} = {total}")
        return value


class ResponsePath(Strict):
    when: Expression = Field(description="condition over response.status, response.body, response.headers")
    next: NodeId


class ExternalAction(NodeBase):
    type: Literal["external_action"]
    service: str
    on_response: list[ResponsePath] | None = Field(
        None, min_length=1, description="tried in order on a 2xx answer; none matching: on_success"
    )
    store: dict[str, Expression] | None = Field(
        None, min_length=1, description="account field or attribute -> expression over response, saved on a 2xx answer"
    )
    on_success: NodeId
    on_error: NodeId
    on_timeout: NodeId | None = Field(None, description="defaults to on_error")

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A node that neither branches on nor stores the answer serialises as before these keys existed: its Plan
        keeps its version and its payloads stay byte for byte what running workflows recorded."""
        data = handler(self)
        if isinstance(data, dict):
            for key in ("on_response", "store"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data


class UpdateAccount(NodeBase):
    type: Literal["update_account"]
    set: dict[str, str | int | float | bool | None] | None = None
    add: dict[str, int | float] | None = None
    next: NodeId

    @model_validator(mode="after")
    def _something(self) -> UpdateAccount:
        if not self.set and not self.add:
            raise ValueError("give 'set', 'add' or both")
        return self


class AssignBuyingGroup(NodeBase):
    type: Literal["assign_buying_group"]
    next: NodeId


class WaitForCompleteness(NodeBase):
    type: Literal["wait_for_completeness"]
    threshold: float = Field(description="percent, 0-100", json_schema_extra={"minimum": 0, "maximum": 100})
    timeout: Duration
    on_complete: NodeId
    on_timeout: NodeId

    @field_validator("threshold")
    @classmethod
    def _percent(cls, value: float) -> float:
        if not 0 <= value <= 100:
            raise ValueError(f"must be a percentage between 0 and 100, got {value:g}")
        return value


class SalesHandoff(NodeBase):
    type: Literal["sales_handoff"]
    next: NodeId


class UpdateBuyingGroup(NodeBase):
    """Move the journey's buying group to another stage (checked against the stage model) and/or set its status."""

    type: Literal["update_buying_group"]
    stage: str | None = Field(None, min_length=1, description="a stage of the stage model (buying_groups.yaml)")
    status: str | None = Field(None, max_length=200, description="free text, e.g. 'Demo booked'; '' clears it")
    next: NodeId
    on_not_allowed: NodeId | None = Field(
        None, description="where to go when the stage model refuses the move; without it the account fails"
    )

    @model_validator(mode="after")
    def _something(self) -> UpdateBuyingGroup:
        if self.stage is None and self.status is None:
            raise ValueError("give 'stage', 'status' or both")
        return self


class Members(Strict):
    """Which members of the buying group; exactly one of the ways below. The string 'all' is short for all: true."""

    all: bool = False
    roles: list[str] | None = Field(None, min_length=1)
    where: Expression | None = Field(None, description="condition over person.* (person.role too) and account.*")

    @model_validator(mode="before")
    @classmethod
    def _all_shorthand(cls, value: Any) -> Any:
        if value == "all":
            return {"all": True}
        if not isinstance(value, dict):
            raise ValueError(f"expected 'all' or a mapping with one of all, roles, where; got '{value}'")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Members:
        chosen = [name for name in ("all", "roles", "where") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError("choose exactly one of 'all', roles, where")
        return self


class RemoveFromBuyingGroup(NodeBase):
    type: Literal["remove_from_buying_group"]
    who: Members
    next: NodeId


class SalesAlert(NodeBase):
    """Email sales (the account owner, unless `to` says otherwise) a summary written with a template."""

    type: Literal["sales_alert"]
    subject: str = Field(min_length=1, description="Jinja2 template for the subject line")
    template: str = Field(min_length=1, description="Jinja2 HTML template, relative to the journey file")
    to: str | None = Field(None, max_length=254, description="one email address; default: the account's owner_email")
    next: NodeId

    @field_validator("to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _ADDRESS.fullmatch(value):
            raise ValueError(f"expected one email address such as 'sales@example.com', got '{value}'")
        return value


class AddToJourney(NodeBase):
    """Start the account in another journey of the folder (its latest published version), when that journey's
    audience and re-entry rule let it in; the account goes on to `next` whatever the answer (logged as the branch)."""

    type: Literal["add_to_journey"]
    journey: JourneyId = Field(description="id of another journey in the same folder")
    next: NodeId


class RemoveFromJourney(NodeBase):
    """Cancel the account's run of another journey, as an operator's `journey cancel` would, with the reason."""

    type: Literal["remove_from_journey"]
    journey: JourneyId = Field(description="id of another journey in the same folder")
    reason: str = Field(min_length=1, max_length=200, description="why, kept in the other journey's event log")
    next: NodeId

    @field_validator("reason")
    @classmethod
    def _said(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say why the account leaves the other journey: the reason is blank")
        return value


class End(NodeBase):
    type: Literal["end"]


Node = Annotated[
    SendEmail
    | Wait
    | WaitForEvent
    | Split
    | ExternalAction
    | UpdateAccount
    | AssignBuyingGroup
    | WaitForCompleteness
    | SalesHandoff
    | UpdateBuyingGroup
    | RemoveFromBuyingGroup
    | SalesAlert
    | End
    | WaitForChange
    | AddToJourney
    | RemoveFromJourney
    | VariantSplit
    | PeopleSplit,
    Field(discriminator="type"),
]
NODE_MODELS: dict[str, type[NodeBase]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        SendEmail,
        Wait,
        WaitForEvent,
        Split,
        ExternalAction,
        UpdateAccount,
        AssignBuyingGroup,
        WaitForCompleteness,
        WaitForChange,
        SalesHandoff,
        UpdateBuyingGroup,
        RemoveFromBuyingGroup,
        SalesAlert,
        VariantSplit,
        PeopleSplit,
        AddToJourney,
        RemoveFromJourney,
        End,
    )
}
WAITING_TYPES = frozenset({"wait", "wait_for_event", "wait_for_completeness", "wait_for_change"})
BUYING_GROUP_TYPES = frozenset(
    {"assign_buying_group", "wait_for_completeness", "sales_handoff", "update_buying_group", "remove_from_buying_group"}
)


class JourneyHeader(Strict):
    """Everything in a journey file but the nodes, which are checked one by one."""

    journey: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        max_length=64,
        description="id: lowercase letters, digits and '-'; unique across journeys/",
    )
    name: str = Field(min_length=1)
    description: str | None = None
    audience: Audience
    solution_interest: str | None = None
    send_window: Cron | None = Field(None, description="emails wait until this cron window, account time zone")
    schedule: Schedule | None = Field(None, description="when entry opens and closes by itself (ISO 8601)")
    start: NodeId
    nodes: list[Any] = Field(min_length=1)


class JourneyFile(JourneyHeader):
    """The whole file, for the JSON Schema that editors use."""

    nodes: list[Node] = Field(min_length=1)


# --- journeys/buying_groups.yaml -------------------------------------------------------------------


class Role(Strict):
    role: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    members_required: int = Field(1, ge=1, le=100)
    weight: Literal["trivial", "minor", "normal", "important", "vital"] = "normal"
    when: Expression
    counts_toward_completeness: bool = True

    @property
    def weight_value(self) -> int:
        return WEIGHTS[self.weight]


class RoleTemplate(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str | None = None
    roles: list[Role] = Field(min_length=1)


class SolutionInterest(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    role_template: str
    description: str | None = None


class Stages(Strict):
    """A buying group's stages, as Adobe models them: where groups start (entry), the one stage that
    means success (the SQL handoff moves a group there), the stages that mean failure, and which moves
    are allowed. The defaults suit most B2B funnels."""

    entry: list[str] = Field(default_factory=lambda: ["awareness"], min_length=1)
    progress: list[str] = Field(default_factory=lambda: ["engaged", "evaluating"])
    success: str = "sales_qualified"
    failure: list[str] = Field(default_factory=lambda: ["disqualified", "no_interest"])
    transitions: dict[str, list[str]] | None = Field(
        None,
        description="stage -> stages it may move to; default: forward through the funnel, any open "
        "stage to success or failure, a failed group back to an entry stage",
    )

    @property
    def all(self) -> list[str]:
        return [*self.entry, *self.progress, self.success, *self.failure]

    def allowed(self) -> dict[str, list[str]]:
        if self.transitions is not None:
            return self.transitions
        funnel = [*self.entry, *self.progress]
        moves = {stage: [*funnel[index + 1 :], self.success, *self.failure] for index, stage in enumerate(funnel)}
        moves.update({stage: list(self.entry) for stage in self.failure})
        moves[self.success] = []
        return moves

    def check_move(self, current: str, target: str) -> None:
        """Raise ValueError naming the allowed moves when `current -> target` is not one of them."""
        if target not in self.all:
            raise ValueError(f"unknown stage '{target}' (stages: {', '.join(self.all)})")
        allowed = self.allowed().get(current, [])
        if target not in allowed:
            options = ", ".join(allowed) if allowed else "none: it is final"
            raise ValueError(f"a buying group cannot move from '{current}' to '{target}' (allowed: {options})")

    @model_validator(mode="after")
    def _consistent(self) -> Stages:
        names = self.all
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"stage '{duplicates[0]}' is listed twice")
        for source, targets in (self.transitions or {}).items():
            for stage in [source, *targets]:
                if stage not in names:
                    raise ValueError(f"transitions name unknown stage '{stage}' (stages: {', '.join(names)})")
        return self


class BuyingGroupsFile(Strict):
    role_templates: list[RoleTemplate] = Field(default_factory=list)
    solution_interests: list[SolutionInterest] = Field(default_factory=list)
    stages: Stages = Field(default_factory=Stages)


# --- journeys/services.yaml ------------------------------------------------------------------------


class ServiceAuth(Strict):
    """The secret never lives in the file: `env` names the environment variable holding it."""

    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    header: str = "Authorization"
    scheme: str | None = Field("Bearer", description="prefix before the secret; null sends it bare")


class Service(Strict):
    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(3, ge=0, le=10, description="attempts after the first, with back-off")
    auth: ServiceAuth | None = None
    description: str | None = None


class ServicesFile(Strict):
    services: dict[str, Service] = Field(default_factory=dict)
