"""Runs a scenario: the real JourneyWorkflow and activities on Temporal's time-skipping server, against a throw-away
database, with the mailer, external services and CRM simulated (engine/simulate/effects.py). Accounts enter as
`journey publish` starts them; each event is recorded and signalled as `journey serve` would, at its simulated time.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from logging import getLogger
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner

from engine.db import Account, Person
from engine.language.model import End, SalesHandoff
from engine.language.plan import Plan
from engine.runtime import events, publish, search_attributes, temporal
from engine.runtime.workers import running_worker
from engine.simulate.effects import CountingDelivery, SimulatedServices, offline_http
from engine.simulate.outcome import Outcome, read_outcome
from engine.simulate.sandbox import copy_database, sandbox_engine, seed
from engine.simulate.scenario import Scenario

ADVANCE_TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class Planned:
    """One event an account will send: the rule's index, when after entry, and from whom."""

    rule: int
    account: str
    after: timedelta
    email: str | None


@dataclass
class Simulation:
    outcome: Outcome
    audience: int  # accounts the journey's audience took in
    not_in_audience: list[str]
    emails_delivered: int  # messages handed to the (simulated) mailer, sales alerts and owner emails included
    service_calls: int
    seconds: float  # wall-clock time the simulation took


def planned_events(scenario: Scenario, started: list[str], senders: dict[str, str | None]) -> list[Planned]:
    """Which events happen: the same for the same seed, and adding accounts or later rules leaves an earlier rule's
    picks alone, because each (rule, account) draws from its own generator rather than from one shared stream."""
    planned = []
    for index, rule in enumerate(scenario.events):
        for account in started:
            if not rule.applies_to(account):
                continue
            if (
                rule.probability < 1
                and random.Random(f"{scenario.seed}/{index}/{account}").random() >= rule.probability
            ):
                continue
            planned.append(Planned(index, account, rule.after, rule.email or senders.get(account)))
    return sorted(planned, key=lambda item: (item.after, item.rule, item.account))


async def run(plan: Plan, scenario: Scenario, database_url: str | None = None) -> Simulation:
    """Simulate `scenario` through `plan`; `database_url` copies the accounts from that database (read only)."""
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="journey-simulate-") as folder:
        if database_url is not None:
            engine = await asyncio.to_thread(copy_database, database_url, Path(folder), plan)
        else:
            engine = await asyncio.to_thread(sandbox_engine, Path(folder))
            await asyncio.to_thread(seed, engine, plan, scenario.accounts)
        try:
            simulation = await _simulate(plan, scenario, engine)
        finally:
            engine.dispose()
    simulation.seconds = time.monotonic() - began
    return simulation


async def _simulate(plan: Plan, scenario: Scenario, engine: Engine) -> Simulation:
    delivery = CountingDelivery()
    services = SimulatedServices(scenario.services)
    http = offline_http()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal.test_server_path(),
        data_converter=pydantic_data_converter,
        runtime=quiet_runtime(),
    )
    try:
        await search_attributes.register(env.client)
        task_queue = f"simulate-{uuid.uuid4()}"
        async with running_worker(
            env.client,
            engine,
            delivery,
            task_queue,
            services=services,
            http=http,
            max_cached_workflows=12_000,
            # The sandbox guards running workflows against code changing under them; a simulation's workflows live
            # minutes in this process and are never replayed elsewhere, and they run cheaper without it
            # (../shared/design/temporal-notes.md measured 101 against 72 signals/s).
            workflow_runner=UnsandboxedWorkflowRunner(),
            # Named, so the SDK does not hash every loaded module to make one up (seconds of CPU at each start).
            build_id="journey-simulate",
        ):
            await advance(env, until_monday(await env.get_current_time()))
            summary = await publish.publish(env.client, engine, plan, task_queue=task_queue)
            started_at = await env.get_current_time()
            senders = await asyncio.to_thread(_first_addresses, engine, summary.started)
            planned = planned_events(scenario, summary.started, senders)
            sent, unmatched = await _send_events(env, engine, scenario, planned, started_at)
            remaining = started_at + scenario.duration - await env.get_current_time()
            if remaining > timedelta(0):
                await advance(env, remaining)
    finally:
        await http.aclose()
        await env.shutdown()
    handoff_nodes = {node.id for node in plan.nodes.values() if isinstance(node, SalesHandoff)}
    end_nodes = {node.id for node in plan.nodes.values() if isinstance(node, End)}
    outcome = await asyncio.to_thread(read_outcome, engine, plan.journey, handoff_nodes, end_nodes)
    outcome.events_sent, outcome.events_unmatched = sent, unmatched
    with Session(engine) as session:
        every = list(session.exec(select(Account.id)).all())
    return Simulation(
        outcome=outcome,
        audience=len(summary.started),
        not_in_audience=sorted(set(every) - set(summary.started)),
        emails_delivered=delivery.delivered,
        service_calls=services.calls,
        seconds=0.0,
    )


