"""What `journey list` shows: every journey of the folder and of the database, with its state, live version and
accounts running, finished and cancelled.

Where the counts come from, and why:
- running: Temporal visibility (`JourneyId = ... AND ExecutionStatus = "Running"`, a count, never a listing). Only
  Temporal knows whether a run is alive: a run that failed or was terminated writes nothing to the event log.
- finished and cancelled: the event log (`node_entered` at an `end` node; an operator's `cancel`, which `journey
  stop` and remove_from_journey also use). Visibility forgets closed runs after the namespace's retention period
  (a day on the dev server), and an operator's cancel ends a run as "Completed", like reaching an end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError

from engine.db import ActivityEvent, JourneyVersion
from engine.language.plan import Plan
from engine.runtime import journey_state, operators

CONCURRENT_COUNTS = 10


@dataclass
class JourneyListing:
    journey: str
    name: str | None
    state: str
    version: str | None  # the latest published version: the one new accounts start
    running: int | None  # None: Temporal could not be asked
    finished: int
    cancelled: int
    first_published: datetime | None
    changed_at: datetime | None
    changed_by: str | None
    reason: str | None
    schedule_start: datetime | None
    schedule_end: datetime | None
    file: str | None
    file_version: str | None  # the file's version now: differs from `version` when it was edited since publishing

    def as_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        return data


def running_query(journey_id: str) -> str:
    return operators.stuck_query(journey_id)


async def running_counts(client: Client, journey_ids: Sequence[str]) -> dict[str, int]:
    """Running accounts per journey, one visibility count each (a few at a time)."""
    limit = asyncio.Semaphore(CONCURRENT_COUNTS)

    async def one(journey_id: str) -> tuple[str, int]:
        async with limit:
            return journey_id, (await client.count_workflows(running_query(journey_id))).count

    return dict(await asyncio.gather(*(one(journey_id) for journey_id in journey_ids)))


def ended_counts(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """(runs that reached an end node, runs an operator cancelled) per journey, from the event log."""
    with Session(engine) as session:
        finished = session.exec(
            select(ActivityEvent.journey_id, func.count())
            .where(ActivityEvent.type == "node_entered", ActivityEvent.payload["node_type"].as_string() == "end")
            .group_by(col(ActivityEvent.journey_id))
        ).all()
        cancelled = session.exec(
            select(ActivityEvent.journey_id, func.count())
            .where(ActivityEvent.type == "operator_action", ActivityEvent.payload["action"].as_string() == "cancel")
            .group_by(col(ActivityEvent.journey_id))
        ).all()
    return (
        {journey: count for journey, count in finished if journey},
        {journey: count for journey, count in cancelled if journey},
    )


def _versions(engine: Engine) -> dict[str, tuple[str, str, datetime, datetime]]:
    """Per published journey: (latest version, its name, first published, last published)."""
    found: dict[str, tuple[str, str, datetime, datetime]] = {}
    with Session(engine) as session:
        rows = session.exec(
            select(JourneyVersion.journey_id, JourneyVersion.version, JourneyVersion.name, JourneyVersion.published_at)
        ).all()
    for journey_id, version, name, published in sorted(rows, key=lambda row: row[3]):
        first = found[journey_id][2] if journey_id in found else published
        found[journey_id] = (version, name, first, published)
    return found


async def listing(engine: Engine, client: Client | None, drafts: Sequence[Plan], now: datetime) -> list[JourneyListing]:
    """Every journey, published or a draft in the folder. States a listing is the first to see are recorded: a
    live journey past its schedule.end becomes closed, a closed or stopped one with nobody running finished."""
    states = await asyncio.to_thread(journey_state.known, engine)
    versions = await asyncio.to_thread(_versions, engine)
    finished, cancelled = await asyncio.to_thread(ended_counts, engine)
    running: dict[str, int] = {}
    if client is not None:
        try:
            running = await running_counts(client, list(states))
        except RPCError:  # e.g. a namespace without the journey search attributes: counts unknown, as offline
            client = None
    files = {plan.journey: plan for plan in drafts}
    result = []
    for journey_id in sorted(set(states) | set(files)):
        plan = files.get(journey_id)
        if journey_id not in states:
            if plan is not None:
                result.append(_draft(plan))
            continue
        found = journey_state.as_lifecycle(journey_id, states[journey_id], now)
        if found.state == journey_state.CLOSED and states[journey_id] is not None:
            await asyncio.to_thread(journey_state.close_on_schedule, engine, journey_id, now)
        if found.state in (journey_state.CLOSED, journey_state.STOPPED) and running.get(journey_id) == 0:
            await asyncio.to_thread(journey_state.finish, engine, journey_id, now)
            found = await asyncio.to_thread(_reread, engine, found, now)
        version, name, first, _ = versions.get(journey_id, (None, None, None, None))
        result.append(
            JourneyListing(
                journey=journey_id,
                name=name,
                state=found.state,
                version=version,
                running=running.get(journey_id) if client is not None else None,
                finished=finished.get(journey_id, 0),
                cancelled=cancelled.get(journey_id, 0),
                first_published=first,
                changed_at=found.changed_at,
                changed_by=found.changed_by,
                reason=found.reason,
                schedule_start=found.schedule_start,
                schedule_end=found.schedule_end,
                file=plan.source if plan is not None else None,
                file_version=plan.version if plan is not None else None,
            )
        )
    return result


def _reread(engine: Engine, found: journey_state.Lifecycle, now: datetime) -> journey_state.Lifecycle:
    return journey_state.lifecycle(engine, found.journey_id, now) or found


def _draft(plan: Plan) -> JourneyListing:
    schedule = plan.schedule
    return JourneyListing(
        journey=plan.journey,
        name=plan.name,
        state=journey_state.DRAFT,
        version=None,
        running=0,
        finished=0,
        cancelled=0,
        first_published=None,
        changed_at=None,
        changed_by=None,
        reason=None,
        schedule_start=schedule.start if schedule is not None else None,
        schedule_end=schedule.end if schedule is not None else None,
        file=plan.source,
        file_version=plan.version,
    )
