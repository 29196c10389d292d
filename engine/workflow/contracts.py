"""What travels between the journey workflow, its activities and the outside: small pydantic models.

Everything here is serialised into Temporal's history by the pydantic data converter, so fields are
only ever added with defaults (old histories must still load).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from engine.language.limits import LimitsFile
from engine.language.model import Recipients, RoleTemplate, Service, SolutionInterest, Stages
from engine.language.plan import Plan


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class JourneyEvent(Contract):
    """An event delivered to a journey as a signal: what happened, to whom, with what data."""

    type: str
    event_id: str = Field(description="the sender's idempotency key; a journey ignores an id it has seen")
    account_id: str
    email: str | None = None
    person: dict[str, Any] | None = Field(None, description="the person's data when the event was recorded")
    payload: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class Visit(Contract):
    node: str
    entered_at: datetime
    branch: str | None = None


class JourneyState(Contract):
    """Where an account is, carried across continue-as-new so nothing is lost or repeated."""

    position: str
    entered_at: datetime = Field(description="when the account entered `position`")
    resumed: bool = Field(False, description="true when continuing inside `position` after continue-as-new")
    visits: dict[str, int] = Field(default_factory=dict, description="node -> times entered")
    path: list[Visit] = Field(default_factory=list, description="the most recent nodes, newest last")
    inbox: list[JourneyEvent] = Field(default_factory=list, description="events received, not yet used")
    seen_event_ids: list[str] = Field(default_factory=list, description="recent event ids, to drop duplicates")
    account: dict[str, Any] = Field(default_factory=dict, description="latest account data read by an activity")
    buying_group: dict[str, Any] | None = Field(None, description="latest buying-group snapshot, if any")
    emails_sent: int = 0
    paused: str | None = Field(None, description="who paused the account and why; None while it runs")


class JourneySettings(Contract):
    """Run-time knobs the publisher chooses; part of the input so workflow code never reads the env."""

    max_history_events: int = Field(10_000, description="continue-as-new beyond this many history events")
    email_heartbeat_timeout_seconds: float = 10.0
    activity_heartbeat_timeout_seconds: float = Field(
        10.0, description="how soon a worker that died mid-activity is noticed (every other activity)"
    )
    path_kept: int = Field(50, description="visits kept in the state's path")
    seen_event_ids_kept: int = Field(1_000, description="event ids remembered for de-duplication")
    send_window_ignored: bool = Field(
        False, description="send at once, outside the journey's send window (demos and rehearsals only)"
    )


# How a run records itself in its history. 1: every change since the first release behind a patch marker (each
# `workflow.patched` also upserts TemporalChangeVersion), one StepRecord per row. 2: started with all of them in,
# no markers; step rows in compact batches (StepBatch), none before a short timer. 3: as 2, and an event that
# arrives in the workflow task that ends a wait is kept for the next node (a loaded worker can see the timer fire
# and a later signal in one task; shape 2 dropped it as arriving during the wait). 4: as 3, and a send_email or
# sales_handoff writes its search attributes only when its first attempt fails (see details.rests): an email that
# goes out at once no longer costs an upsert.
LEGACY_SHAPE, SHAPE = 1, 4
KEEPS_EVENTS_AT_WAIT_END = 3
SHOWS_CALLS_WHEN_SLOW = 4


class JourneyInput(Contract):
    plan: Plan
    account_id: str
    settings: JourneySettings = Field(default_factory=JourneySettings)
    state: JourneyState | None = Field(None, description="set when continuing as new")
    shape: int = Field(SHAPE, description="how the run records itself (see LEGACY_SHAPE): kept across continue-as-new")

    @model_validator(mode="before")
    @classmethod
    def _recorded_before_shapes(cls, data: Any, info: ValidationInfo) -> Any:
        """An input read from a history written before `shape` existed is shape 1: those runs replay as they ran.
        Inputs built in code get the current shape."""
        if info.mode == "json" and isinstance(data, dict) and "shape" not in data:
            return {**data, "shape": LEGACY_SHAPE}
        return data


class JourneyResult(Contract):
    journey: str
    version: str
    account_id: str
    ended_at: str = Field(description="the id of the end node reached, or why the journey stopped")
    visits: dict[str, int]
    emails_sent: int


StepKind = Literal["node_entered", "node_left", "journey_ended"]


class StepRecord(Contract):
    """One line of the event log written by the workflow: node entered or left, journey entered or ended."""

    key: str = Field(description="unique per workflow run, node and visit: a retried write is a no-op")
    type: StepKind
    journey_id: str
    version: str
    account_id: str
    node_id: str
    node_type: str
    visit: int
    branch: str | None = None
    occurred_at: datetime


class StepBatch(Contract):
    """Node entered/left rows in a compact form (shape 2): what every row shares, once, then one short list per
    step. The rows written are the same as from StepRecords: same keys, same exact times."""

    key_prefix: str = Field(description="workflow id / first run id: a row's key is prefix/node/visit/type")
    journey_id: str
    version: str
    account_id: str
    steps: list[tuple[StepKind, str, str, int, str | None, int]] = Field(
        description="[type, node id, node type, visit, branch, microseconds since the Unix epoch]"
    )

    def records(self) -> list[StepRecord]:
        return [
            StepRecord(
                key=f"{self.key_prefix}/{node}/{visit}/{kind}",
                type=kind,
                journey_id=self.journey_id,
                version=self.version,
                account_id=self.account_id,
                node_id=node,
                node_type=node_type,
                visit=visit,
                branch=branch,
                occurred_at=EPOCH + timedelta(microseconds=at),
            )
            for kind, node, node_type, visit, branch, at in self.steps
        ]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_microseconds(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class OperatorRequest(Contract):
    """An operator's action on one account (Temporal updates `skip`, `pause`, `resume`, `cancel`)."""

    by: str = Field(description="who asks: a name or an email, kept in the event log")
    reason: str = Field("", description="why, kept in the event log (required to cancel)")
    to: str | None = Field(None, description="skip: the node to move the account to")
    timeout: bool = Field(False, description="skip: take the node's timeout path now")


