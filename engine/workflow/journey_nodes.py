"""The walk's steps for add_to_journey and remove_from_journey: one activity each, keyed by the node visit, whose
answer is the branch the event log shows; the account always goes on to `next`."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from engine.language.model import AddToJourney, RemoveFromJourney
from engine.language.render import node_summary
from engine.workflow.journey_contracts import (
    AddToJourneyRequest,
    AddToJourneyResult,
    RemoveFromJourneyRequest,
    RemoveFromJourneyResult,
)
from engine.workflow.operator_updates import OperatorUpdates
from engine.workflow.state import DB_RETRY, Exit

# Starting a run or cancelling one is a few Temporal calls; a cancel waits for the other journey to log it.
JOURNEY_CHANGE_TIMEOUT = timedelta(minutes=2)


class JourneyNodes(OperatorUpdates):
    async def _add_to_journey(self, node: AddToJourney, visit: int) -> Exit:
        plan = self._plan()
        result: AddToJourneyResult = await workflow.execute_activity(
            "add_to_journey",
            AddToJourneyRequest(
                key=self._key(node, visit),
                journey_id=plan.journey,
                account_id=self._input_().account_id,
                node_id=node.id,
                target=node.journey,
                settings=self._settings(),
                occurred_at=workflow.now(),
            ),
            result_type=AddToJourneyResult,
            start_to_close_timeout=JOURNEY_CHANGE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=node_summary(node),
        )
        workflow.logger.info(
            "add to journey", extra={"node": node.id, "journey": node.journey, "outcome": result.outcome}
        )
        return Exit(result.outcome, self._edge(node, "next").target)

    async def _remove_from_journey(self, node: RemoveFromJourney, visit: int) -> Exit:
        plan = self._plan()
        result: RemoveFromJourneyResult = await workflow.execute_activity(
            "remove_from_journey",
            RemoveFromJourneyRequest(
                key=self._key(node, visit),
                journey_id=plan.journey,
                account_id=self._input_().account_id,
                node_id=node.id,
                target=node.journey,
                reason=node.reason,
            ),
            result_type=RemoveFromJourneyResult,
            start_to_close_timeout=JOURNEY_CHANGE_TIMEOUT,
            heartbeat_timeout=self._heartbeat(),
            retry_policy=DB_RETRY,
            summary=node_summary(node),
        )
        workflow.logger.info(
            "remove from journey", extra={"node": node.id, "journey": node.journey, "outcome": result.outcome}
        )
        return Exit(result.outcome, self._edge(node, "next").target)
