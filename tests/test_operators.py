"""Operators on the dev server from the wheel: accounts parked at different nodes are found by each search
attribute, `journey stuck` agrees, and skip / pause / resume / cancel move them as asked, are logged with
who and why, refuse what makes no sense, and replay."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import WAIT_FOR_DEMO, add_account, add_person, start, wait_for_state, write_journey
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.accounts import AccountActivities
from activities.delivery import OutboxFileDelivery
from engine.db import ActivityEvent, utcnow
from engine.language.plan import Plan
from engine.runtime import operators, publish, search_attributes, temporal
from engine.runtime.workers import WORKFLOWS, running_worker
from engine.workflow import visibility
from engine.workflow.contracts import JourneyEvent, JourneyResult, OperatorRequest, OperatorResult

BUYING_GROUPS = """\
role_templates:
  - id: duo
    roles:
      - role: decision_maker
        weight: vital
        when: "person.job_title is matching('(?i)\\\\bceo\\\\b')"
      - role: influencer
        weight: normal
        when: "'engineer' in person.job_title | lower"
solution_interests:
  - id: ai-seeds
    name: AI-based seeds
    role_template: duo
"""

NODES = """
- id: route
  type: split
  paths:
    - when: "account.industry == 'Forms'"
      next: wait_form
    - when: "account.industry == 'Naps'"
      next: nap
  otherwise: gate
- id: wait_form
  type: wait_for_event
  event: form_fill
  where: "event.form == 'demo-request'"
  timeout: 30d
  on_event: thanks
  on_timeout: nap
- id: thanks
  type: wait
  duration: 20d
  next: done
- id: nap
  type: wait
  duration: 10d
  next: done
- id: gate
  type: wait_for_completeness
  threshold: 100
  timeout: 30d
  on_complete: done
  on_timeout: done
- id: done
  type: end
"""

# account -> (industry, the node it parks at)
PARKED = {"f1": ("Forms", "wait_form"), "f2": ("Forms", "wait_form"), "n1": ("Naps", "nap")}
PARKED |= {"g1": ("Labs", "gate"), "g2": ("Labs", "gate")}


@pytest.fixture
async def drill(dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> AsyncIterator[tuple[Client, Plan, str]]:
    """Five accounts of a journey of this test's own, each parked where PARKED says."""
    suffix = uuid.uuid4().hex[:6]
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    plan = write_journey(
        tmp_path, NODES, start="route", journey=f"drill-{suffix}", header_extra="solution_interest: ai-seeds\n"
    )
    for account, (industry, _) in PARKED.items():
        add_account(db, f"{account}-{suffix}", name=f"Account {account.upper()}", industry=industry)
    add_person(db, f"g1-{suffix}", f"ceo@g1-{suffix}.example", job_title="CEO")
    task_queue = f"ops-{suffix}"
    client = dev_env.client
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        summary = await publish.publish(client, db, plan, task_queue=task_queue)
        assert len(summary.started) == len(PARKED)
        await _until_parked(client, plan, suffix)
        try:
            yield client, plan, suffix
        finally:
            for parked in await operators.find(client, operators.stuck_query(plan.journey)):
                await client.get_workflow_handle(parked.workflow_id).terminate("test over")


async def _until_parked(client: Client, plan: Plan, suffix: str) -> None:
    """Visibility is eventually consistent: wait until every account shows at its node, waiting."""
    expected = {f"{account}-{suffix}": node for account, (_, node) in PARKED.items()}
    for _ in range(200):
        found = await operators.find(client, operators.stuck_query(plan.journey))
        seen = {p.account: p.node for p in found if p.waiting_for != visibility.WORKING}
        if seen == expected and all(p.completeness is not None for p in found if p.node == "gate"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"accounts did not park as expected: {seen}")


async def _accounts(client: Client, query: str) -> set[str]:
    return {str(parked.account) for parked in await operators.find(client, query)}


