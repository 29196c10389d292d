"""How many running accounts sit at the nodes a new version removes or changes, counted by Temporal visibility
(`JourneyId`, `JourneyVersion`, `JourneyNode`, `ExecutionStatus = "Running"`), per node and per version.

The number of queries is bounded: one per recent version to find the versions with running accounts, then
one per (affected node, such version). Past MAX_QUERIES the counts stop and `complete` says so.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client

from engine.db import JourneyVersion
from engine.workflow import visibility

RECENT_VERSIONS = 20  # versions looked at, newest first; accounts on older ones are counted as "older"
MAX_QUERIES = 200
CONCURRENT_QUERIES = 8


@dataclass(frozen=True)
class NodeImpact:
    node: str
    by_version: dict[str, int] = field(default_factory=dict)  # version -> running accounts waiting at the node

    @property
    def total(self) -> int:
        return sum(self.by_version.values())


@dataclass(frozen=True)
class Impact:
    nodes: list[NodeImpact]
    running_by_version: dict[str, int]  # every running account of the journey, by version
    complete: bool  # False: MAX_QUERIES reached, some nodes or versions were not counted

    @property
    def running(self) -> int:
        return sum(self.running_by_version.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "running": self.running,
            "running_by_version": self.running_by_version,
            "nodes": [{"node": node.node, "total": node.total, "by_version": node.by_version} for node in self.nodes],
        }


def recent_versions(engine: Engine, journey_id: str, limit: int = RECENT_VERSIONS) -> list[str]:
    with Session(engine) as session:
        query = (
            select(JourneyVersion.version)
            .where(JourneyVersion.journey_id == journey_id)
            .order_by(JourneyVersion.published_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        )
        return list(session.exec(query).all())


def running_query(journey: str, version: str | None = None, node: str | None = None) -> str:
    """The visibility query for the journey's running accounts, optionally of one version at one node."""
    parts = ['WorkflowType = "Journey"', f"{visibility.JOURNEY_ID.name} = {visibility.quoted(journey)}"]
    if version is not None:
        parts.append(f"{visibility.JOURNEY_VERSION.name} = {visibility.quoted(version)}")
    if node is not None:
        parts.append(f"{visibility.NODE.name} = {visibility.quoted(node)}")
    parts.append('ExecutionStatus = "Running"')
    return " AND ".join(parts)


async def impact(client: Client, engine: Engine, journey: str, nodes: list[str]) -> Impact:
    """Running accounts at each of `nodes`, by version, and the journey's running accounts by version."""
    versions = await asyncio.to_thread(recent_versions, engine, journey)
    limit = asyncio.Semaphore(CONCURRENT_QUERIES)
    budget = MAX_QUERIES - 1 - len(versions)

    async def count(query: str) -> int:
        async with limit:
            return (await client.count_workflows(query)).count

    total, *per_version = await asyncio.gather(
        count(running_query(journey)), *(count(running_query(journey, version)) for version in versions)
    )
    running_by_version = _with_older({v: n for v, n in zip(versions, per_version, strict=True) if n}, total)

    # First each node over all versions; then, only where accounts wait and more than one version runs, by version.
    complete = len(nodes) <= budget
    counted = nodes[:budget]
    budget -= len(counted)
    totals = await asyncio.gather(*(count(running_query(journey, node=node)) for node in counted))
    by_node = {
        node: {next(iter(running_by_version), "older"): number} for node, number in zip(counted, totals, strict=True)
    }
    if len(running_by_version) > 1:
        pairs = [
            (node, version)
            for node, number in zip(counted, totals, strict=True)
            if number
            for version in running_by_version
            if version != "older"
        ]
        if len(pairs) > budget:
            pairs, complete = pairs[:budget], False
        found = await asyncio.gather(*(count(running_query(journey, version, node)) for node, version in pairs))
        split: dict[str, dict[str, int]] = {}
        for (node, version), number in zip(pairs, found, strict=True):
            split.setdefault(node, {})[version] = number
        for node, number in zip(counted, totals, strict=True):
            if node in split:
                by_node[node] = _with_older(split[node], number)
    return Impact(
        [NodeImpact(node, {v: n for v, n in by_node.get(node, {}).items() if n}) for node in nodes],
        running_by_version,
        complete,
    )


def _with_older(by_version: dict[str, int], total: int) -> dict[str, int]:
    """The counts by version, plus "older" for accounts on none of them (visibility lags a little: never negative)."""
    counted = {version: number for version, number in by_version.items() if number}
    rest = total - sum(counted.values())
    return counted | ({"older": rest} if rest > 0 else {})
