"""What every part of the journey workflow shares: its state, the accessors over it, how the account is shown
to operators (search attributes, current details) and how its steps reach the event log (in batches). The walk
(engine/workflow/interpreter.py) and the operator updates (engine/workflow/operator_updates.py) build on it;
it decides nothing about where an account goes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from engine.language.errors import ExpressionLimitError
from engine.language.model import NodeBase
from engine.language.plan import Plan
from engine.workflow import details, visibility
from engine.workflow.contracts import (
    LEGACY_SHAPE,
    SHOWS_CALLS_WHEN_SLOW,
    JourneyEvent,
    JourneyInput,
    JourneyState,
    StepBatch,
    StepKind,
    StepRecord,
    epoch_microseconds,
)

QUICK = timedelta(seconds=30)
T = TypeVar("T")
# One parsed Plan per journey version for every workflow in this worker (this module is passed through the
# sandbox): a Plan is immutable, and a copy per cached account cost ~200 KiB each.
PLANS_SHARED = 64
_plans: dict[tuple[str, str], Plan] = {}


def shared_plan(plan: Plan) -> Plan:
    """The worker's one instance of this journey version's Plan. The version is a hash of the Plan's content
    (Plan.with_version), so the same key means the same content: replay-safe."""
    key = (plan.journey, plan.version)
    found = _plans.get(key)
    if found is None:
        if len(_plans) >= PLANS_SHARED:
            del _plans[next(iter(_plans))]
        _plans[key] = found = plan
    return found


DB_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), non_retryable_error_types=["AccountNotFound"])
# Workflows started before search attributes existed replay without them (tests/histories/before-visibility).
VISIBILITY_PATCH = "search-attributes-and-operator-actions"

# Node entered/left rows go to the event log in one activity whenever the account is about to wait (and at
# the end), not one activity per edge: 12 of the reference journey's 14.5 activity calls were record_step.
# Workflows started before keep writing one row per activity (tests/histories replay them).
STEP_BATCH_PATCH = "step-records-in-batches"
STEPS_KEPT = 50  # written at once beyond this many, so a long run of non-waiting nodes stays bounded
# Shape 2 does not write the batch before a timer shorter than details.SHORT_WAIT: the rows wait for the next
# batch, with their exact times, and the event log is behind by at most that long.

_UNSET = object()
START_SKEW_KEPT = timedelta(minutes=1)


class Exit:
    """Where a node sends the account: the branch's name and its target."""

    __slots__ = ("branch", "target")

    def __init__(self, branch: str, target: str | None) -> None:
        self.branch, self.target = branch, target


