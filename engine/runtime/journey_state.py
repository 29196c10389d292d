"""A journey's lifecycle, as AJO B2B has it: draft (a file never published), live (takes new accounts), closed (takes
none; running accounts finish), stopped (every running account cancelled) and finished (closed or stopped, nobody
left running). The state lives in the `journey_state` table; every change is also written to the event log as a
`journey_state_changed` row, so audits and analytics see who changed what, when and why.

Closed, stopped and finished journeys are not reopened (AJO does not either): their accounts' history stays one
story. To run the journey again, publish it under a new journey id.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from engine.db import ActivityEvent, JourneyStatus, JourneyVersion, engine_key
from engine.language.plan import Plan

DRAFT, LIVE, CLOSED, STOPPED, FINISHED = "draft", "live", "closed", "stopped", "finished"
ENDED = frozenset({CLOSED, STOPPED, FINISHED})
EVENT_TYPE = "journey_state_changed"
SCHEDULE = "schedule"  # who closes a journey whose schedule.end has come
CLOSED_BY_SCHEDULE = "schedule.end reached"
ENGINE = "engine"  # who records that a closed or stopped journey has nobody left running
ATTEMPTS = 5  # a change racing another one is decided again on what the other wrote

T = TypeVar("T")


class JourneyStateError(Exception):
    """A change the journey's state does not allow (publishing a closed journey, closing an unknown one); the
    message says what to do instead."""


@dataclass(frozen=True)
class Lifecycle:
    """One journey's state as stored, with a schedule's end applied: a live journey past its end is closed."""

    journey_id: str
    state: str
    changed_at: datetime | None
    changed_by: str | None
    reason: str | None
    schedule_start: datetime | None
    schedule_end: datetime | None

    def entry_refusal(self, at: datetime) -> str | None:
        """Why no account may start the journey at `at`, or None when entry is open."""
        ended = self.schedule_end is not None and at >= self.schedule_end
        if ended and (self.state == LIVE or (self.state == CLOSED and self.changed_by == SCHEDULE)):
            return f"journey '{self.journey_id}' closed for entry at {_shown(self.schedule_end)} (schedule.end)"
        if self.state != LIVE:
            return f"journey '{self.journey_id}' is {self.state}"
        if self.schedule_start is not None and at < self.schedule_start:
            return f"journey '{self.journey_id}' opens for entry at {_shown(self.schedule_start)}"
        return None


def lifecycle(engine: Engine, journey_id: str, now: datetime) -> Lifecycle | None:
    """The journey's state; a published journey without a row (published before states existed) is live; None
    when it was never published."""
    with Session(engine) as session:
        row = session.get(JourneyStatus, journey_id)
        if row is None:
            published = session.exec(select(JourneyVersion.version).where(JourneyVersion.journey_id == journey_id))
            return None if published.first() is None else Lifecycle(journey_id, LIVE, None, None, None, None, None)
        return _lifecycle(row, now)


def entry_refusal(engine: Engine, journey_id: str, at: datetime) -> str | None:
    """Why nobody may start the journey at `at` (publish, the audience refresh and add_to_journey ask), or None."""
    found = lifecycle(engine, journey_id, at)
    return found.entry_refusal(at) if found is not None else f"journey '{journey_id}' is not published"


def make_live(engine: Engine, plan: Plan, by: str, now: datetime) -> str:
    """Publishing: a draft (or a journey published before states existed) becomes live, a live one stays live with
    the new version's schedule. Returns the state before. Closed, stopped and finished journeys are refused."""
    schedule = plan.schedule
    if schedule is not None and schedule.end is not None and schedule.end <= now:
        raise JourneyStateError(
            f"journey '{plan.journey}': schedule.end {_shown(schedule.end)} has passed, so nobody could enter: "
            "move schedule.end later, or remove it"
        )
    start, end = (schedule.start, schedule.end) if schedule is not None else (None, None)

    def change(session: Session) -> str:
        row = session.get(JourneyStatus, plan.journey)
        if row is None:
            published = session.exec(select(JourneyVersion.version).where(JourneyVersion.journey_id == plan.journey))
            before = LIVE if published.first() is not None else DRAFT
            _record(session, None, plan.journey, before, LIVE, by, None, now, start, end)
            return before
        found = _lifecycle(row, now)
        if found.state == CLOSED and row.state == LIVE:  # its end came and nobody recorded it yet
            _record(session, row, plan.journey, LIVE, CLOSED, SCHEDULE, CLOSED_BY_SCHEDULE, now)
            session.commit()
            found = _lifecycle(row, now)
        if found.state in ENDED:
            raise JourneyStateError(_not_reopened(found))
        row.schedule_start, row.schedule_end = start, end
        session.add(row)
        return LIVE

    return _transaction(engine, change)


def close(engine: Engine, journey_id: str, by: str, reason: str | None, now: datetime) -> bool:
    """Take no new accounts from now on; running accounts finish. False when it was closed already."""
    return _end(engine, journey_id, CLOSED, by, reason, now)


def stop(engine: Engine, journey_id: str, by: str, reason: str, now: datetime) -> bool:
    """Mark the journey stopped (the caller cancels its running accounts). False when it was stopped (or finished)
    already: a stop run again after a crash goes on cancelling whoever still runs."""
    return _end(engine, journey_id, STOPPED, by, reason, now)