async def _send_events(
    env: WorkflowEnvironment, engine: Engine, scenario: Scenario, planned: list[Planned], started_at: datetime
) -> tuple[int, int]:
    """Advance the server's clock to each moment an event is due, then record and signal that moment's events."""
    by_moment: dict[timedelta, list[Planned]] = defaultdict(list)
    for item in planned:
        by_moment[item.after].append(item)
    sent = unmatched = 0
    for after, batch in sorted(by_moment.items()):
        wait = started_at + after - await env.get_current_time()
        if wait > timedelta(0):
            await advance(env, wait)
        now = await env.get_current_time()
        incoming = [
            events.Incoming(
                type=scenario.events[item.rule].type,
                account_id=item.account,
                email=item.email,
                payload=dict(scenario.events[item.rule].payload),
                event_id=f"simulate/{item.rule}/{item.account}",
                occurred_at=now,
            )
            for item in batch
        ]
        recorded = await asyncio.to_thread(events.record_many, engine, incoming)
        accepted = [item.event for item in recorded if item.status == "accepted"]
        unmatched += len(recorded) - len(accepted)
        journeys = await asyncio.to_thread(events.journeys_of, engine, {event.account_id for event in accepted})
        await asyncio.gather(
            *(events.signal_journeys(env.client, journeys.get(event.account_id, []), event) for event in accepted)
        )
        await asyncio.to_thread(events.mark_delivered, engine, [event.event_id for event in accepted])
        sent += len(accepted)
    return sent, unmatched


@cache
def quiet_runtime() -> Runtime:
    """The SDK's core writes its own log lines to stdout, where `--json` goes: they are sent to Python's logging
    (stderr) instead, errors only, since the time-skipping server makes the core warn about a missing capability
    on every worker start."""
    logging = LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=getLogger("temporalio.core")),
    )
    return Runtime(telemetry=TelemetryConfig(logging=logging))


def until_monday(now: datetime) -> timedelta:
    """The time to the next Monday 00:00 UTC: every simulation starts then, so send windows and cron waits fall the
    same way whatever day it is run on."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=7 - midnight.weekday()) - now


async def advance(env: WorkflowEnvironment, delta: timedelta) -> None:
    """Let the server's clock run `delta` ahead, firing every timer on the way and waiting for the work each one
    starts. `env.sleep` does the same under the client's default RPC deadline, which hundreds of busy accounts
    outlast; a simulation's own bound is the scenario's (accounts, events, duration)."""
    request = SleepRequest()
    request.duration.FromTimedelta(delta)
    await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=ADVANCE_TIMEOUT)


def _first_addresses(engine: Engine, accounts: list[str]) -> dict[str, str | None]:
    """Each account's first person with an address: who sends an event whose rule names nobody."""
    found: dict[str, str | None] = dict.fromkeys(accounts)
    with Session(engine) as session:
        rows = session.exec(
            select(Person.account_id, Person.email)
            .where(col(Person.email).is_not(None))
            .order_by(col(Person.account_id), col(Person.id))
        ).all()
    for account, email in rows:
        if account in found and found[account] is None:
            found[account] = email
    return found