async def _journey_cli(client: Client, *args: str, as_json: bool = True) -> tuple[int, Any, str]:
    """The real CLI in a subprocess (asynchronously: this process's worker must answer its queries)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env["TEMPORAL_ADDRESS"] = client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *args, *(["--json"] if as_json else []), env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    output = json.loads(stdout) if as_json and stdout.strip() else stdout.decode()
    return process.returncode, output, stderr.decode()


async def test_visibility_queries_find_parked_accounts(drill: tuple[Client, Plan, str]) -> None:
    client, plan, s = drill
    journey = f'JourneyId = "{plan.journey}"'
    everyone = {f"{account}-{s}" for account in PARKED}
    assert await _accounts(client, journey) == everyone
    assert await _accounts(client, f'{journey} AND JourneyVersion = "{plan.version}"') == everyone
    assert await _accounts(client, f'{journey} AND JourneyNode = "wait_form"') == {f"f1-{s}", f"f2-{s}"}
    assert await _accounts(client, f'{journey} AND JourneyNodeType = "wait"') == {f"n1-{s}"}
    assert await _accounts(client, f'{journey} AND JourneyWaitingFor = "event form_fill"') == {f"f1-{s}", f"f2-{s}"}
    assert await _accounts(client, f'{journey} AND JourneyWaitingFor = "timer"') == {f"n1-{s}"}
    assert await _accounts(client, f'{journey} AND JourneyWaitingFor = "completeness"') == {f"g1-{s}", f"g2-{s}"}
    assert await _accounts(client, f'{journey} AND AccountId = "n1-{s}"') == {f"n1-{s}"}
    assert await _accounts(client, f'{journey} AND AccountName = "Account G2"') == {f"g2-{s}"}
    # The split read every account's group: g1 has its CEO (decision maker, 1 of 2 roles), 50%; others 0%.
    assert await _accounts(client, f"{journey} AND BuyingGroupCompleteness >= 50") == {f"g1-{s}"}
    assert await _accounts(client, f"{journey} AND BuyingGroupCompleteness < 50") == everyone - {f"g1-{s}"}
    recently = (utcnow() - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await _accounts(client, f'{journey} AND JourneyNodeSince > "{recently}"') == everyone
    assert await _accounts(client, f'{journey} AND JourneyNodeSince < "{recently}"') == set()

    code, stuck, _ = await _journey_cli(client, "stuck", "--journey", plan.journey, "--node", "wait_form")
    assert code == 0
    assert {row["account"] for row in stuck["accounts"]} == {f"f1-{s}", f"f2-{s}"}
    assert 'JourneyNode = "wait_form"' in stuck["query"]
    assert {row["waiting_for"] for row in stuck["accounts"]} == {"event form_fill"}
    code, stuck, _ = await _journey_cli(client, "stuck", "--journey", plan.journey, "--waiting-for", "completeness")
    assert [row["account"] for row in stuck["accounts"]] and {row["account"] for row in stuck["accounts"]} == {
        f"g1-{s}",
        f"g2-{s}",
    }
    code, stuck, _ = await _journey_cli(client, "stuck", "--journey", plan.journey, "--older-than", "1d")
    assert code == 0 and stuck["accounts"] == []

    code, status, _ = await _journey_cli(client, "status", f"g1-{s}")
    assert code == 0
    [row] = status
    assert row["node"] == "gate" and row["completeness"] == 50 and row["missing_roles"] == ["influencer"]
    assert row["path"] == ["route"] and row["account_name"] == "Account G1"


def _log(db: Engine, account: str) -> list[dict[str, Any]]:
    with Session(db) as session:
        rows = session.exec(
            select(ActivityEvent).where(ActivityEvent.account_id == account, ActivityEvent.type == "operator_action")
        ).all()
        return [{"node": row.node_id, **row.payload} for row in rows]


def _branches(db: Engine, account: str) -> list[tuple[str | None, str | None]]:
    with Session(db) as session:
        rows = session.exec(
            select(ActivityEvent)
            .where(ActivityEvent.account_id == account, ActivityEvent.type == "node_left")
            .order_by(ActivityEvent.id)  # type: ignore[arg-type]
        ).all()
        return [(row.node_id, row.payload.get("branch")) for row in rows]


async def _position(client: Client, plan: Plan, account: str) -> dict[str, Any]:
    state: dict[str, Any] = await client.get_workflow_handle(temporal.workflow_id(plan.journey, account)).query("state")
    return state


async def _wait_position(client: Client, plan: Plan, account: str, node: str) -> dict[str, Any]:
    for _ in range(100):
        state = await _position(client, plan, account)
        if state["position"] == node:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{account} is at {state['position']}, not {node}")


async def test_operator_actions(drill: tuple[Client, Plan, str], db: Engine) -> None:
    client, plan, s = drill
    wid = lambda account: temporal.workflow_id(plan.journey, f"{account}-{s}")  # noqa: E731
    ops = OperatorRequest(by="ops@example.com", reason="customer asked")

    # Refusals say why and change nothing.
    [refused] = await operators.act(client, "skip", [wid("f1")], ops.model_copy(update={"to": "nowhere"}))
    assert not refused.ok and "has no node 'nowhere'" in refused.message
    [refused] = await operators.act(client, "skip", [wid("f1")], ops)
    assert not refused.ok and "either a node to move to or the timeout path" in refused.message
    [refused] = await operators.act(client, "resume", [wid("f1")], ops)
    assert not refused.ok and "not paused" in refused.message
    [refused] = await operators.act(client, "cancel", [wid("f1")], ops.model_copy(update={"reason": " "}))
    assert not refused.ok and "reason is required" in refused.message
    assert _log(db, f"f1-{s}") == []

    # Skip to a named node; skip along the timeout path.
    [done] = await operators.act(client, "skip", [wid("f1")], ops.model_copy(update={"to": "gate"}))
    assert done.ok and done.message == f"f1-{s} moves from 'wait_form' to 'gate' (by ops@example.com: customer asked)"
    await _wait_position(client, plan, f"f1-{s}", "gate")
    [done] = await operators.act(client, "skip", [wid("f2")], ops.model_copy(update={"timeout": True}))
    assert done.ok
    await _wait_position(client, plan, f"f2-{s}", "nap")
    assert ("wait_form", "operator_skip") in _branches(db, f"f1-{s}")
    assert ("wait_form", "on_timeout") in _branches(db, f"f2-{s}")
    [entry] = _log(db, f"f1-{s}")
    assert entry == {
        "node": "wait_form",
        "action": "skip",
        "by": "ops@example.com",
        "reason": "customer asked",
        "to": "gate",
        "branch": "operator_skip",
    }

    # Pause: a matching form fill arrives but the account stays; resume lets it take the event's path.
    [paused] = await operators.act(client, "pause", [wid("f2")], ops)
    assert paused.ok
    [refused] = await operators.act(client, "pause", [wid("f2")], ops)
    assert not refused.ok and "already paused" in refused.message
    await operators.act(client, "skip", [wid("f2")], ops.model_copy(update={"to": "wait_form"}))
    state = await _wait_position(client, plan, f"f2-{s}", "wait_form")
    assert state["paused"] == "ops@example.com: customer asked"
    form = JourneyEvent(
        type="form_fill",
        event_id=f"form-{s}",
        account_id=f"f2-{s}",
        payload={"form": "demo-request"},
        occurred_at=utcnow(),
    )
    await client.get_workflow_handle(wid("f2")).signal("event", form)
    # An update answered after the signal means the workflow has taken the signal in; held, the account
    # keeps the form fill in its inbox instead of consuming it (no sleeping and hoping).
    [refused] = await operators.act(client, "pause", [wid("f2")], ops)
    assert not refused.ok and "already paused" in refused.message
    state = await _position(client, plan, f"f2-{s}")
    assert state["position"] == "wait_form" and [event["event_id"] for event in state["inbox"]] == [f"form-{s}"]
    found = await operators.find(client, operators.stuck_query(plan.journey, waiting_for="paused", account=f"f2-{s}"))
    for _ in range(50):
        if found:
            break
        await asyncio.sleep(0.1)
        found = await operators.find(
            client, operators.stuck_query(plan.journey, waiting_for="paused", account=f"f2-{s}")
        )
    assert [parked.account for parked in found] == [f"f2-{s}"]
    [resumed] = await operators.act(client, "resume", [wid("f2")], ops)
    assert resumed.ok
    await _wait_position(client, plan, f"f2-{s}", "thanks")
    assert [entry["action"] for entry in _log(db, f"f2-{s}")] == ["skip", "pause", "skip", "resume"]

    # Bulk by node, through the CLI: cancel every account still at the gate.
    code, outcomes, _ = await _journey_cli(
        client, "cancel", "--journey", plan.journey, "--node", "gate", "--reason", "duplicate accounts", "--by", "ops"
    )
    assert code == 0
    assert sorted(outcome["workflow_id"] for outcome in outcomes) == sorted([wid("f1"), wid("g1"), wid("g2")])
    result = await client.get_workflow_handle(wid("g1"), result_type=JourneyResult).result()
    assert result.ended_at == "cancelled by ops: duplicate accounts"
    code, outcomes, _ = await _journey_cli(client, "pause", f"g1-{s}", "--journey", plan.journey)
    assert code == 1 and not outcomes[0]["ok"]

    # Every history with operator actions in it replays.
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=temporal.sandbox_runner()
    )
    for account in ("f1", "f2", "g1"):
        history: WorkflowHistory = await client.get_workflow_handle(wid(account)).fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, account


async def test_setup_search_attributes_on_a_bare_server(tmp_path: Path) -> None:
    """A namespace without the attributes: publish refuses and says what to run; setup defines them once."""
    (tmp_path / "buying_groups.yaml").write_text(BUYING_GROUPS)
    write_journey(tmp_path, NODES, start="route", journey="drill", header_extra="solution_interest: ai-seeds\n")
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal.dev_server_path(), dev_server_extra_args=["--log-level", "error"]
    ) as bare:
        code, _, stderr = await _journey_cli(bare.client, "publish", str(tmp_path / "drill.yaml"))
        assert code == 1
        assert "lacks the search attributes JourneyId, JourneyVersion, AccountId" in stderr
        assert "run `journey setup search-attributes`" in stderr
        code, said, _ = await _journey_cli(bare.client, "setup", "search-attributes", as_json=False)
        assert code == 0 and said.startswith("defined: ")
        assert await search_attributes.missing(bare.client) == []
        code, said, _ = await _journey_cli(bare.client, "setup", "search-attributes", as_json=False)
        assert code == 0 and "already defined" in said


async def test_cancel_answers_before_the_run_ends(
    dev_env: WorkflowEnvironment,
    db: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel's update handler finishes (and answers) before the workflow returns: no TMPRL1102 'finished
    while update handlers are still running' (issue 13: seen in ~3 of 7 cancels before). The operator's log
    is made slow here, so the run would always end first without the wait."""
    write_once = AccountActivities._write_once

    def slow_operator_log(self: AccountActivities, event: ActivityEvent) -> None:
        if event.type == "operator_action":
            time.sleep(1)
        write_once(self, event)

    monkeypatch.setattr(AccountActivities, "_write_once", slow_operator_log)
    suffix = uuid.uuid4().hex[:6]
    plan = write_journey(tmp_path, WAIT_FOR_DEMO, start="wait_demo", journey=f"cancel-{suffix}")
    accounts = [f"cancel-{n}-{suffix}" for n in range(6)]
    for account in accounts:
        add_account(db, account)
    task_queue = f"cancel-{suffix}"
    client = dev_env.client
    request = OperatorRequest(by="ops", reason="duplicate account")
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        handles = [await start(client, plan, task_queue, account) for account in accounts]
        for handle in handles:
            await wait_for_state(handle, lambda state: state.get("listening") is True)
        answers = await asyncio.gather(
            *(handle.execute_update("cancel", request, result_type=OperatorResult) for handle in handles)
        )
        results = await asyncio.wait_for(asyncio.gather(*(handle.result() for handle in handles)), 30)
    assert [answer.action for answer in answers] == ["cancel"] * len(accounts)
    assert {result.ended_at for result in results} == {"cancelled by ops: duplicate account"}
    # Under test the SDK's TMPRL1102 warning is an error, failing the workflow task: no task may have failed.
    for handle in handles:
        history = await handle.fetch_history()
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        assert not failed, failed[0].workflow_task_failed_event_attributes.failure.message
