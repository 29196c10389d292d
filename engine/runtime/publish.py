"""Publishing a journey: store its version, evaluate the audience, start one workflow per new account.

Idempotent: publishing twice starts nobody twice (a running workflow id is refused by Temporal, and
re-entry is decided from the event log's `journey_entered` records).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.context import account_data
from engine.db import Account, ActivityEvent, JourneyAccount, JourneyVersion, engine_key, utcnow
from engine.language import conditions
from engine.language.plan import Plan
from engine.runtime import temporal
from engine.workflow import details
from engine.workflow.contracts import JourneyInput, JourneySettings
from engine.workflow.launcher import LauncherInput

CONCURRENT_STARTS = 20


@dataclass
class PublishSummary:
    journey: str
    version: str
    in_audience: int = 0
    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    excluded_by_reentry: list[str] = field(default_factory=list)


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
) -> PublishSummary:
    """Store the version and start the journey for every account in its audience that may enter."""
    store_version(engine, plan)
    to_start, excluded = await asyncio.to_thread(audience, engine, plan)
    summary = PublishSummary(plan.journey, plan.version, len(to_start) + len(excluded), excluded_by_reentry=excluded)
    limit = asyncio.Semaphore(CONCURRENT_STARTS)

    async def start_one(account_id: str) -> None:
        async with limit:
            started = await start_journey(client, engine, plan, account_id, settings, task_queue)
            (summary.started if started else summary.already_running).append(account_id)
            if progress is not None:
                progress(1)

    await asyncio.gather(*(start_one(account_id) for account_id in to_start))
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
    workflow_id = temporal.workflow_id(plan.journey, account_id)
    name, owner = await asyncio.to_thread(_name_and_owner, engine, account_id)
    await asyncio.to_thread(_remember_member, engine, plan.journey, account_id)  # before: see JourneyAccount
    try:
        handle = await client.start_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id=account_id, settings=settings or JourneySettings()),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=details.static_summary(plan, name, account_id),
            static_details=details.static_details(plan, account_id, owner),
        )
    except WorkflowAlreadyStartedError:
        return False
    await asyncio.to_thread(_record_entry, engine, plan, account_id, f"{workflow_id}/{handle.result_run_id}")
    return True


async def start_launcher(client: Client, plan: Plan, task_queue: str = temporal.TASK_QUEUE) -> bool:
    """Start the journey's audience-refresh launcher when it has a `refresh` cron; a running one is kept
    (it reads the latest version at each wake-up)."""
    if plan.audience.refresh is None:
        return False
    await client.start_workflow(
        "JourneyLauncher",
        LauncherInput(journey_id=plan.journey, refresh=plan.audience.refresh),
        id=temporal.launcher_id(plan.journey),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"audience refresh of {plan.name} ({plan.audience.refresh})",
    )
    return True


def _remember_member(engine: Engine, journey_id: str, account_id: str) -> None:
    with Session(engine) as session:
        if session.get(JourneyAccount, (journey_id, account_id)) is not None:
            return
        session.add(JourneyAccount(journey_id=journey_id, account_id=account_id))
        try:
            session.commit()
        except IntegrityError:  # a concurrent start of the same account remembered it first
            session.rollback()


def _name_and_owner(engine: Engine, account_id: str) -> tuple[str | None, str | None]:
    with Session(engine) as session:
        account = session.get(Account, account_id)
        return (account.name, account.owner_email) if account is not None else (None, None)


def _record_entry(engine: Engine, plan: Plan, account_id: str, run: str) -> None:
    with Session(engine) as session:
        session.add(
            ActivityEvent(
                key=engine_key(run, "entered"),
                type="journey_entered",
                account_id=account_id,
                journey_id=plan.journey,
                payload={"version": plan.version},
            )
        )
        session.commit()
