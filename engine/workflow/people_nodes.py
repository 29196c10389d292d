"""The walk's people_split: one activity decides every person's path (once per node visit), then each path's steps
run in order for its people, paths in file order, and the account goes on to `next`. Every effect is keyed by the
node visit, the path, the step and the person, so a retried activity or a replayed workflow never repeats it."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from engine.language.model import AssignRole, PeopleSplit, PersonEmail, Recipients, UpdatePerson
from engine.language.render import step_summary
from engine.workflow import details, people_details, visibility
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot, SendEmailRequest, SendEmailResult
from engine.workflow.people_contracts import (
    AssignPeopleRoleRequest,
    AssignPeopleRoleResult,
    RoutePeopleRequest,
    RoutePeopleResult,
    UpdatePeopleRequest,
    UpdatePeopleResult,
)
from engine.workflow.sending_time import SendingTime
from engine.workflow.state import DB_RETRY, Exit

PEOPLE_TIMEOUT = timedelta(minutes=2)
PATH_EMAIL_TIMEOUT = timedelta(hours=1)
PATH_EMAIL_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=10), non_retryable_error_types=["AccountNotFound"])


class PeopleNodes(SendingTime):
    async def _people_split(
        self, node: PeopleSplit, visit: int, group_request: BuyingGroupRequest | None, group: BuyingGroupSnapshot | None
    ) -> Exit:
        """`next` once every path's steps ran for its people; an operator's skip or cancel stops between steps."""
        plan, key = self._plan(), self._key(node, visit)
        routed: RoutePeopleResult = await workflow.execute_activity(
            "route_people",
            RoutePeopleRequest(
                key=key,
                journey_id=plan.journey,
                version=plan.version,
                account_id=self._input_().account_id,
                node_id=node.id,
                visit=visit,
                whens=[path.when for path in node.paths],
                names=node.path_names(),
                buying_group=group,
                occurred_at=workflow.now(),
            ),
            result_type=RoutePeopleResult,
            start_to_close_timeout=PEOPLE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=f"route people into {len(node.paths)} path{'s' if len(node.paths) > 1 else ''} + otherwise",
        )
        counts = dict(zip(node.path_names(), map(len, routed.people), strict=True))
        workflow.logger.info("people routed", extra={"node": node.id, "paths": counts, "left_out": routed.left_out})
        window_checked = False
        for index, (steps, people) in enumerate(zip(node.all_steps(), routed.people, strict=True)):
            for number, step in enumerate(steps if people else []):
                if isinstance(step, PersonEmail):
                    await self._before_path_email(node, window_checked)
                    window_checked = True
                if self._interrupt is not None:
                    return self._interrupt
                self._show_people(node, routed, (index, number))
                step_key = f"{key}/{index}/{number}"
                match step:
                    case PersonEmail():
                        await self._path_email(node, step, step_key, people, group)
                    case AssignRole(role=role):
                        if group_request is None:  # the compiler refuses assign_role without a solution_interest
                            raise ApplicationError(
                                f"node '{node.id}': assign_role needs the journey's solution_interest",
                                type="PlanError",
                                non_retryable=True,
                            )
                        group = await self._path_role(node, step_key, people, role, group_request)
                    case UpdatePerson():
                        await self._path_update(node, step, step_key, people)
        self._show_people(node, routed, None)
        return self._edge(node, "next")

    async def _before_path_email(self, node: PeopleSplit, window_checked: bool) -> None:
        """The first email waits for the journey's send window and limits.yaml's quiet hours (account time zone), as
        send_email does; a paused account sends nothing until it is resumed."""
        holds = 0
        while not window_checked and self._interrupt is None and (hold := self._send_hold(False, holds)) is not None:
            self._show_waiting(node, hold.waiting)
            remaining = hold.until - workflow.now()
            await self._flush_steps(remaining)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._interrupt is not None, timeout=remaining, timeout_summary=hold.what
                )
            self._show_waiting(node, details.waiting_for(node))
            holds += 1
        if self._current().paused is not None and self._interrupt is None:
            self._show_waiting(node, visibility.PAUSED)
            await self._flush_steps()
            await workflow.wait_condition(lambda: self._current().paused is None or self._interrupt is not None)
            self._show_waiting(node, details.waiting_for(node))

    async def _path_email(
        self, node: PeopleSplit, step: PersonEmail, key: str, people: list[int], group: BuyingGroupSnapshot | None
    ) -> None:
        plan = self._plan()
        text_name = step.template.removesuffix(".j2").removesuffix(".html").removesuffix(".htm") + ".txt.j2"
        result: SendEmailResult = await workflow.execute_activity(
            "send_email",
            SendEmailRequest(
                key_prefix=key,
                journey_id=plan.journey,
                journey_name=plan.name,
                version=plan.version,
                account_id=self._input_().account_id,
                node_id=node.id,
                to=Recipients(all=True),
                subject=step.subject,
                html_template=plan.templates[step.template],
                text_template=plan.templates.get(text_name),
                buying_group=group,
                limits=plan.limits,  # limits.yaml caps count these emails as any other (none when absent)
                people=people,
            ),
            result_type=SendEmailResult,
            start_to_close_timeout=PATH_EMAIL_TIMEOUT,
            heartbeat_timeout=timedelta(seconds=self._settings().email_heartbeat_timeout_seconds),
            retry_policy=PATH_EMAIL_RETRY,
            summary=f"{step_summary(step)} to {len(people)} {'person' if len(people) == 1 else 'people'}",
        )
        # Messages an earlier, crashed attempt delivered count too: they were sent, exactly once.
        delivered = result.sent + result.already_sent
        self._state = self._current().model_copy(update={"emails_sent": self._current().emails_sent + delivered})

    async def _path_role(
        self, node: PeopleSplit, key: str, people: list[int], role: str, group_request: BuyingGroupRequest
    ) -> BuyingGroupSnapshot:
        result: AssignPeopleRoleResult = await workflow.execute_activity(
            "assign_people_role",
            AssignPeopleRoleRequest(group=group_request, key=key, people=people, role=role, occurred_at=workflow.now()),
            result_type=AssignPeopleRoleResult,
            start_to_close_timeout=PEOPLE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=f"make {len(people)} {'person' if len(people) == 1 else 'people'} {role}",
        )
        self._state = self._current().model_copy(update={"buying_group": result.snapshot.as_data()})
        self._show(visibility.COMPLETENESS.value_set(result.snapshot.completeness))
        workflow.logger.info("role assigned", extra={"node": node.id, "role": role, "people": result.assigned})
        return result.snapshot

    async def _path_update(self, node: PeopleSplit, step: UpdatePerson, key: str, people: list[int]) -> None:
        result: UpdatePeopleResult = await workflow.execute_activity(
            "update_people",
            UpdatePeopleRequest(
                key=key,
                journey_id=self._plan().journey,
                account_id=self._input_().account_id,
                node_id=node.id,
                people=people,
                set=dict(step.set),
                occurred_at=workflow.now(),
            ),
            result_type=UpdatePeopleResult,
            start_to_close_timeout=PEOPLE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=f"{step_summary(step)} on {len(people)} {'person' if len(people) == 1 else 'people'}",
        )
        workflow.logger.info("people updated", extra={"node": node.id, "people": result.updated})

    def _show_people(self, node: PeopleSplit, routed: RoutePeopleResult, running: tuple[int, int] | None) -> None:
        """The UI's current details: the node as every node shows it, then people per path and the running step."""
        state = self._current()
        text = details.current_details(
            self._plan(),
            node,
            state.entered_at,
            waiting=visibility.WORKING,
            group=state.buying_group,
            paused=state.paused,
        )
        progress = people_details.progress(node, routed.people, routed.left_out, running)
        workflow.set_current_details(f"{text}\n\n{progress}")
