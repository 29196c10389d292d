"""Operator actions on a running account, as validated Temporal updates: skip (to a named node, or along the
timeout path now), pause, resume and cancel. Each is checked by its validator before it is accepted, logged
to the event log with who and why, and answered with what it did. The walk (engine/workflow/interpreter.py) honours
them through `_interrupt`, `_cancelled` and the state's `paused`."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from engine.language.model import NodeBase, Wait, WaitForChange, WaitForCompleteness, WaitForEvent
from engine.workflow import details, visibility
from engine.workflow.contracts import OperatorLog, OperatorRequest, OperatorResult
from engine.workflow.state import DB_RETRY, QUICK, Exit, JourneyBase


class OperatorUpdates(JourneyBase):
    @workflow.update(name="skip")
    async def skip(self, request: OperatorRequest) -> OperatorResult:
        """Move the account on now: to the node `to`, or along its node's timeout path."""
        node = self._node()
        self._interrupt = self._skip_exit(node, request)
        where = f"'{self._interrupt.target}'" + (" (timeout path)" if request.timeout else "")
        detail = {"to": self._interrupt.target, "branch": self._interrupt.branch}
        return await self._operator_log("skip", node, request, f"moves from '{node.id}' to {where}", detail)

    @skip.validator
    def _validate_skip(self, request: OperatorRequest) -> None:
        self._skip_exit(self._node(), request)

    @workflow.update(name="pause")
    async def pause(self, request: OperatorRequest) -> OperatorResult:
        """Hold the account where it is: it starts no node, sends nothing and leaves no node until resumed."""
        node = self._node()
        by = f"{request.by}: {request.reason}" if request.reason else request.by
        self._state = self._current().model_copy(update={"paused": by})
        self._show_waiting(node, visibility.PAUSED)
        return await self._operator_log("pause", node, request, f"paused at '{node.id}'")

    @pause.validator
    def _validate_pause(self, request: OperatorRequest) -> None:
        self._check_operator(request)
        if self._current().paused is not None:
            raise ValueError(f"already paused ({self._current().paused})")

    @workflow.update(name="resume")
    async def resume(self, request: OperatorRequest) -> OperatorResult:
        node = self._node()
        self._state = self._current().model_copy(update={"paused": None})
        self._show_waiting(node, details.waiting_for(node))
        return await self._operator_log("resume", node, request, f"resumed at '{node.id}'")

    @resume.validator
    def _validate_resume(self, request: OperatorRequest) -> None:
        self._check_operator(request)
        if self._current().paused is None:
            raise ValueError("the account is not paused")

    @workflow.update(name="cancel")
    async def cancel(self, request: OperatorRequest) -> OperatorResult:
        """End the account's journey now; the result says who cancelled it and why."""
        node = self._node()
        self._cancelled = f"cancelled by {request.by}: {request.reason}"
        self._interrupt = Exit("cancelled", None)
        return await self._operator_log("cancel", node, request, f"cancelled at '{node.id}'")

    @cancel.validator
    def _validate_cancel(self, request: OperatorRequest) -> None:
        self._check_operator(request)
        if not request.reason.strip():
            raise ValueError("say why: a reason is required to cancel")

    def _check_operator(self, request: OperatorRequest) -> None:
        if self._state is None or self._input is None:
            raise ValueError("the journey has not started yet; try again in a moment")
        if self._interrupt is not None:
            raise ValueError(f"the account is already leaving '{self._state.position}' ({self._interrupt.branch})")
        if not request.by.strip():
            raise ValueError("say who you are: `by` is required")

    def _skip_exit(self, node: NodeBase, request: OperatorRequest) -> Exit:
        self._check_operator(request)
        if (request.to is None) == (not request.timeout):
            raise ValueError("give either a node to move to or the timeout path, not both or neither")
        if request.to is not None:
            if request.to not in self._plan().nodes:
                known = ", ".join(self._plan().nodes)
                raise ValueError(f"journey '{self._plan().journey}' has no node '{request.to}' (nodes: {known})")
            return Exit("operator_skip", request.to)
        label = "next" if isinstance(node, Wait) else "on_timeout"
        if not isinstance(node, Wait | WaitForEvent | WaitForCompleteness | WaitForChange) or not any(
            edge.label == label for edge in self._plan().edges[node.id]
        ):
            raise ValueError(f"node '{node.id}' ({node.type}) has no timeout path; move it to a named node instead")
        return self._edge(node, label)

    async def _operator_log(
        self, action: str, node: NodeBase, request: OperatorRequest, what: str, detail: dict[str, Any] | None = None
    ) -> OperatorResult:
        info, update = workflow.info(), workflow.current_update_info()
        assert update is not None
        await workflow.execute_activity(
            "record_operator_action",
            OperatorLog(
                key=f"{info.workflow_id}/{info.first_execution_run_id}/operator/{update.id}",
                journey_id=self._plan().journey,
                account_id=self._input_().account_id,
                node_id=node.id,
                action=action,
                by=request.by,
                reason=request.reason,
                detail=detail or {},
                occurred_at=workflow.now(),
            ),
            start_to_close_timeout=QUICK,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=f"log {action} by {request.by}",
        )
        workflow.logger.info(f"operator {action}", extra={"by": request.by, "reason": request.reason, "node": node.id})
        message = f"{self._input_().account_id} {what} (by {request.by}" + (
            f": {request.reason})" if request.reason else ")"
        )
        return OperatorResult(
            journey_id=self._plan().journey,
            account_id=self._input_().account_id,
            action=action,
            node=node.id,
            message=message,
        )
