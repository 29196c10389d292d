"""The walk's step for wait_for_change: listen, from the moment the account enters, to the change events the relay
signals (imports, upserts, other journeys' updates, buying-group changes) and take on_change at the first that is
the awaited one, on_timeout when none comes in time. Never polls: a completeness or engagement threshold is read
on entry and re-read only when an event that can move it arrives."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow

from engine.language.model import THRESHOLDS, NodeBase, WaitForChange
from engine.language.render import node_summary
from engine.workflow import change_match, details
from engine.workflow.contracts import BuyingGroupSnapshot
from engine.workflow.operator_updates import OperatorUpdates
from engine.workflow.state import Exit


class ChangeNodes(OperatorUpdates):
    if TYPE_CHECKING:  # the walk (engine/workflow/interpreter.py) provides these

        def _continue_as_new_due(self) -> bool: ...

        async def _continue_as_new(self, resume_inside: bool = False) -> None: ...

        async def _buying_group(self, activity: str, node: NodeBase, visit: int) -> BuyingGroupSnapshot: ...

    async def _wait_for_change(self, node: WaitForChange, visit: int) -> Exit:
        deadline = self._entered_at() + node.timeout
        threshold = node.change.buying_group in THRESHOLDS
        while True:
            what = await self._read_threshold(node, visit) if threshold else self._awaited_change(node)
            if what is not None:
                workflow.logger.info("change seen", extra={"node": node.id, "changed": what})
                return Exit(change_match.branch(what), self._edge(node, change_match.BRANCH).target)
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return self._edge(node, "on_timeout")
            await self._flush_steps(remaining)
            if self._heard(node):
                continue  # arrived while the steps were written
            try:
                await workflow.wait_condition(
                    lambda: self._heard(node) or self._continue_as_new_due() or self._interrupt is not None,
                    timeout=remaining,
                    timeout_summary=node_summary(node),
                )
            except TimeoutError:
                return self._edge(node, "on_timeout")
            if self._interrupt is not None:
                return self._interrupt
            if not self._heard(node) and self._continue_as_new_due():
                await self._continue_as_new(resume_inside=True)

    def _awaited_change(self, node: WaitForChange) -> str | None:
        """What changed, from the first buffered event that is the awaited change; the others are dropped."""
        plan = self._plan()
        interest = plan.solution_interest.id if plan.solution_interest is not None else None
        while self._inbox:
            what = change_match.changed(node.change, self._inbox.pop(0), plan.journey, interest)
            if what is not None:
                return what
        return None

    async def _read_threshold(self, node: WaitForChange, visit: int) -> str | None:
        """Read the group (every pending event is covered by this read) and say whether it is over the threshold."""
        self._inbox = []
        snapshot = await self._buying_group("load_buying_group", node, visit)
        self._show_waiting(node, details.waiting_for(node))  # the details show the value just read
        return change_match.crossed(node.change, getattr(snapshot, str(node.change.buying_group)))

    def _heard(self, node: WaitForChange) -> bool:
        """Whether an event worth looking at is buffered: any, or for a threshold one that can move the value."""
        if node.change.buying_group not in THRESHOLDS:
            return bool(self._inbox)
        journey = self._plan().journey
        return any(change_match.rechecks(node.change, event, journey) for event in self._inbox)