class OperatorResult(Contract):
    """What the action did, in words an operator reads back."""

    journey_id: str
    account_id: str
    action: str
    node: str = Field(description="where the account was when the action was taken")
    message: str


class OperatorLog(Contract):
    """One operator action for the event log, written once (the key carries the update's id)."""

    key: str
    journey_id: str
    account_id: str
    node_id: str
    action: str
    by: str
    reason: str
    detail: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class AccountRequest(Contract):
    account_id: str


class UpdateAccountRequest(Contract):
    key: str = Field(description="applied once: the key is stored in the event log with the change")
    journey_id: str
    account_id: str
    node_id: str
    set: dict[str, Any] = Field(default_factory=dict)
    add: dict[str, float] = Field(default_factory=dict)
    occurred_at: datetime


class SendEmailRequest(Contract):
    """Everything the email activity needs; templates come from the pinned Plan, not from disk."""

    key_prefix: str = Field(description="workflow id / run / node / visit; + person id = idempotency key")
    journey_id: str
    journey_name: str
    version: str
    account_id: str
    node_id: str
    to: Recipients
    subject: str = Field(description="the subject's Jinja2 source")
    html_template: str = Field(description="the HTML body's Jinja2 source")
    text_template: str | None = Field(None, description="the text body's source; derived from HTML when absent")
    buying_group: BuyingGroupSnapshot | None = Field(None, description="for role recipients and templates")
    limits: LimitsFile | None = Field(None, description="the caps to count against (limits.yaml); none when absent")
    transactional: bool = Field(False, description="the node is not marketing: its messages count against no cap")
    people: list[int] | None = Field(None, description="a people_split path's people: only they may get it")

    @model_serializer(mode="wrap")
    def _as_before(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A send with no limits is scheduled with the very input it had before limits existed."""
        data = handler(self)
        if isinstance(data, dict):
            if self.limits is None:
                data.pop("limits", None)
            if not self.transactional:
                data.pop("transactional", None)
            if self.people is None:
                data.pop("people", None)
        return data


class SendEmailResult(Contract):
    sent: int = 0
    already_sent: int = Field(0, description="messages a previous attempt had delivered")
    skipped_unsubscribed: int = 0
    skipped_no_address: int = 0
    skipped_erased: int = Field(0, description="people whose address was erased (journey forget)")
    not_matching: int = Field(0, description="people the `where` condition left out")
    refused: int = Field(0, description="addresses the mail server refused for good (5xx); see the outbox")
    suppressed: int = Field(0, description="people a limits.yaml cap left out; the outbox row says which cap")


class ServiceCallRequest(Contract):
    key: str = Field(description="sent as the Idempotency-Key header")
    service_name: str
    service: Service
    journey_id: str
    account_id: str
    node_id: str
    account: dict[str, Any] = Field(default_factory=dict)
    reads_response: bool = Field(
        False, description="the node branches on or stores the answer: keep its body (bounded) and headers"
    )

    @model_serializer(mode="wrap")
    def _as_before(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A call whose answer is not read is scheduled with the very input it had before `reads_response`."""
        data = handler(self)
        if isinstance(data, dict) and not self.reads_response:
            data.pop("reads_response", None)
        return data


class ServiceCallResult(Contract):
    """A 2xx answer, bounded (activities/services.py). Results recorded before headers and notes existed load with
    the defaults."""

    status_code: int
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict, description="lowercased; only when the node reads them")
    body_note: str | None = Field(None, description="why the body is null or text although the service sent one")


class StoreResponseRequest(Contract):
    """Fields chosen from a service's answer (`store`), saved on the account once, whatever the retries."""

    key: str = Field(description="applied once: the key is stored in the event log with the change")
    journey_id: str
    account_id: str
    node_id: str
    service_name: str
    values: dict[str, Any] = Field(description="account field or attribute -> JSON value")
    occurred_at: datetime


class BuyingGroupRequest(Contract):
    """Which buying group: the account's group for the journey's solution interest, with its template."""

    key: str = Field(description="workflow / run / node / visit: makes the request's writes idempotent")
    journey_id: str
    account_id: str
    node_id: str | None = None
    solution_interest: SolutionInterest
    role_template: RoleTemplate
    stages: Stages = Field(default_factory=Stages)


class GroupMember(Contract):
    person_id: int
    email: str | None
    name: str
    job_title: str | None
    role: str
    assigned_by: str = Field(description="'rule' or 'manual'")
    engagement_score: float


class BuyingGroupSnapshot(Contract):
    """What conditions read as `buying_group`, and what operators see."""

    id: int
    account_id: str
    solution_interest: str
    stage: str
    completeness: float = Field(description="percent, 0-100, unrounded")
    engagement: float = Field(description="0-100")
    missing_roles: list[str]
    members: list[GroupMember]
    status: str | None = Field(None, description="the free-text status update_buying_group sets")

    def as_data(self) -> dict[str, Any]:
        """The `buying_group` variable of expressions and templates."""
        return self.model_dump(mode="json")


class HandoffResult(Contract):
    handoff_id: int
    created: bool = Field(description="false when another journey handed off first (a retry of the winner: true)")
    buying_group_id: int
    owner_emailed: bool
    webhook_status: int | None = Field(None, description="the CRM webhook's HTTP status, when one is configured")


SendEmailRequest.model_rebuild()
