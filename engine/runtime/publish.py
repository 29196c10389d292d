"""Publishing a journey: store its version, evaluate the audience, start one workflow per new account.

Idempotent: publishing twice starts nobody twice (a running workflow id is refused by Temporal, and
re-entry is decided from the event log's `journey_entered` records).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.context import account_data
from engine.db import Account, ActivityEvent, JourneyAccount, JourneyVersion, engine_key, utcnow
from engine.language import conditions
from engine.language.plan import Plan
from engine.runtime import journey_state, temporal
from engine.workflow import details
from engine.workflow.contracts import JourneyInput, JourneySettings
from engine.workflow.launcher import LauncherInput

CONCURRENT_STARTS = 20
ENTRY_BATCH = 200  # journey_entered rows written together as starts complete
ENTRY_RECHECK = 1.0  # seconds between checks, during a launch, that the journey still takes entries


@dataclass
class PublishSummary:
    journey: str
    version: str
    in_audience: int = 0
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    excluded_by_reentry: list[str] = field(default_factory=list)
    not_open: str | None = None  # why nobody was started: the journey takes no entries now (journey_state.py)


def store_version(engine: Engine, plan: Plan) -> None:
    with Session(engine) as session:
        if session.get(JourneyVersion, (plan.journey, plan.version)) is None:
            session.add(
                JourneyVersion(
                    journey_id=plan.journey,
                    version=plan.version,
                    name=plan.name,
                    source=plan.source,
                    plan=plan.model_dump(mode="json"),
                )
            )
            session.commit()


def latest_version(engine: Engine, journey_id: str) -> Plan | None:
    with Session(engine) as session:
        row = session.exec(
            select(JourneyVersion)
            .where(JourneyVersion.journey_id == journey_id)
            .order_by(JourneyVersion.published_at.desc())  # type: ignore[attr-defined]
        ).first()
        return Plan.model_validate(row.plan) if row is not None else None


def audience(engine: Engine, plan: Plan, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """(accounts to start, accounts excluded by re-entry), evaluated against the database now."""
    now = now or utcnow()
    condition = conditions.compile_condition(plan.audience.accounts, conditions.Scope({"account": None}, "audience"))
    with Session(engine) as session:
        accounts = session.exec(select(Account).order_by(Account.id)).all()
        matching = [account.id for account in accounts if condition.evaluate(account=account_data(account), now=now)]
        last_entry = dict(
            session.exec(
                select(ActivityEvent.account_id, func.max(ActivityEvent.occurred_at))
                .where(ActivityEvent.journey_id == plan.journey, ActivityEvent.type == "journey_entered")
                .group_by(ActivityEvent.account_id)
            ).all()
        )
    after = plan.audience.reentry_after
    start, excluded = [], []
    for account_id in matching:
        entered = last_entry.get(account_id)
        if entered is not None and (after is None or _aware(entered) + after > now):
            excluded.append(account_id)
        else:
            start.append(account_id)
    return start, excluded


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything this project stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


async def publish(
    client: Client,
    engine: Engine,
    plan: Plan,
    settings: JourneySettings | None = None,
    task_queue: str = temporal.TASK_QUEUE,
    progress: Callable[[int], None] | None = None,
    by: str = "publish",
    now: datetime | None = None,
) -> PublishSummary:
    """Make the journey live (a closed, stopped or finished one is refused: journey_state.JourneyStateError), store
    the version, and start the journey for every account in its audience that may enter now."""
    moment = now or utcnow()
    await asyncio.to_thread(journey_state.make_live, engine, plan, by, moment)
    store_version(engine, plan)
    return await launch(client, engine, plan, settings, task_queue, progress, moment)


async def launch(
    client: Client,
    engine: Engine,
    plan: Plan,
    settings: JourneySettings | None = None,
    task_queue: str = temporal.TASK_QUEUE,
    progress: Callable[[int], None] | None = None,
    at: datetime | None = None,
) -> PublishSummary:
    """Start a stored version for every account in its audience that may enter at `at`, when the journey takes
    entries then (live, inside its schedule); otherwise start nobody and say why."""
    at = at or utcnow()
    refusal = await asyncio.to_thread(journey_state.entry_refusal, engine, plan.journey, at)
    if refusal is not None:
        return PublishSummary(plan.journey, plan.version, not_open=refusal)
    to_start, excluded = await asyncio.to_thread(audience, engine, plan, at)
    summary = PublishSummary(plan.journey, plan.version, len(to_start) + len(excluded), excluded_by_reentry=excluded)
    # The database work around the starts is done in bulk, so publishing goes at the server's start rate:
    # names and owners read at once, memberships written before any start (see JourneyAccount), entries
    # written in batches as the starts complete.
    shown = await asyncio.to_thread(_names_and_owners, engine, to_start)
    await asyncio.to_thread(_remember_members, engine, plan.journey, to_start)
    limit = asyncio.Semaphore(CONCURRENT_STARTS)
    entries: list[tuple[str, str]] = []
    gate = _EntryGate(engine, plan.journey, at)

    async def start_one(account_id: str) -> None:
        async with limit:
            if (refusal := await gate.refusal()) is not None:  # closed or stopped while this launch was under way
                summary.not_open = refusal
                if progress is not None:
                    progress(1)
                return
            name, owner = shown.get(account_id, (None, None))
            run = await _start(client, plan, account_id, settings or JourneySettings(), task_queue, name, owner)
            (summary.started if run else summary.already_running).append(account_id)
            if run:
                entries.append((account_id, run))
            if len(entries) >= ENTRY_BATCH:
                batch, entries[:] = list(entries), []
                await asyncio.to_thread(_record_entries, engine, plan, batch)
            if progress is not None:
                progress(1)

    await asyncio.gather(*(start_one(account_id) for account_id in to_start))
    await asyncio.to_thread(_record_entries, engine, plan, entries)
    summary.started.sort()
    summary.already_running.sort()
    return summary


async def start_journey(
    client: Client,
    engine: Engine,
    plan: Plan,
    account_id: str,
    settings: JourneySettings | None = None,
    task_queue: str = temporal.TASK_QUEUE,
) -> bool:
    """Start one account; False when its journey is already running."""
    name, owner = (await asyncio.to_thread(_names_and_owners, engine, [account_id])).get(account_id, (None, None))
    await asyncio.to_thread(_remember_members, engine, plan.journey, [account_id])  # before: see JourneyAccount
    run = await _start(client, plan, account_id, settings or JourneySettings(), task_queue, name, owner)
    if run is None:
        return False
    await asyncio.to_thread(_record_entries, engine, plan, [(account_id, run)])
    return True


async def start_for_journey(
    client: Client,
    engine: Engine,
    plan: Plan,
    account_id: str,
    settings: JourneySettings,
    task_queue: str,
    memo: dict[str, Any],
) -> str | None:
    """Start one account on behalf of another journey (add_to_journey): as start_journey, with a memo by which a
    retried attempt recognises the run as its own. '<workflow id>/<run id>', or None when already running; the
    entry row is the caller's to write (it says who added the account)."""
    name, owner = (await asyncio.to_thread(_names_and_owners, engine, [account_id])).get(account_id, (None, None))
    await asyncio.to_thread(_remember_members, engine, plan.journey, [account_id])  # before: see JourneyAccount
    return await _start(client, plan, account_id, settings, task_queue, name, owner, memo)


