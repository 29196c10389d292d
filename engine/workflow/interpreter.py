"""The workflow that walks a Plan for one account: deterministic, no I/O, every effect an activity.

One run per (journey, account). The Plan arrives in the input and stays pinned for the account's
whole journey, across continue-as-new. Events arrive as signals; a `wait_for_event` node listens
from the moment the account enters it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.language import conditions, schedule, variants
    from engine.language.durations import format_duration
    from engine.language.errors import ExpressionLimitError
    from engine.language.model import (
        AddToJourney,
        AssignBuyingGroup,
        End,
        ExternalAction,
        NodeBase,
        PeopleSplit,
        RemoveFromBuyingGroup,
        RemoveFromJourney,
        SalesAlert,
        SalesHandoff,
        SendEmail,
        Split,
        Stages,
        UpdateAccount,
        UpdateBuyingGroup,
        VariantSplit,
        Wait,
        WaitForChange,
        WaitForCompleteness,
        WaitForEvent,
    )
    from engine.language.render import node_summary
    from engine.workflow import details, visibility
    from engine.workflow.change_nodes import ChangeNodes
    from engine.workflow.contracts import (
        KEEPS_EVENTS_AT_WAIT_END,
        AccountRequest,
        BuyingGroupRequest,
        BuyingGroupSnapshot,
        HandoffResult,
        JourneyEvent,
        JourneyInput,
        JourneyResult,
        JourneyState,
        SendEmailRequest,
        SendEmailResult,
        UpdateAccountRequest,
        Visit,
    )
    from engine.workflow.group_nodes import GroupNodes
    from engine.workflow.journey_nodes import JourneyNodes
    from engine.workflow.migration import Migrations
    from engine.workflow.people_nodes import PeopleNodes
    from engine.workflow.sending_time import SendingTime
    from engine.workflow.service_nodes import ServiceNodes
    from engine.workflow.state import DB_RETRY, QUICK, Exit, activity_cause, shared_plan

LISTENING_TYPES = frozenset({"wait_for_event", "wait_for_completeness", "wait_for_change"})
WAITING_TYPES = LISTENING_TYPES | {"wait"}
EARLY_EVENTS_KEPT = 100
EARLY_EVENTS_PATCH = "events-from-the-step-before"
# Events that can change a buying group's completeness: a wait_for_completeness node re-checks on them.
GROUP_CHANGING_EVENTS = frozenset({"person_added", "person_updated", "form_fill", "member_assigned", "member_added"})
EMAIL_RETRY = RetryPolicy(
    maximum_interval=timedelta(minutes=10), non_retryable_error_types=["NotSupported", "AccountNotFound"]
)


@workflow.defn(name="Journey")
class JourneyWorkflow(GroupNodes, PeopleNodes, ChangeNodes, ServiceNodes, JourneyNodes, SendingTime, Migrations):
    """The walk: node after node until an end, every effect an activity. State, accessors and what
    operators see live in JourneyBase; the operator updates in OperatorUpdates; the buying-group change and
    sales-alert steps in GroupNodes."""

    # --- messages ------------------------------------------------------------------------------------

    @workflow.signal(name="event")
    def event(self, event: JourneyEvent) -> None:
        """An event for this account. Duplicates (same event id) are dropped; others wait in the inbox
        while the account is at a listening node. One that arrives during a step that does not wait (an
        email going out, a split) is kept for the next node; events during a timer or another wait that
        did not want them are dropped."""
        if event.event_id in self._seen:
            workflow.logger.info("duplicate event ignored", extra={"event_id": event.event_id})
            return
        self._remember(event.event_id)
        if self._listening:
            self._inbox.append(event)
        else:
            self._early = [*self._early, event][-EARLY_EVENTS_KEPT:]
            self._early_at = [*self._early_at, workflow.now()][-EARLY_EVENTS_KEPT:]

    @workflow.query(name="state")
    def state(self) -> dict[str, Any]:
        """Position, path so far and buffered events, for operators and tests."""
        if self._state is None:
            return {}
        state = self._state.model_copy(update={"inbox": list(self._inbox), "seen_event_ids": list(self._seen)})
        return {**state.model_dump(mode="json"), "listening": self._listening}

    # --- the walk ------------------------------------------------------------------------------------

    @workflow.run
    async def run(self, journey: JourneyInput) -> JourneyResult:
        journey = journey.model_copy(update={"plan": shared_plan(journey.plan)})
        try:
            return await self._walk(journey)
        except ActivityError as error:
            with contextlib.suppress(ActivityError):  # the failing node's steps still reach the log
                await self._flush_steps()
            position = self._state.position if self._state is not None else journey.plan.start
            where = f"journey '{journey.plan.journey}' account '{journey.account_id}' node '{position}'"
            raise ApplicationError(
                f"{where}: {activity_cause(error)}",
                type="JourneyStepFailed",
                non_retryable=True,
            ) from error

    async def _walk(self, journey: JourneyInput) -> JourneyResult:
        self._input, plan = journey, journey.plan
        state = journey.state or JourneyState(position=plan.start, entered_at=self._start_time())
        self._inbox = list(state.inbox)
        self._listening = state.resumed and plan.nodes[state.position].type in LISTENING_TYPES
        for event_id in state.seen_event_ids:
            self._seen[event_id] = None
        if not state.account:
            state = state.model_copy(update={"account": await self._load_account()})
        self._state = state
        while True:
            node = plan.nodes[self._state.position]
            visit, fresh = self._enter(node)
            if fresh:
                await self._record("node_entered", node, visit)
            exit_ = await self._run_node(node, visit)
            await self._record("node_left", node, visit, exit_.branch)
            if exit_.target is None:
                self._journey_ended_under_migration()
                await self._flush_steps()
                # An operator's cancel or skip answers from its update handler after its log activity: the run
                # must not end under it (Temporal warns TMPRL1102 and the caller may get no answer).
                if not workflow.all_handlers_finished():
                    await workflow.wait_condition(workflow.all_handlers_finished)
                return JourneyResult(
                    journey=plan.journey,
                    version=plan.version,
                    account_id=journey.account_id,
                    ended_at=self._cancelled or node.id,
                    visits=self._state.visits,
                    emails_sent=self._state.emails_sent,
                )
            self._move(exit_)
            if self._continue_as_new_due():
                await self._continue_as_new()

    async def _run_node(self, node: NodeBase, visit: int) -> Exit:
        """The node's exit, unless an operator skipped or cancelled; a paused account waits here, before
        the node starts and before it leaves (what happened meanwhile decides its branch on resume)."""
        await self._hold_while_paused(node)
        exit_ = self._interrupt or await self._execute(node, visit)
        await self._hold_while_paused(node)
        exit_, self._interrupt = self._interrupt or exit_, None
        return exit_

    async def _hold_while_paused(self, node: NodeBase) -> None:
        if self._current().paused is None or self._interrupt is not None:
            return  # a skip or cancel moves even a paused account
        self._show_waiting(node, visibility.PAUSED)
        await self._flush_steps()
        await workflow.wait_condition(lambda: self._current().paused is None or self._interrupt is not None)
        self._show_waiting(node, details.waiting_for(node))

    def _enter(self, node: NodeBase) -> tuple[int, bool]:
        """(visit number, fresh): a fresh visit is counted and starts listening; resuming inside the node
        after continue-as-new keeps the visit, the inbox and the time the account entered."""
        state = self._current()
        self._show_waiting(
            node, details.waiting_for(node), *self._node_shown(node), resting=details.rests(node, self._input_().shape)
        )
        if state.resumed:
            self._state = state.model_copy(update={"resumed": False})
            return state.visits.get(node.id, 1), False
        visit = state.visits.get(node.id, 0) + 1
        self._state = state.model_copy(update={"visits": {**state.visits, node.id: visit}})
        self._listening = node.type in LISTENING_TYPES
        self._inbox = self._carried(node) if self._listening else []
        self._early, self._early_at = [], []
        return visit, True

    def _carried(self, node: NodeBase) -> list[JourneyEvent]:
        """Events from the step just before, when that step did not wait (see `event`); at the first node,
        those that arrived as the journey started. After a wait, only those that arrived in the workflow task
        that ended it (since shape 3): a signal the server took after the timer fired can reach the workflow in
        the same task as the timer, and its handler runs first."""
        path = self._current().path
        previous = self._plan().nodes.get(path[-1].node) if path else None
        if not self._early:
            return []
        if previous is not None and previous.type in WAITING_TYPES:
            if self._input_().shape < KEEPS_EVENTS_AT_WAIT_END:
                return []
            entered = self._current().entered_at
            return [event for event, at in zip(self._early, self._early_at, strict=True) if at >= entered]
        return list(self._early) if self._patched(EARLY_EVENTS_PATCH) else []

    def _move(self, exit_: Exit) -> None:
        assert self._state is not None and self._input is not None and exit_.target is not None
        kept = self._input.settings.path_kept
        visit = Visit(node=self._state.position, entered_at=self._state.entered_at, branch=exit_.branch)
        self._state = self._state.model_copy(
            update={"position": exit_.target, "entered_at": workflow.now(), "path": [*self._state.path, visit][-kept:]}
        )
        self._listening, self._inbox = False, []

    async def _execute(self, node: NodeBase, visit: int) -> Exit:
        match node:
            case SendEmail():
                await self._send_email(node, visit)
                return self._edge(node, "next")
            case Wait(duration=duration, until=until):
                deadline = self._entered_at() + duration if duration is not None else self._until(until or "")
                await self._wait_until(deadline, node)
                return self._edge(node, "next")
            case WaitForEvent():
                return await self._wait_for_event(node)
            case Split():
                return await self._split(node)
            case VariantSplit():
                return self._variant_split(node)
            case ExternalAction():
                return await self._call_service(node, visit)
            case UpdateAccount():
                await self._update_account(node, visit)
                return self._edge(node, "next")
            case AssignBuyingGroup():
                await self._buying_group("assign_buying_group", node, visit)
                return self._edge(node, "next")
            case WaitForChange():
                return await self._wait_for_change(node, visit)
            case WaitForCompleteness():
                return await self._wait_for_completeness(node, visit)
            case SalesHandoff():
                await self._call_shown_when_slow(
                    node,
                    "sales_handoff",
                    self._group_request(node, visit),
                    result_type=HandoffResult,
                    start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=self._heartbeat(),
                    retry_policy=EMAIL_RETRY,
                    summary="hand the buying group to sales",
                )
                return self._edge(node, "next")
            case UpdateBuyingGroup():
                return await self._update_group(node, self._group_request(node, visit))
            case RemoveFromBuyingGroup():
                await self._remove_members(node, self._group_request(node, visit))
                return self._edge(node, "next")
            case SalesAlert():
                interested = self._plan().solution_interest is not None
                group = await self._buying_group("load_buying_group", node, visit) if interested else None
                await self._sales_alert(node, visit, group)
                return self._edge(node, "next")
            case PeopleSplit():
                interested = self._plan().solution_interest is not None
                group = await self._buying_group("load_buying_group", node, visit) if interested else None
                group_request = self._group_request(node, visit) if interested else None
                return await self._people_split(node, visit, group_request, group)
            case AddToJourney():
                return await self._add_to_journey(node, visit)
            case RemoveFromJourney():
                return await self._remove_from_journey(node, visit)
            case End():
                return Exit("end", None)
        raise ApplicationError(
            f"node '{node.id}': '{node.type}' is not supported by this worker yet (buying groups arrive later)",
            type="NotSupported",
            non_retryable=True,
        )

    # --- nodes ---------------------------------------------------------------------------------------

    async def _send_email(self, node: SendEmail, visit: int) -> None:
        plan, state, settings = self._plan(), self._current(), self._settings()
        holds = 0  # the send window, then limits.yaml's quiet hours (engine/workflow/sending_time.py)
        while (hold := self._send_hold(node.transactional, holds)) is not None:
            self._show_waiting(node, hold.waiting)
            await self._wait_until(hold.until, node, hold.what)
            self._show_waiting(node, details.waiting_for(node))
            holds += 1
            if self._interrupt is not None:
                break
        await self._hold_while_paused(node)  # paused while the window was closed: send nothing yet
        if self._interrupt is not None:
            return
        group = await self._buying_group("load_buying_group", node, visit) if plan.solution_interest else None
        text_name = node.template.removesuffix(".j2").removesuffix(".html").removesuffix(".htm") + ".txt.j2"
        request = SendEmailRequest(
            key_prefix=self._key(node, visit),
            journey_id=plan.journey,
            journey_name=plan.name,
            version=plan.version,
            account_id=self._input_().account_id,
            node_id=node.id,
            to=node.to,
            subject=node.subject,
            html_template=plan.templates[node.template],
            text_template=plan.templates.get(text_name),
            buying_group=group,
            limits=self._send_limits(node),
            transactional=node.transactional,
        )
        result = await self._call_shown_when_slow(
            node,
            "send_email",
            request,
            result_type=SendEmailResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(seconds=settings.email_heartbeat_timeout_seconds),
            retry_policy=EMAIL_RETRY,
            summary=details.email_summary(node, group.as_data() if group is not None else None),
        )
        # Messages an earlier, crashed attempt delivered count too: they were sent, exactly once.
        delivered = result.sent + result.already_sent
        self._state = self._current().model_copy(update={"emails_sent": state.emails_sent + delivered})

    async def _wait_for_event(self, node: WaitForEvent) -> Exit:
        deadline = self._entered_at() + node.timeout
        condition = (
            conditions.compile_condition(
                node.where, conditions.Scope({"event": None, "account": None, "person": None}, "event conditions")
            )
            if node.where
            else None
        )
        while True:
            while self._inbox:
                event = self._inbox.pop(0)
                if event.type == node.event and self._matches(condition, event):
                    return self._edge(node, "on_event")
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return self._edge(node, "on_timeout")
            await self._flush_steps(remaining)
            if self._inbox:
                continue  # arrived while the steps were written
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox) or self._continue_as_new_due() or self._interrupt is not None,
                    timeout=remaining,
                    timeout_summary=node_summary(node),
                )
            except TimeoutError:
                return self._edge(node, "on_timeout")
            if self._interrupt is not None:
                return self._interrupt
            if not self._inbox and self._continue_as_new_due():
                await self._continue_as_new(resume_inside=True)

    async def _wait_for_completeness(self, node: WaitForCompleteness, visit: int) -> Exit:
        """Re-check when something that can change the group arrives (not by polling); decide at once on entry."""
        deadline = self._entered_at() + node.timeout
        summary = f"wait {format_duration(node.timeout)} for {node.threshold:g}% complete"
        while True:
            snapshot = await self._buying_group("load_buying_group", node, visit)
            if snapshot.completeness >= node.threshold:
                return self._edge(node, "on_complete")
            self._show_waiting(node, visibility.COMPLETENESS_CHECK)
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return self._edge(node, "on_timeout")
            await self._flush_steps(remaining)
            try:
                await workflow.wait_condition(
                    lambda: self._group_changed() or self._continue_as_new_due() or self._interrupt is not None,
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return self._edge(node, "on_timeout")
            if self._interrupt is not None:
                return self._interrupt
            if not self._group_changed() and self._continue_as_new_due():
                await self._continue_as_new(resume_inside=True)
            self._inbox = []  # every pending change is covered by the next re-check

    def _with_role(self, person: dict[str, Any]) -> dict[str, Any]:
        """The person's role in this journey's buying group, from the latest snapshot the journey read."""
        group = self._current().buying_group
        if not group or person.get("id") is None:
            return person
        roles = {member["person_id"]: member["role"] for member in group.get("members", [])}
        return {**person, "role": roles.get(person["id"])}

    def _group_changed(self) -> bool:
        return any(event.type in GROUP_CHANGING_EVENTS for event in self._inbox)

    async def _buying_group(self, activity: str, node: NodeBase, visit: int) -> BuyingGroupSnapshot:
        snapshot: BuyingGroupSnapshot = await workflow.execute_activity(
            activity,
            self._group_request(node, visit),
            result_type=BuyingGroupSnapshot,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary="assign people to roles" if activity == "assign_buying_group" else "read the buying group",
        )
        self._state = self._current().model_copy(update={"buying_group": snapshot.as_data()})
        self._show(visibility.COMPLETENESS.value_set(snapshot.completeness))
        return snapshot

    def _group_request(self, node: NodeBase, visit: int) -> BuyingGroupRequest:
        plan = self._plan()
        if plan.solution_interest is None or plan.role_template is None:
            raise ApplicationError(
                f"node '{node.id}' needs the journey's solution_interest", type="PlanError", non_retryable=True
            )
        return BuyingGroupRequest(
            key=self._key(node, visit),
            journey_id=plan.journey,
            account_id=self._input_().account_id,
            node_id=node.id,
            solution_interest=plan.solution_interest,
            role_template=plan.role_template,
            stages=plan.stages or Stages(),
        )

    def _matches(self, condition: conditions.Condition | None, event: JourneyEvent) -> bool:
        if condition is None:
            return True
        data = {
            "type": event.type,
            "event_id": event.event_id,
            "email": event.email,
            "occurred_at": event.occurred_at.isoformat(),
            "payload": event.payload,
            **event.payload,
        }
        try:
            person = self._with_role(event.person or {})
            return condition.evaluate(event=data, account=self._current().account, person=person, now=workflow.now())
        except ExpressionLimitError as error:
            raise self._limit_failure(error) from None
        except Exception as error:  # an expression failing on odd data must not fail the journey
            workflow.logger.warning("event condition failed; event ignored", extra={"error": str(error)})
            return False

    async def _split(self, node: Split) -> Exit:
        account = await self._load_account()
        self._state = self._current().model_copy(update={"account": account})
        group = None
        if self._plan().solution_interest is not None:
            group = (await self._buying_group("load_buying_group", node, self._current().visits[node.id])).as_data()
        scope = conditions.Scope({"account": None, "buying_group": None}, "split conditions")
        for index, path in enumerate(node.paths):
            condition = conditions.compile_condition(path.when, scope)
            try:
                matched = condition.evaluate(account=account, buying_group=group, now=workflow.now())
            except ExpressionLimitError as error:
                raise self._limit_failure(error) from None
            except Exception as error:
                workflow.logger.warning(
                    "split condition failed; path skipped", extra={"node": node.id, "path": index, "error": str(error)}
                )
                matched = False
            if matched:
                edge = self._plan().edges[node.id][index]
                return Exit(edge.label, edge.target)
        return self._edge(node, "otherwise")

    def _variant_split(self, node: VariantSplit) -> Exit:
        """The account's variant, drawn from a hash of (journey, account, split id, salt): the same on every entry
        and in every version that keeps the split's id, salt and percents. No activity: nothing to read or wait for."""
        percents = [variant.percent for variant in node.variants]
        drawn = variants.assign(self._plan().journey, self._input_().account_id, node.id, node.salt, percents)
        chosen = node.variants[drawn]
        return self._edge(node, variants.branch_label(chosen.name, chosen.percent, chosen.holdout))

    async def _update_account(self, node: UpdateAccount, visit: int) -> None:
        account = await workflow.execute_activity(
            "update_account",
            UpdateAccountRequest(
                key=f"{self._key(node, visit)}/update",
                journey_id=self._plan().journey,
                account_id=self._input_().account_id,
                node_id=node.id,
                set=dict(node.set or {}),
                add={name: float(amount) for name, amount in (node.add or {}).items()},
                occurred_at=workflow.now(),
            ),
            result_type=dict,
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=node_summary(node),
        )
        self._state = self._current().model_copy(update={"account": account})

    # --- waiting -------------------------------------------------------------------------------------

    def _until(self, cron: str) -> Any:
        return schedule.next_time(cron, self._entered_at(), self._current().account.get("timezone"))

    async def _wait_until(self, deadline: Any, node: NodeBase, what: str | None = None) -> None:
        """Sleep until `deadline`, continuing as new on the way when the history asks for it."""
        summary = what or node_summary(node)
        while (remaining := deadline - workflow.now()) > timedelta(0):
            await self._flush_steps(remaining)
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return
            try:
                await workflow.wait_condition(
                    lambda: self._continue_as_new_due() or self._interrupt is not None,
                    timeout=remaining,
                    timeout_summary=summary,
                )
            except TimeoutError:
                return
            if self._interrupt is not None:
                return
            await self._continue_as_new(resume_inside=True)

    # --- continue-as-new -----------------------------------------------------------------------------

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        limit = self._settings().max_history_events
        due = info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit
        return due or self._migration_due()

    async def _continue_as_new(self, resume_inside: bool = False) -> None:
        """Go on in a fresh run with the state carried over: inside the current node when `resume_inside`, and in
        a later version of the journey when an operator's `migrate` asked for it and the node has a place there."""
        await self._flush_steps()
        moving_to = self._decide_migration() if self._migration_due() else None
        await workflow.wait_condition(workflow.all_handlers_finished)  # a migrate update answers before the move
        state = self._current().model_copy(
            update={"resumed": resume_inside, "inbox": list(self._inbox), "seen_event_ids": self._recent_ids()}
        )
        journey = self._input_().model_copy(update={"state": state})
        if moving_to is not None:
            plan, node_id = moving_to
            journey = journey.model_copy(update={"plan": plan, "state": self._moved_state(state, node_id)})
        workflow.continue_as_new(journey)

    def _recent_ids(self) -> list[str]:
        return list(self._seen)[-self._settings().seen_event_ids_kept :]

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        kept = self._settings().seen_event_ids_kept if self._input is not None else 1_000
        while len(self._seen) > kept:
            del self._seen[next(iter(self._seen))]

    # --- helpers -------------------------------------------------------------------------------------

    async def _load_account(self) -> dict[str, Any]:
        account: dict[str, Any] = await workflow.execute_activity(
            "load_account",
            AccountRequest(account_id=self._input_().account_id),
            result_type=dict,
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary="read the account",
        )
        return account