def close_on_schedule(engine: Engine, journey_id: str, at: datetime) -> bool:
    """Record that a live journey's schedule.end has come (the launcher wakes for it; `journey list` too)."""

    def change(session: Session) -> bool:
        row = session.get(JourneyStatus, journey_id)
        if row is None or row.state != LIVE or row.schedule_end is None or at < row.schedule_end:
            return False
        _record(session, row, journey_id, LIVE, CLOSED, SCHEDULE, CLOSED_BY_SCHEDULE, at)
        return True

    return _transaction(engine, change)


def finish(engine: Engine, journey_id: str, now: datetime) -> bool:
    """Record that a closed or stopped journey has nobody left running (`journey list` saw it first)."""

    def change(session: Session) -> bool:
        row = session.get(JourneyStatus, journey_id)
        if row is None or row.state not in (CLOSED, STOPPED):
            return False
        _record(session, row, journey_id, row.state, FINISHED, ENGINE, "nobody left running", now)
        return True

    return _transaction(engine, change)


def known(engine: Engine) -> dict[str, JourneyStatus | None]:
    """Every published journey id with its state row (None: published before states existed)."""
    with Session(engine) as session:
        ids = set(session.exec(select(JourneyVersion.journey_id).distinct()).all())
        rows = {row.journey_id: row for row in session.exec(select(JourneyStatus)).all()}
        for row in rows.values():
            session.expunge(row)
    return {journey_id: rows.get(journey_id) for journey_id in sorted(ids | set(rows))}


def unknown_message(engine: Engine, journey_id: str) -> str:
    """What to say about a journey id that was never published: the nearest published ids, and how to publish."""
    close_ids = difflib.get_close_matches(journey_id, list(known(engine)), n=3)
    hint = f" (did you mean {', '.join(repr(found) for found in close_ids)}?)" if close_ids else ""
    return (
        f"journey '{journey_id}' was never published{hint}: see `journey list` for the journeys there are, "
        "or publish it first with `journey publish FILE`"
    )


def as_lifecycle(journey_id: str, row: JourneyStatus | None, now: datetime) -> Lifecycle:
    return _lifecycle(row, now) if row is not None else Lifecycle(journey_id, LIVE, None, None, None, None, None)


def _end(engine: Engine, journey_id: str, to: str, by: str, reason: str | None, now: datetime) -> bool:
    def change(session: Session) -> bool:
        row = session.get(JourneyStatus, journey_id)
        if row is None:
            published = session.exec(select(JourneyVersion.version).where(JourneyVersion.journey_id == journey_id))
            if published.first() is None:
                raise JourneyStateError(unknown_message(engine, journey_id))
            _record(session, None, journey_id, LIVE, to, by, reason, now)
            return True
        if row.state == to or (to == STOPPED and row.state == FINISHED):
            return False
        if to == CLOSED and row.state in (STOPPED, FINISHED):
            raise JourneyStateError(f"journey '{journey_id}' is {row.state} already: it takes no new accounts")
        _record(session, row, journey_id, row.state, to, by, reason, now)
        return True

    return _transaction(engine, change)


def _record(
    session: Session,
    row: JourneyStatus | None,
    journey_id: str,
    before: str,
    after: str,
    by: str,
    reason: str | None,
    at: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """The change in the row and in the event log, in the caller's transaction. The log key is numbered by the
    row's change count, so two racing changes of one journey cannot both be written (the loser decides again)."""
    if row is None:
        row = JourneyStatus(journey_id=journey_id, state=after, changed_by=by, schedule_start=start, schedule_end=end)
        row.changes = 1
    else:
        row.state, row.changed_by, row.changes = after, by, row.changes + 1
    row.changed_at, row.reason = at, reason
    session.add(row)
    session.add(
        ActivityEvent(
            key=engine_key("journey_state", journey_id, row.changes),
            type=EVENT_TYPE,
            journey_id=journey_id,
            payload={"from": before, "to": after, "by": by, "reason": reason},
            occurred_at=at,
        )
    )


def _transaction(engine: Engine, change: Callable[[Session], T]) -> T:
    for attempt in range(ATTEMPTS):
        with Session(engine) as session:
            result = change(session)
            try:
                session.commit()
            except IntegrityError:  # another process changed the journey meanwhile: decide again on what it wrote
                session.rollback()
                if attempt == ATTEMPTS - 1:
                    raise
                continue
            return result
    raise AssertionError("unreachable")


def _lifecycle(row: JourneyStatus, now: datetime) -> Lifecycle:
    if row.state == LIVE and row.schedule_end is not None and now >= row.schedule_end:  # closed, not yet recorded
        return Lifecycle(
            row.journey_id, CLOSED, row.schedule_end, SCHEDULE, CLOSED_BY_SCHEDULE, row.schedule_start, row.schedule_end
        )
    return Lifecycle(
        row.journey_id, row.state, row.changed_at, row.changed_by, row.reason, row.schedule_start, row.schedule_end
    )


def _not_reopened(found: Lifecycle) -> str:
    how = f"by {found.changed_by}" + (f": {found.reason}" if found.reason else "")
    if found.changed_by is None or (found.state == CLOSED and found.changed_by == SCHEDULE):
        how = f"its schedule.end {_shown(found.schedule_end)} has passed" if found.schedule_end else how
    return (
        f"journey '{found.journey_id}' is {found.state} ({how}) and is not reopened: its accounts' history stays "
        "as it is. To run it again, publish it under a new journey id (change `journey:` in the file)"
    )


def _shown(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment is not None else ""
