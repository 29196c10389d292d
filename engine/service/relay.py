"""The events relay: stored events that no journey has heard of yet become signals, then are marked delivered.

`journey serve` answers a sender only after the event is committed; this loop does the rest. It reads
undelivered events oldest first, signals each to the account's running journeys (in order within an
account, accounts side by side), and marks them delivered. While Temporal or its connection is down it
backs off (0.2 s doubling to 30 s) and the events wait in the database. A crash between the signal and
the mark sends the signal again on restart; the journey workflow drops an event id it has already seen.

Several relays may share one PostgreSQL database: each round a relay claims up to CLAIMED accounts with
session advisory locks and delivers only their events, so an account's events go out from one relay at a
time, in order, each once; the locks are released after the events are marked. On SQLite (one machine) a
single relay runs and claims nothing.

One bad row never stops the others: an event that cannot be turned into a signal, or that Temporal refuses
for itself (not because it is down), is parked with its reason (status 'parked', counted in /metrics, shown
by /healthz and `journey parked`) and the relay goes on. Any other failure of a round is logged and retried
with the same back-off; the loop itself never ends before `stop`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import func, or_, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.context import person_data
from engine.db import ActivityEvent, JourneyAccount, Person, utcnow
from engine.runtime import events
from engine.service.metrics import Metrics
from engine.workflow.contracts import JourneyEvent

log = structlog.get_logger("relay")

BATCH = 500
CONCURRENT_ACCOUNTS = 64
IDLE_SECONDS = 1.0
FIRST_BACKOFF, MAX_BACKOFF = 0.2, 30.0
PARKED = "parked"
CLAIMED = 64  # accounts a relay takes per round when relays share a database
_LOCK_SPACE = 7246  # the first key of the relay's advisory locks, apart from other users of the database
# What Temporal answers when it is down or overloaded: the round is retried. Any other refusal of a signal
# (a payload over the size limit, an invalid argument) is about that event, which is parked.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.UNAUTHENTICATED,
        RPCStatusCode.PERMISSION_DENIED,
    }
)


def _about_the_event(error: BaseException) -> bool:
    """True when retrying cannot help this event: it is parked instead of holding up the queue."""
    if isinstance(error, RPCError):
        return error.status not in _TRANSIENT
    return not isinstance(error, OSError | asyncio.TimeoutError) and not _is_connect_failure(error)


def _is_connect_failure(error: BaseException) -> bool:
    # The SDK reports a failed connection as a plain RuntimeError ("Failed client connect: ...").
    return type(error) is RuntimeError and "connect" in str(error).lower()


class TemporalLink:
    """One client, connected on first use and again after a failed connect; shared by relay and health."""

    def __init__(self, connect: Callable[[], Awaitable[Client]]) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client


def _pending(types: Sequence[str]) -> tuple[Any, ...]:
    """Rows to signal: recorded from outside the journeys, or a journey's own record marked `shared` (the account
    change its update_account or store_response made, which a wait_for_change in another journey listens for)."""
    return (
        col(ActivityEvent.delivered_at).is_(None),
        or_(col(ActivityEvent.journey_id).is_(None), col(ActivityEvent.shared).is_(True)),
        ActivityEvent.status == "matched",
        col(ActivityEvent.type).in_(types),
    )


def undelivered_count(engine: Engine, types: Sequence[str]) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(ActivityEvent).where(*_pending(types))).one())


def _as_event(row: ActivityEvent, person: Person | None) -> JourneyEvent:
    return JourneyEvent(
        type=row.type,
        event_id=row.key,
        account_id=row.account_id or "",
        email=row.email,
        person=person_data(person) if person is not None else None,
        payload=row.payload,
        occurred_at=_aware(row.occurred_at),  # SQLite gives naive datetimes back; they were stored in UTC
    )


class Relay:
    def __init__(
        self,
        engine: Engine,
        link: TemporalLink,
        types: Sequence[str],
        metrics: Metrics | None = None,
        max_backoff: float = MAX_BACKOFF,
        idle: float = IDLE_SECONDS,
        claimed: int = CLAIMED,
    ) -> None:
        self._engine = engine
        self._link = link
        self._types = list(types)
        self._metrics = metrics or Metrics()
        self._max_backoff = max_backoff
        self._idle = idle  # how often to look when nothing wakes it (another process stores the events)
        self.wake = asyncio.Event()
        self._shared = engine.dialect.name == "postgresql"
        self._claimed = claimed

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; never gives up, whatever a round runs into."""
        backoff = FIRST_BACKOFF
        while not stop.is_set():
            self.wake.clear()  # before reading: an event stored during this round wakes the next one at once
            try:
                delivered = await self.deliver_pending()
                backoff = FIRST_BACKOFF
            except Exception as error:  # the relay must outlive any failure; each is logged and counted
                self._metrics.relay_failures.inc()
                if isinstance(error, RPCError | OSError) or _is_connect_failure(error):
                    log.warning(
                        "relay: Temporal unreachable, events wait in the database", error=str(error), retry_in=backoff
                    )
                else:
                    log.exception("relay: round failed, events wait in the database", retry_in=backoff)
                await _sleep_or(stop, backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if delivered < BATCH:
                await _sleep_or(stop, self._idle, self.wake)

    async def deliver_pending(self) -> int:
        """One round: up to BATCH events delivered and marked; raises if Temporal could not be reached."""
        settled = await asyncio.to_thread(self._settle_outsiders)
        self._metrics.delivered.inc(settled)
        if not self._shared:
            return settled + await self._deliver(None)
        # The claims live as long as the connection holding them: one per round, closed in any case.
        claims = await asyncio.to_thread(self._engine.connect)
        try:
            claimed = await asyncio.to_thread(self._claim, claims)
            return settled + await self._deliver(claimed)
        finally:
            await asyncio.to_thread(_release, claims)

    async def _deliver(self, claimed: list[str] | None) -> int:
        rows, unreadable, authors = await asyncio.to_thread(self._read, claimed)
        await asyncio.to_thread(self._park, unreadable)
        if not rows:
            return len(unreadable)
        client = await self._link.client()
        accounts = {event.account_id for event, _ in rows}
        journeys = await asyncio.to_thread(events.journeys_of, self._engine, accounts)
        limit = asyncio.Semaphore(CONCURRENT_ACCOUNTS)
        done: list[tuple[str, datetime]] = []

        parked: list[tuple[str, str]] = []

        async def account_in_order(batch: list[tuple[JourneyEvent, datetime]]) -> None:
            async with limit:
                for event, recorded_at in batch:
                    try:
                        author = authors.get(event.event_id)
                        others = [journey for journey in journeys[event.account_id] if journey != author]
                        await events.signal_journeys(client, others, event)
                    except Exception as error:
                        if not _about_the_event(error):
                            raise
                        parked.append((event.event_id, _reason(error)))
                        continue
                    done.append((event.event_id, recorded_at))

        by_account = itertools.groupby(
            sorted(rows, key=lambda item: item[0].account_id), lambda item: item[0].account_id
        )
        outcomes = await asyncio.gather(
            *(account_in_order(list(batch)) for _, batch in by_account), return_exceptions=True
        )
        await asyncio.to_thread(events.mark_delivered, self._engine, [key for key, _ in done])
        await asyncio.to_thread(self._park, parked)
        now = utcnow()
        for _, recorded_at in done:
            self._metrics.delivery_lag.observe(max(0.0, (now - recorded_at).total_seconds()))
        self._metrics.delivered.inc(len(done))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return len(done)

    def _claim(self, claims: Connection) -> list[str]:
        """Accounts with pending events that no other relay holds now, oldest first, locked for this round."""
        claims = claims.execution_options(isolation_level="AUTOCOMMIT")
        first = func.min(ActivityEvent.id)
        waiting = (
            select(ActivityEvent.account_id)
            .where(*_pending(self._types))
            .group_by(col(ActivityEvent.account_id))
            .order_by(first)
            .limit(self._claimed * 4)
        )
        claimed = []
        for (account,) in claims.execute(waiting):
            locked = claims.execute(
                text("SELECT pg_try_advisory_lock(:space, hashtext(:account))"),
                {"space": _LOCK_SPACE, "account": account},
            ).scalar()
            if locked:
                claimed.append(account)
                if len(claimed) == self._claimed:
                    break
        return claimed

    def _settle_outsiders(self) -> int:
        """Events of accounts that were never started in a journey reach nobody: marked delivered in one
        statement. Safe against a journey starting meanwhile: its journey_account row is written before the
        workflow starts, so an event this skips arrived before that workflow existed (and would have found
        no workflow to signal)."""
        members = select(JourneyAccount.account_id)
        # Rows another relay is settling are skipped, not waited for: two relays never deadlock here.
        outsiders = (
            select(ActivityEvent.id)
            .where(*_pending(self._types), col(ActivityEvent.account_id).not_in(members))
            .with_for_update(skip_locked=True)
        )
        statement = update(ActivityEvent).where(col(ActivityEvent.id).in_(outsiders)).values(delivered_at=utcnow())
        with self._engine.begin() as connection:
            return int(connection.execute(statement).rowcount or 0)

    def _read(
        self, accounts: list[str] | None = None
    ) -> tuple[list[tuple[JourneyEvent, datetime]], list[tuple[str, str]], dict[str, str]]:
        """The next events to signal (of the claimed accounts only, when relays share the database), (key, reason)
        of rows that cannot become a signal at all, and the journey that wrote each of its own records among them."""
        with Session(self._engine) as session:
            query = select(ActivityEvent).where(*_pending(self._types))
            if accounts is not None:
                query = query.where(col(ActivityEvent.account_id).in_(accounts))
            query = query.order_by(col(ActivityEvent.id)).limit(BATCH)
            rows = session.exec(query).all()
            ids = {row.person_id for row in rows if row.person_id is not None}
            people = {p.id: p for p in session.exec(select(Person).where(col(Person.id).in_(ids))).all()} if ids else {}
            ready, unreadable = [], []
            for row in rows:
                try:
                    event = _as_event(row, people.get(row.person_id) if row.person_id else None)
                    event.model_dump_json()  # what the signal will carry: fail here, for this row alone
                except Exception as error:
                    unreadable.append((row.key, _reason(error)))
                    continue
                ready.append((event, _aware(row.recorded_at)))
            authors = {row.key: row.journey_id for row in rows if row.journey_id is not None}
            return ready, unreadable, authors

    def _park(self, parked: Sequence[tuple[str, str]]) -> None:
        """Take events out of the queue for good, each with why; they stay in the log for `journey parked`."""
        if not parked:
            return
        with self._engine.begin() as connection:
            for key, reason in parked:
                connection.execute(
                    update(ActivityEvent)
                    .where(col(ActivityEvent.key) == key)
                    .values(status=PARKED, reason=f"relay: {reason}"[:500])
                )
        self._metrics.parked.inc(len(parked))
        for key, reason in parked:
            log.error("relay: event parked, the others go on", event_id=key, reason=reason)


def _release(claims: Connection) -> None:
    """Let other relays take this round's accounts; the connection goes back to the pool without a lock."""
    try:
        claims.execute(text("SELECT pg_advisory_unlock_all()"))
        claims.commit()
    finally:
        claims.close()


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:400]


def parked_events(engine: Engine, limit: int = 1000) -> list[ActivityEvent]:
    """Events the relay set aside, newest first (`journey parked`, /healthz)."""
    with Session(engine) as session:
        query = select(ActivityEvent).where(ActivityEvent.status == PARKED)
        return list(session.exec(query.order_by(col(ActivityEvent.id).desc()).limit(limit)).all())


def parked_count(engine: Engine) -> int:
    with Session(engine) as session:
        statement = select(func.count()).select_from(ActivityEvent).where(ActivityEvent.status == PARKED)
        return int(session.exec(statement).one())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _sleep_or(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    """Sleep, cut short by `stop` or `wake`."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
