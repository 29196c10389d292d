"""`journey publish --migrate`: move the accounts running an older version of a journey to the version just
published, each at a safe point (a wait it sits at, under the same node id or a mapped one), through the workflow's
validated `migrate` update (engine/workflow/migration.py).

The plan comes from visibility (where each running account waits, by its search attributes) and the stored
versions (which node type it waits at); the validator of each account has the last word, since an account may
have moved on since visibility was written. Re-running moves only those still on an older version."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from engine.db import JourneyVersion
from engine.language.plan import Plan
from engine.workflow import visibility
from engine.workflow.migration import RESUMABLE_TYPES
from engine.workflow.migration_contracts import MigrateRequest, MigrateResult

CONCURRENT_MOVES = 20
MAX_MAPPINGS = 1_000


@dataclass(frozen=True)
class Group:
    """The running accounts of one older version waiting at one node, and where they would go."""

    version: str
    node: str
    node_type: str | None
    target: str | None  # the new version's node; None: they cannot move
    why_not: str | None
    accounts: list[str] = field(default_factory=list, compare=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "node": self.node,
            "node_type": self.node_type,
            "to": self.target,
            "refused": self.why_not,
            "accounts": len(self.accounts),
        }


@dataclass
class Moves:
    journey: str
    to_version: str
    groups: list[Group]
    moved: list[str] = field(default_factory=list)
    not_moved: dict[str, str] = field(default_factory=dict)  # account -> why

    @property
    def refused(self) -> dict[str, str]:
        """Accounts the plan leaves where they are, with why."""
        return {
            account: group.why_not or "" for group in self.groups if group.target is None for account in group.accounts
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "journey": self.journey,
            "to_version": self.to_version,
            "plan": [group.as_json() for group in self.groups],
            "moved": len(self.moved),
            "not_moved": self.not_moved,
            "refused": self.refused,
        }


def parse_map(pairs: list[str], plan: Plan) -> dict[str, str]:
    """`old=new` pairs; every new node must exist in `plan`. ValueError says what is wrong."""
    if len(pairs) > MAX_MAPPINGS:
        raise ValueError(f"at most {MAX_MAPPINGS} --map pairs, got {len(pairs)}")
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            raise ValueError(f"--map '{pair}': write it as OLD_NODE=NEW_NODE")
        if new not in plan.nodes:
            raise ValueError(
                f"--map '{pair}': version {plan.version} has no node '{new}' (nodes: {', '.join(plan.nodes)})"
            )
        if mapping.get(old, new) != new:
            raise ValueError(f"--map: node '{old}' is mapped twice ('{mapping[old]}' and '{new}')")
        mapping[old] = new
    return mapping


async def plan_moves(client: Client, engine: Engine, plan: Plan, node_map: Mapping[str, str]) -> Moves:
    """Where the accounts on older versions wait now, grouped by (version, node), each group with its target."""
    query = " AND ".join(
        [
            'WorkflowType = "Journey"',
            'ExecutionStatus = "Running"',
            f"{visibility.JOURNEY_ID.name} = {visibility.quoted(plan.journey)}",
            f"{visibility.JOURNEY_VERSION.name} != {visibility.quoted(plan.version)}",
        ]
    )
    waiting: dict[tuple[str, str], list[str]] = {}
    async for execution in client.list_workflows(query):
        attributes = execution.typed_search_attributes
        version, node = attributes.get(visibility.JOURNEY_VERSION), attributes.get(visibility.NODE)
        account = attributes.get(visibility.ACCOUNT_ID)
        if version and account:
            waiting.setdefault((version, node or "?"), []).append(account)
    versions = await asyncio.to_thread(_versions, engine, plan.journey, {version for version, _ in waiting})
    groups = [
        _group(versions.get(version), version, node, sorted(accounts), plan, node_map)
        for (version, node), accounts in sorted(waiting.items())
    ]
    return Moves(plan.journey, plan.version, groups)


def _group(
    old: Plan | None, version: str, node_id: str, accounts: list[str], plan: Plan, node_map: Mapping[str, str]
) -> Group:
    node = old.nodes.get(node_id) if old is not None else None
    node_type = node.type if node is not None else None
    target_id = node_map.get(node_id, node_id)
    target = plan.nodes.get(target_id)
    why_not = None
    if node is None:
        why_not = f"version {version} is not stored here or has no node '{node_id}'"
    elif node.type not in RESUMABLE_TYPES:
        why_not = f"'{node_id}' is a {node.type}: accounts move only while they wait; run again later"
    elif target is None:
        why_not = f"version {plan.version} has no node '{target_id}': map it with --map {node_id}=NEW_NODE"
    elif target.type != node.type:
        why_not = (
            f"'{target_id}' is a {target.type} in version {plan.version}, not a {node.type}: map it to a {node.type}"
        )
    return Group(version, node_id, node_type, None if why_not else target_id, why_not, accounts)


def _versions(engine: Engine, journey: str, versions: set[str]) -> dict[str, Plan]:
    if not versions:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(JourneyVersion).where(JourneyVersion.journey_id == journey, JourneyVersion.version.in_(versions))  # type: ignore[attr-defined]
        ).all()
        return {row.version: Plan.model_validate(row.plan) for row in rows}


async def move(
    client: Client,
    moves: Moves,
    plan: Plan,
    node_map: Mapping[str, str],
    by: str,
    reason: str,
    progress: Callable[[int], None] = lambda _: None,
) -> Moves:
    """Send `migrate` to every account of a group that can move; a refusal (the validator's reason) or a 'not moved'
    answer is kept per account. The update id carries the target version: a repeated request is answered, not
    done twice."""
    from engine.runtime import temporal

    request = MigrateRequest(plan=plan, node_map=dict(node_map), by=by, reason=reason)
    limit = asyncio.Semaphore(CONCURRENT_MOVES)

    async def one(account: str) -> None:
        async with limit:
            handle = client.get_workflow_handle(temporal.workflow_id(plan.journey, account))
            try:
                result = await handle.execute_update(
                    "migrate", request, id=f"migrate-to-{plan.version}", result_type=MigrateResult
                )
            except WorkflowUpdateFailedError as error:
                cause = error.cause
                moves.not_moved[account] = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
                moves.not_moved[account] = "not running any more"
            else:
                if result.outcome == "moved":
                    moves.moved.append(account)
                else:
                    moves.not_moved[account] = result.message
            progress(1)

    movable = [account for group in moves.groups if group.target is not None for account in group.accounts]
    await asyncio.gather(*(one(account) for account in movable))
    moves.moved.sort()
    return moves


def summary_lines(moves: Moves) -> list[str]:
    """The per-node plan, in words."""
    if not moves.groups:
        return [f"no account runs an older version of '{moves.journey}': nothing to move"]
    lines = [f"moving running accounts of '{moves.journey}' to version {moves.to_version}:"]
    for group in moves.groups:
        where = f"  {group.version} '{group.node}': {len(group.accounts)} account(s)"
        lines.append(f"{where} -> '{group.target}'" if group.target else f"{where} stay: {group.why_not}")
    counts = Counter("move" if group.target else "stay" for group in moves.groups for _ in group.accounts)
    lines.append(f"{counts['move']} to move, {counts['stay']} to stay on their version")
    return lines
