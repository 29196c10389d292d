"""The walk's external_action step: call the service once per node visit (the key travels as the Idempotency-Key
header), branch on the answer (on_response) and store chosen fields of it on the account (store)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from engine.language.errors import ExpressionLimitError
from engine.language.model import ExternalAction
from engine.language.render import node_summary
from engine.workflow import answers
from engine.workflow.contracts import ServiceCallRequest, StoreResponseRequest
from engine.workflow.operator_updates import OperatorUpdates
from engine.workflow.state import DB_RETRY, QUICK, Exit, activity_cause, failure_type


class ServiceNodes(OperatorUpdates):
    async def _call_service(self, node: ExternalAction, visit: int) -> Exit:
        plan = self._plan()
        service = plan.services[node.service]
        request = ServiceCallRequest(
            key=self._key(node, visit),
            service_name=node.service,
            service=service,
            journey_id=plan.journey,
            account_id=self._input_().account_id,
            node_id=node.id,
            account=self._current().account,
            reads_response=bool(node.on_response or node.store),
        )
        try:
            result = await workflow.execute_activity(
                "call_service",
                request,
                start_to_close_timeout=service.timeout + timedelta(seconds=5),
                heartbeat_timeout=self._heartbeat(),
                retry_policy=RetryPolicy(
                    maximum_attempts=service.retries + 1,
                    initial_interval=timedelta(seconds=1),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=30),
                    non_retryable_error_types=["ServiceRejected", "ServiceMisconfigured"],
                ),
                summary=node_summary(node),
            )
        except ActivityError as error:
            # The activity's own deadline says ServiceTimeout; Temporal's start-to-close limit, TimeoutError.
            timed_out = failure_type(error) in ("ServiceTimeout", "TimeoutError")
            workflow.logger.warning("service call failed", extra={"node": node.id, "error": activity_cause(error)})
            if timed_out and node.on_timeout is not None:
                return self._edge(node, "on_timeout")
            return self._edge(node, "on_error")
        if not request.reads_response:
            return self._edge(node, "on_success")
        return await self._use_answer(node, visit, answers.response_of(result))

    async def _use_answer(self, node: ExternalAction, visit: int, response: dict[str, Any]) -> Exit:
        """on_response decides the branch, then `store` saves its fields (once, whatever the retries)."""
        try:
            path, notes = answers.branch(node, response)
            values, refused = answers.stored(node, response)
        except ExpressionLimitError as error:
            raise self._limit_failure(error) from None
        for note in [*notes, *refused]:
            workflow.logger.warning("service answer not used", extra={"node": node.id, "problem": note})
        if values:
            account = await workflow.execute_activity(
                "store_response",
                StoreResponseRequest(
                    key=f"{self._key(node, visit)}/store",
                    journey_id=self._plan().journey,
                    account_id=self._input_().account_id,
                    node_id=node.id,
                    service_name=node.service,
                    values=values,
                    occurred_at=workflow.now(),
                ),
                result_type=dict,
                start_to_close_timeout=QUICK,
                heartbeat_timeout=self._heartbeat(),
                retry_policy=DB_RETRY,
                summary=f"store {', '.join(values)} from {node.service}",
            )
            self._state = self._current().model_copy(update={"account": account})
        if path is not None:
            return Exit(f"when {path.when}", path.next)
        return self._edge(node, "on_success")
