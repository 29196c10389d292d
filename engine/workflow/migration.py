"""Moving a running account to a later version of its journey: the Temporal update `migrate`.

The validator accepts the move only at a safe point: the account waits at a node (wait, wait_for_event,
wait_for_completeness, wait_for_change) that the new version has under the same id and type, or under the id the
request's node map gives, and nothing else is moving it (a skip, a cancel, a pause). The handler then asks the walk
to continue as new; every wait already wakes for that, and the account continues inside the new version's node
with what it carried across continue-as-new before: the time it entered (so a wait keeps its deadline, counted
from then with the new version's duration), buffered events, visits, emails sent. The handler answers once the
walk has decided, and the move is logged with who asked and why."""

from __future__ import annotations

from temporalio import workflow

from engine.language.model import NodeBase
from engine.language.plan import Plan
from engine.workflow.contracts import JourneyState, OperatorRequest
from engine.workflow.migration_contracts import MigrateOutcome, MigrateRequest, MigrateResult
from engine.workflow.operator_updates import OperatorUpdates
from engine.workflow.state import shared_plan

RESUMABLE_TYPES = frozenset({"wait", "wait_for_event", "wait_for_completeness", "wait_for_change"})


class Migrations(OperatorUpdates):
    def __init__(self) -> None:
        super().__init__()
        self._migration: MigrateRequest | None = None
        self._migrated: MigrateResult | None = None

    @workflow.update(name="migrate")
    async def migrate(self, request: MigrateRequest) -> MigrateResult:
        """Move the account to the request's version at the node it waits at; answered once it has moved (or,
        when it left that node meanwhile for one the new version lacks, has not)."""
        node = self._node()
        self._migration, self._migrated = request, None
        await workflow.wait_condition(lambda: self._migrated is not None)
        result = self._migrated
        assert result is not None
        detail = {
            "outcome": result.outcome,
            "from_version": result.from_version,
            "to_version": result.to_version,
            "to_node": result.to_node,
        }
        log = OperatorRequest(by=request.by, reason=request.reason)
        await self._operator_log("migrate", node, log, result.message, detail)
        return result

    @migrate.validator
    def _validate_migrate(self, request: MigrateRequest) -> None:
        self._check_operator(OperatorRequest(by=request.by, reason=request.reason))
        plan, state = self._plan(), self._current()
        if request.plan.journey != plan.journey:
            raise ValueError(
                f"version {request.plan.version} is of journey '{request.plan.journey}', not '{plan.journey}'"
            )
        if request.plan.version == plan.version:
            raise ValueError(f"the account already runs version {plan.version}")
        if self._migration_due():
            raise ValueError("the account is already moving to another version")
        if state.paused is not None:
            raise ValueError(f"the account is paused ({state.paused}); resume it first")
        node = self._node()
        if node.type not in RESUMABLE_TYPES:
            raise ValueError(
                f"the account is at '{node.id}' ({node.type}), not waiting: it can move only while it waits; try again"
            )
        _moved_node(node, request)

    def _migration_due(self) -> bool:
        return self._migration is not None and self._migrated is None

    def _decide_migration(self) -> tuple[Plan, str] | None:
        """Answer the pending migrate: the new version and the node the account goes on at there, or None (not
        moved) when it is at a node the new version has no place for (it left the waiting node in the same
        workflow task the update came in)."""
        request = self._migration
        assert request is not None
        plan, node = self._plan(), self._node()
        try:
            target = _moved_node(node, request)
        except ValueError as refusal:
            self._answer_migration("not_moved", None, f"not moved: {refusal}")
            return None
        self._answer_migration(
            "moved", target.id, f"moved from version {plan.version} '{node.id}' to {request.plan.version} '{target.id}'"
        )
        return shared_plan(request.plan), target.id

    def _moved_state(self, state: JourneyState, node_id: str) -> JourneyState:
        """The state at `node_id` of the new version: a renamed node keeps the visits of the node it replaces."""
        visits = dict(state.visits)
        if node_id != state.position and state.position in visits:
            visits.setdefault(node_id, visits[state.position])
        return state.model_copy(update={"position": node_id, "visits": visits})

    def _journey_ended_under_migration(self) -> None:
        if self._migration_due():
            self._answer_migration("not_moved", None, "not moved: its journey ended first")

    def _answer_migration(self, outcome: MigrateOutcome, to_node: str | None, message: str) -> None:
        request = self._migration
        assert request is not None
        self._migrated = MigrateResult(
            journey_id=self._plan().journey,
            account_id=self._input_().account_id,
            outcome=outcome,
            from_version=self._plan().version,
            to_version=request.plan.version,
            from_node=self._node().id,
            to_node=to_node,
            message=message,
        )


def _moved_node(node: NodeBase, request: MigrateRequest) -> NodeBase:
    """The node of the new version the account goes on at, or ValueError saying why there is none."""
    target_id = request.node_map.get(node.id, node.id)
    target = request.plan.nodes.get(target_id)
    mapped = f" (mapped from '{node.id}')" if target_id != node.id else ""
    if target is None:
        raise ValueError(
            f"version {request.plan.version} has no node '{target_id}'{mapped}; map it: --map {node.id}=NEW_NODE"
        )
    if target.type != node.type:
        raise ValueError(
            f"node '{target_id}'{mapped} is a {target.type} in version {request.plan.version}, the account waits at "
            f"a {node.type}; map it to a {node.type}"
        )
    return target