async def _start(
    client: Client,
    plan: Plan,
    account_id: str,
    settings: JourneySettings,
    task_queue: str,
    name: str | None,
    owner: str | None,
    memo: dict[str, Any] | None = None,
) -> str | None:
    """The started run as '<workflow id>/<run id>', or None when the account's journey is already running."""
    workflow_id = temporal.workflow_id(plan.journey, account_id)
    try:
        handle = await client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id=account_id, settings=settings),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            search_attributes=details.start_attributes(plan, account_id, name, datetime.now(UTC)),
            static_summary=details.static_summary(plan, name, account_id),
            static_details=details.static_details(plan, account_id, owner),
            memo=memo,
        )
    except WorkflowAlreadyStartedError:
        return None
    return f"{workflow_id}/{handle.result_run_id}"


async def start_launcher(
    client: Client, plan: Plan, task_queue: str = temporal.TASK_QUEUE, now: datetime | None = None
) -> WorkflowHandle[Any, Any] | None:
    """Start the journey's launcher when it has a `refresh` cron or a schedule still to come; None when it needs
    none. A running refresh-only launcher is kept (it reads the latest version at each wake-up); a scheduled one is
    replaced, so a start or end moved earlier wakes it in time (a launcher interrupted mid-launch loses nothing:
    starts are idempotent)."""
    moment = now or utcnow()
    opens = plan.schedule.start if plan.schedule is not None else None
    closes = plan.schedule.end if plan.schedule is not None else None
    opens = opens if opens is not None and opens > moment else None
    closes = closes if closes is not None and closes > moment else None
    if plan.audience.refresh is None and opens is None and closes is None:
        return None
    scheduled = opens is not None or closes is not None
    refresh = f"audience refresh of {plan.name} ({plan.audience.refresh})"
    return await client.start_workflow(
        "JourneyLauncher",
        LauncherInput(journey_id=plan.journey, refresh=plan.audience.refresh, opens_at=opens, closes_at=closes),
        id=temporal.launcher_id(plan.journey),
        task_queue=task_queue,
        id_conflict_policy=(
            WorkflowIDConflictPolicy.TERMINATE_EXISTING if scheduled else WorkflowIDConflictPolicy.USE_EXISTING
        ),
        static_summary=refresh if plan.audience.refresh else f"entry schedule of {plan.name}",
    )


