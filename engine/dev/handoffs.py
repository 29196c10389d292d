"""The handoff demo of `journey dev`: a few accounts go through journeys/ai_seed_abm.yaml to the sales
handoff while you watch, whatever the hour.

They are started with the send window ignored (so the intro goes out now, not on Monday at 9), then each
gets a demo request and, one by one, new people for the roles its buying group misses, until the gate's
threshold is crossed and the account is handed to sales. Everything else runs as in production: the
same workflow, events recorded and signalled as `journey event` does, the same buying-group rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.buying_groups import RULE_SCOPE
from engine.context import account_data, person_data
from engine.db import Account, Person, utcnow
from engine.language.conditions import compile_condition
from engine.language.plan import Plan
from engine.runtime import events, publish, temporal
from engine.workflow.contracts import JourneySettings

JOURNEY = "ai-seed-abm"
DEMO_REQUEST_NODE, GATE_NODE, DEMO_FORM = "wait_demo", "gate", "demo-request"
ACCOUNTS = 3
STEP_TIMEOUT_SECONDS = 60.0

# People who might join an account's buying group, in the order they "arrive". Between them they fill
# every counted role of both role templates in journeys/buying_groups.yaml; one is only sent in when the
# first role their job would give them is still missing.
PERSONAS: tuple[dict[str, str], ...] = tuple(
    dict(zip(("first_name", "last_name", "job_title", "department"), person, strict=True))
    for person in (
        ("Dana", "Whitfield", "VP of Digital Agriculture", "Executive"),
        ("Ravi", "Menon", "Solutions Architect", "Engineering"),
        ("Greta", "Lindqvist", "Machine Learning Engineer", "Data"),
        ("Tomas", "Okafor", "Procurement Manager", "Procurement"),
        ("Ines", "Carvalho", "Senior Data Scientist", "Data"),
        ("Hugo", "Brandt", "Head of Research", "Research"),
        ("Aiko", "Mori", "Senior Agronomist", "Research"),
        ("Pablo", "Reyes", "Plant Breeder", "Research"),
        ("Nora", "Kessler", "Field Trial Manager", "Operations"),
    )
)


async def start(client: Client, engine: Engine, plan: Plan, count: int = ACCOUNTS) -> list[str]:
    """Start the first `count` accounts of the audience that may still enter, send window ignored.

    Called before the journey is published, so publishing finds them running and leaves them be. On a
    second `make run` they have entered already (re-entry: never) and the demo has nothing to start.
    """
    publish.store_version(engine, plan)
    to_start, _ = await asyncio.to_thread(publish.audience, engine, plan)
    started = []
    for account_id in to_start[:count]:
        if await publish.start_journey(client, engine, plan, account_id, JourneySettings(send_window_ignored=True)):
            started.append(account_id)
    return started


async def drive(
    client: Client, engine: Engine, plan: Plan, account_ids: list[str], say: Callable[[str], None] = print
) -> int:
    """Take each account to the handoff; says a line per step and returns how many were handed off."""
    results = await asyncio.gather(
        *(_drive_one(client, engine, plan, account_id, say) for account_id in account_ids), return_exceptions=True
    )
    for account_id, result in zip(account_ids, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            say(f"handoff demo: {account_id} failed: {result!r}")
    return sum(result is True for result in results)


async def _drive_one(client: Client, engine: Engine, plan: Plan, account_id: str, say: Callable[[str], None]) -> bool:
    handle = client.get_workflow_handle(temporal.workflow_id(plan.journey, account_id))
    prefix = f"handoff demo: {account_id}"
    if await _wait_for(handle, lambda state: state.get("position") == DEMO_REQUEST_NODE and state["listening"]) is None:
        say(f"{prefix} did not reach '{DEMO_REQUEST_NODE}' within {STEP_TIMEOUT_SECONDS:g} s; see the Temporal UI")
        return False
    await _event(client, engine, account_id, "form_fill", _first_email(engine, account_id), {"form": DEMO_FORM})
    say(f"{prefix} asked for a demo")
    arrived = 0
    for persona in PERSONAS:
        state = await _wait_for(handle, _at_gate_or_past)
        if state is None or state.get("position") != GATE_NODE:
            break  # past the gate (handed off), or stuck: the final check below says which
        group = state.get("buying_group") or {}
        if persona_role := _fills_missing_role(engine, plan, account_id, persona, group.get("missing_roles", [])):
            email = await _person_arrives(client, engine, account_id, persona, arrived)
            arrived += 1
            say(f"{prefix}: {email} joined ({persona['job_title']}, fills '{persona_role}')")
            await _wait_for(handle, _group_changed_from(group))
    if not await _finished(handle):
        say(f"{prefix} did not reach the handoff; `journey buying-group {account_id}` shows what it lacks")
        return False
    group = (await handle.query("state")).get("buying_group") or {}
    say(f"{prefix} handed to sales at {group.get('completeness', 0):.0f}% complete")
    return True


def _group_changed_from(before: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda state: state.get("buying_group") != before


def _at_gate_or_past(state: dict[str, Any]) -> bool:
    position = state.get("position")
    return bool(state["listening"]) if position == GATE_NODE else position != DEMO_REQUEST_NODE


async def _wait_for(handle: Any, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    """The account's state once `ready` holds (or the journey has ended); None after the step timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT_SECONDS
    while loop.time() < deadline:
        state: dict[str, Any] = await handle.query("state")
        if state and ready(state):
            return state
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return state
        await asyncio.sleep(0.1)
    return None


async def _finished(handle: Any) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT_SECONDS
    while loop.time() < deadline:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            return bool(status == WorkflowExecutionStatus.COMPLETED)
        await asyncio.sleep(0.1)
    return False


def _fills_missing_role(
    engine: Engine, plan: Plan, account_id: str, persona: dict[str, str], missing: list[str]
) -> str | None:
    """The role the rules would give this persona in the account, when the group is missing it."""
    assert plan.role_template is not None
    with Session(engine) as session:
        account = session.get(Account, account_id)
        assert account is not None
        account_values = account_data(account)
    values = person_data(Person(account_id=account_id, **cast(dict[str, Any], persona)))
    for role in plan.role_template.roles:
        if compile_condition(role.when, RULE_SCOPE).evaluate(person=values, account=account_values, now=utcnow()):
            return role.role if role.role in missing else None
    return None


async def _person_arrives(client: Client, engine: Engine, account_id: str, persona: dict[str, str], n: int) -> str:
    with Session(engine) as session:
        account = session.get(Account, account_id)
        domain = account.domain if account is not None else None
    email = f"{persona['first_name']}.{persona['last_name']}@{domain}".lower()
    await _event(client, engine, account_id, "person_added", email, dict(persona), suffix=str(n))
    return email


async def _event(
    client: Client,
    engine: Engine,
    account_id: str,
    type_: str,
    email: str | None,
    payload: dict[str, Any],
    suffix: str = "",
) -> None:
    event_id = f"dev-handoff-demo-{account_id}-{type_}{suffix}"
    recorded = await asyncio.to_thread(events.record, engine, type_, account_id, email, payload, event_id)
    if recorded.status == "accepted":
        await events.deliver(client, engine, recorded.event)


def _first_email(engine: Engine, account_id: str) -> str | None:
    with Session(engine) as session:
        return session.exec(
            select(Person.email).where(Person.account_id == account_id, Person.email != None).order_by(col(Person.id))  # noqa: E711
        ).first()