class JourneyBase:
    def __init__(self) -> None:
        self._input: JourneyInput | None = None
        self._state: JourneyState | None = None
        self._listening = False
        self._inbox: list[JourneyEvent] = []
        # Events that arrived while the account was at a node that does not listen (an email being sent):
        # the next node hears them if it listens, so a click right after the send is not lost.
        self._early: list[JourneyEvent] = []
        self._early_at: list[datetime] = []  # when each of them arrived (workflow time)
        self._seen: dict[str, None] = {}
        # An operator's skip or cancel: the exit the account takes instead of its node's own.
        self._interrupt: Exit | None = None
        self._cancelled: str | None = None
        self._shown: dict[str, object] = {}  # search attributes as last written by this run
        # Attributes of a node passed through (details.rests): written with the next ones, if still current.
        self._deferred: dict[str, SearchAttributeUpdate[Any]] = {}
        self._steps: list[StepRecord] = []  # node entered/left rows not yet written (see _flush_steps)

    def _start_time(self) -> datetime:
        """When the account entered its first node. A starter that set the first node's search attributes
        (details.start_attributes: publish does) is taken at its word, so the workflow does not write them again;
        its NodeSince is that time unless the starter's clock is ahead or more than START_SKEW_KEPT behind."""
        now = workflow.now()
        if self._input_().shape == LEGACY_SHAPE:
            return now
        given = workflow.info().typed_search_attributes
        self._shown.update((key.name, value) for key in visibility.KEYS if (value := given.get(key)) is not None)
        since = given.get(visibility.NODE_SINCE)
        if since is None or not timedelta(0) <= now - since <= START_SKEW_KEPT:
            self._shown.pop(visibility.NODE_SINCE.name, None)
            return now
        return since

    def _patched(self, patch_id: str) -> bool:
        """Shape 1 runs took each change behind a patch marker; shape 2 runs were started with all of them in
        and write no markers (each cost a history event, an action and a TemporalChangeVersion upsert)."""
        return self._input_().shape > LEGACY_SHAPE or workflow.patched(patch_id)

    # --- what operators see ---------------------------------------------------------------------------

    def _show(self, *updates: SearchAttributeUpdate[Any]) -> None:
        """Upsert the attributes whose value changed, in one command: each write is a history event and a
        visibility row, so unchanged values are not written again."""
        merged = {**self._deferred, **{update.key.name: update for update in updates}}
        self._deferred = {}
        changed = [update for update in merged.values() if self._shown.get(update.key.name, _UNSET) != update.value]
        if changed and self._patched(VISIBILITY_PATCH):
            workflow.upsert_search_attributes(changed)
            self._shown.update((update.key.name, update.value) for update in changed)

    def _show_waiting(
        self, node: NodeBase, waiting: str, *more: SearchAttributeUpdate[Any], resting: bool = True
    ) -> None:
        """What the account waits for, in the UI's current details and, where it rests (shape 1: at every
        node), as search attributes."""
        state = self._current()
        updates = (visibility.WAITING_FOR.value_set(waiting), *more)
        if resting or self._input_().shape == LEGACY_SHAPE:
            self._show(*updates)
        else:
            self._deferred.update((update.key.name, update) for update in updates)
        workflow.set_current_details(
            details.current_details(
                self._plan(),
                node,
                state.entered_at,
                waiting=waiting,
                group=state.buying_group,
                paused=state.paused,
            )
        )

    def _node_shown(self, node: NodeBase) -> tuple[SearchAttributeUpdate[Any], ...]:
        """The search attributes that say where the account is: at `node` since it entered it."""
        plan, state, account_id = self._plan(), self._current(), self._input_().account_id
        return (
            visibility.JOURNEY_ID.value_set(plan.journey),
            visibility.JOURNEY_VERSION.value_set(plan.version),
            visibility.ACCOUNT_ID.value_set(account_id),
            visibility.ACCOUNT_NAME.value_set(str(state.account.get("name") or account_id)),
            visibility.NODE.value_set(node.id),
            visibility.NODE_TYPE.value_set(node.type),
            visibility.NODE_SINCE.value_set(state.entered_at),
        )

    async def _call_shown_when_slow(
        self, node: NodeBase, activity: str, arg: Any, result_type: type[T], retry_policy: RetryPolicy, **options: Any
    ) -> T:
        """Run the node's activity. A node that rests only when slow (details.rests) first gets one attempt; if that
        fails and may be retried, the account is shown at the node (search attributes, as a resting node is) before
        the retries, which may last hours, run under the node's own policy. The same input, so the same idempotency
        key: an effect the failed attempt made is not made again."""
        shape = self._input_().shape
        policy = retry_policy
        if not details.rests(node, shape) and shape >= SHOWS_CALLS_WHEN_SLOW:
            policy = RetryPolicy(
                initial_interval=retry_policy.initial_interval,
                maximum_attempts=1,
                non_retryable_error_types=retry_policy.non_retryable_error_types,
            )
        try:
            result: T = await workflow.execute_activity(
                activity, arg, result_type=result_type, retry_policy=policy, **options
            )
            return result
        except ActivityError as error:
            if policy is retry_policy or error.retry_state != RetryState.MAXIMUM_ATTEMPTS_REACHED:
                raise  # not retryable, or cancelled: as if the node's own policy had run
            # The reason in the message itself: a plain log formatter drops `extra`, and this line is what the
            # operator reads when the account sits at the node.
            cause = activity_cause(error)
            workflow.logger.warning(
                f"node '{node.id}': {activity} failed its first attempt ({cause}); showing the node and retrying",
                extra={"node": node.id, "activity": activity, "error": cause},
            )
        self._show_waiting(node, details.waiting_for(node), *self._node_shown(node))
        result = await workflow.execute_activity(
            activity, arg, result_type=result_type, retry_policy=retry_policy, **options
        )
        return result

    # --- accessors -----------------------------------------------------------------------------------

    def _node(self) -> NodeBase:
        node: NodeBase = self._plan().nodes[self._current().position]
        return node

    def _key(self, node: NodeBase, visit: int) -> str:
        return f"{self._key_prefix()}/{node.id}/{visit}"

    def _key_prefix(self) -> str:
        """Unique per account's journey, across continue-as-new: keys of effects and rows start with it."""
        info = workflow.info()
        return f"{info.workflow_id}/{info.first_execution_run_id}"

    def _edge(self, node: NodeBase, label: str) -> Exit:
        for edge in self._plan().edges[node.id]:
            if edge.label == label:
                return Exit(label, edge.target)
        raise ApplicationError(f"node '{node.id}' has no '{label}' branch", type="PlanError", non_retryable=True)

    def _entered_at(self) -> Any:
        return self._current().entered_at

    def _plan(self) -> Any:
        return self._input_().plan

    def _input_(self) -> JourneyInput:
        assert self._input is not None
        return self._input

    def _current(self) -> JourneyState:
        assert self._state is not None
        return self._state

    def _settings(self) -> Any:
        return self._input_().settings

    def _heartbeat(self) -> timedelta:
        """Every activity heartbeats while it works (activities/keepalive.py): a worker killed mid-activity is
        noticed after this long and the activity retried elsewhere, not after its whole start-to-close."""
        return timedelta(seconds=self._settings().activity_heartbeat_timeout_seconds)

    def _limit_failure(self, error: ExpressionLimitError) -> ApplicationError:
        """An expression over its limits fails the journey for good: the same data would fail the same way."""
        journey, account, node = self._plan().journey, self._input_().account_id, self._current().position
        return ApplicationError(
            f"journey '{journey}' account '{account}' node '{node}': {error}",
            type="ExpressionLimit",
            non_retryable=True,
        )

    # --- the event log's step rows ---------------------------------------------------------------------

    async def _record(self, kind: StepKind, node: NodeBase, visit: int, branch: str | None = None) -> None:
        """Log a node entered or left, with the exact time; written with the next batch (see _flush_steps)."""
        plan = self._plan()
        step = StepRecord(
            key=f"{self._key(node, visit)}/{kind}",
            type=kind,
            journey_id=plan.journey,
            version=plan.version,
            account_id=self._input_().account_id,
            node_id=node.id,
            node_type=node.type,
            visit=visit,
            branch=branch,
            # Entered: when the state says (the start's own time at the first node); left: now.
            occurred_at=self._current().entered_at if kind == "node_entered" else workflow.now(),
        )
        if self._patched(STEP_BATCH_PATCH):
            self._steps.append(step)
            if len(self._steps) >= STEPS_KEPT:
                await self._flush_steps()
            return
        await workflow.execute_activity(
            "record_step",
            step,
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=f"log {kind} {node.id}",
        )

    async def _flush_steps(self, waiting: timedelta | None = None) -> None:
        """Write the steps logged since the last batch, before the account waits (`waiting` long, when known),
        continues as new or ends: whoever reads the event log then sees where every account is."""
        if not self._steps:
            return
        shape = self._input_().shape
        if waiting is not None and waiting < details.SHORT_WAIT and shape > LEGACY_SHAPE:
            return
        steps, self._steps = self._steps, []
        summary = f"log {len(steps)} steps, up to {steps[-1].type} {steps[-1].node_id}"
        if shape > LEGACY_SHAPE:
            first = steps[0]
            batch = StepBatch(
                key_prefix=self._key_prefix(),
                journey_id=first.journey_id,
                version=first.version,
                account_id=first.account_id,
                steps=[
                    (s.type, s.node_id, s.node_type, s.visit, s.branch, epoch_microseconds(s.occurred_at))
                    for s in steps
                ],
            )
            # A local activity: a short idempotent write needs no task queue round trip, and is one marker in the
            # history instead of three activity events and a workflow task.
            await workflow.execute_local_activity(
                "log_steps", batch, start_to_close_timeout=QUICK, retry_policy=DB_RETRY, summary=summary
            )
            return
        await workflow.execute_activity(
            "record_steps",
            steps,
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=summary,
        )


def failure_type(error: ActivityError) -> str | None:
    """The failed activity's error type: an ApplicationError's own type, else the exception class's name."""
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else type(cause).__name__ if cause else None


def activity_cause(error: ActivityError) -> str:
    return str(error.cause) if error.cause is not None else str(error)