class _EntryGate:
    """Whether entry is still open, asked again at most once a second while a large audience starts: a journey
    closed or stopped meanwhile starts nobody more (the accounts already started keep running)."""

    def __init__(self, engine: Engine, journey_id: str, at: datetime) -> None:
        self.engine, self.journey_id, self.at = engine, journey_id, at
        self.began = self.checked = time.monotonic()
        self.answer: str | None = None
        self.lock = asyncio.Lock()

    async def refusal(self) -> str | None:
        async with self.lock:
            if self.answer is None and time.monotonic() - self.checked >= ENTRY_RECHECK:
                self.checked = time.monotonic()
                moment = self.at + timedelta(seconds=self.checked - self.began)
                self.answer = await asyncio.to_thread(journey_state.entry_refusal, self.engine, self.journey_id, moment)
            return self.answer


def _chunks(items: Sequence[str], size: int = 1000) -> list[Sequence[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _remember_members(engine: Engine, journey_id: str, account_ids: Sequence[str]) -> None:
    """The accounts' membership in the journey, written before their workflows start (see JourneyAccount)."""
    for chunk in _chunks(account_ids):
        with Session(engine) as session:
            query = select(JourneyAccount.account_id).where(
                JourneyAccount.journey_id == journey_id, col(JourneyAccount.account_id).in_(chunk)
            )
            known = set(session.exec(query).all())
            session.add_all(
                JourneyAccount(journey_id=journey_id, account_id=account) for account in chunk if account not in known
            )
            try:
                session.commit()
            except IntegrityError:  # a concurrent publish remembered some first: one by one, each once
                session.rollback()
                for account in chunk:
                    _remember_member(engine, journey_id, account)


def _remember_member(engine: Engine, journey_id: str, account_id: str) -> None:
    with Session(engine) as session:
        if session.get(JourneyAccount, (journey_id, account_id)) is not None:
            return
        session.add(JourneyAccount(journey_id=journey_id, account_id=account_id))
        try:
            session.commit()
        except IntegrityError:  # a concurrent start of the same account remembered it first
            session.rollback()


def _names_and_owners(engine: Engine, account_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """What the Temporal UI shows of each account (its name, its owner), read in bulk."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for chunk in _chunks(account_ids):
        with Session(engine) as session:
            query = select(Account.id, Account.name, Account.owner_email).where(col(Account.id).in_(chunk))
            found.update({account: (name, owner) for account, name, owner in session.exec(query).all()})
    return found


def _record_entries(engine: Engine, plan: Plan, entries: Sequence[tuple[str, str]]) -> None:
    """`journey_entered` rows of started runs ('<workflow id>/<run id>'), in one transaction."""
    if not entries:
        return
    with Session(engine) as session:
        session.add_all(
            ActivityEvent(
                key=engine_key(run, "entered"),
                type="journey_entered",
                account_id=account_id,
                journey_id=plan.journey,
                payload={"version": plan.version},
            )
            for account_id, run in entries
        )
        session.commit()
