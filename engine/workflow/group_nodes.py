"""The walk's steps for update_buying_group, remove_from_buying_group and sales_alert: each effect one activity
keyed by the node visit, so a retried activity or a replayed workflow never applies or sends it twice."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from engine.language.model import RemoveFromBuyingGroup, SalesAlert, UpdateBuyingGroup
from engine.language.render import node_summary
from engine.workflow import visibility
from engine.workflow.contracts import BuyingGroupRequest, BuyingGroupSnapshot
from engine.workflow.group_contracts import (
    GroupUpdateRequest,
    GroupUpdateResult,
    RemoveMembersRequest,
    RemoveMembersResult,
    SalesAlertRequest,
    SalesAlertResult,
)
from engine.workflow.operator_updates import OperatorUpdates
from engine.workflow.state import DB_RETRY, Exit

GROUP_CHANGE_TIMEOUT = timedelta(minutes=2)
ALERT_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=10), non_retryable_error_types=["AccountNotFound"])


class GroupNodes(OperatorUpdates):
    async def _update_group(self, node: UpdateBuyingGroup, group: BuyingGroupRequest) -> Exit:
        """`next` once the change is made (or was already so); a move the stage model refuses from the group's
        current stage takes `on_not_allowed`, or fails the account when the node has none."""
        result: GroupUpdateResult = await workflow.execute_activity(
            "update_buying_group",
            GroupUpdateRequest(group=group, stage=node.stage, status=node.status, occurred_at=workflow.now()),
            result_type=GroupUpdateResult,
            start_to_close_timeout=GROUP_CHANGE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=node_summary(node),
        )
        self._keep_group(result.snapshot)
        where = {"node": node.id, "stage": result.stage_before, "to": node.stage}
        if result.allowed:
            workflow.logger.info("buying group updated", extra={**where, "changed": result.changed})
            return self._edge(node, "next")
        if node.on_not_allowed is not None:
            workflow.logger.warning("stage move not allowed; on_not_allowed", extra={**where, "why": result.refusal})
            return self._edge(node, "on_not_allowed")
        workflow.logger.error("stage move not allowed; the account fails", extra={**where, "why": result.refusal})
        await self._flush_steps()
        plan, account = self._plan(), self._input_().account_id
        raise ApplicationError(
            f"journey '{plan.journey}' account '{account}' node '{node.id}': {result.refusal}"
            " (give the node an on_not_allowed branch to go on instead)",
            type="StageNotAllowed",
            non_retryable=True,
        )

    async def _remove_members(self, node: RemoveFromBuyingGroup, group: BuyingGroupRequest) -> None:
        result: RemoveMembersResult = await workflow.execute_activity(
            "remove_from_buying_group",
            RemoveMembersRequest(group=group, who=node.who, occurred_at=workflow.now()),
            result_type=RemoveMembersResult,
            start_to_close_timeout=GROUP_CHANGE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=node_summary(node),
        )
        self._keep_group(result.snapshot)
        workflow.logger.info("members removed", extra={"node": node.id, "people": result.removed})

    async def _sales_alert(self, node: SalesAlert, visit: int, group: BuyingGroupSnapshot | None) -> None:
        plan = self._plan()
        text_name = node.template.removesuffix(".j2").removesuffix(".html").removesuffix(".htm") + ".txt.j2"
        result: SalesAlertResult = await workflow.execute_activity(
            "sales_alert",
            SalesAlertRequest(
                key=f"{self._key(node, visit)}/alert",
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
            ),
            result_type=SalesAlertResult,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=self._heartbeat(),
            retry_policy=ALERT_RETRY,
            summary=node_summary(node),
        )
        if result.sent:
            workflow.logger.info("sales alert sent", extra={"node": node.id, "to": result.to})
        else:
            workflow.logger.warning("sales alert not sent", extra={"node": node.id, "reason": result.skipped})

    def _keep_group(self, snapshot: BuyingGroupSnapshot) -> None:
        self._state = self._current().model_copy(update={"buying_group": snapshot.as_data()})
        self._show(visibility.COMPLETENESS.value_set(snapshot.completeness))
