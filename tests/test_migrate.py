"""Moving running accounts to a later version (`journey publish --migrate`): an account waiting at a node the new
version has goes on there, keeping its deadline, visits, seen events and emails sent; a node with no place in
the new version is refused, unless mapped; the move is logged; the histories replay."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, add_person, start, step_times, wait_for_state, write_journey
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.delivery import OutboxFileDelivery
from engine.db import ActivityEvent, OutboxMessage, utcnow
from engine.runtime import migrate, publish, temporal
from engine.runtime.workers import WORKFLOWS, running_worker
from engine.workflow.contracts import JourneyEvent, JourneyResult
from engine.workflow.migration_contracts import MigrateRequest, MigrateResult

V1 = """
- id: intro
  type: send_email
  to: all
  subject: "Hello"
  template: hello.html.j2
  next: nap
- id: nap
  type: wait
  duration: 10d
  next: done
- id: done
  type: end
"""
# v2: the same wait, then a follow-up the first version did not have.
V2 = V1.replace(
    "  next: done\n- id: done",
    "  next: follow_up\n- id: follow_up\n  type: send_email\n  to: all\n"
    '  subject: "Still there?"\n  template: hello.html.j2\n  next: done\n- id: done',
)
# v3: the wait renamed.
V3 = V2.replace("id: nap", "id: rest").replace("next: nap", "next: rest")
TEMPLATES = {"hello.html.j2": "<p>Hi {{ person.first_name }}</p>"}


def _versions(folder: Path, journey: str) -> tuple:  # type: ignore[type-arg]
    return tuple(
        write_journey(folder / name, body, start="intro", journey=journey, templates=TEMPLATES)
        for name, body in (("v1", V1), ("v2", V2), ("v3", V3))
    )


def _outbox(db: Engine, account: str) -> list[str]:
    with Session(db) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.account_id == account)).all()
        return sorted(row.node_id or "" for row in rows)


async def test_a_waiting_account_moves_keeping_its_deadline_and_what_it_did(
    time_env: WorkflowEnvironment, db: Engine, worker: str, tmp_path: Path
) -> None:
    v1, v2, v3 = _versions(tmp_path, "migrating")
    add_account(db, "acme-corp")
    add_person(db, "acme-corp", "ann@acme-corp.example", first_name="Ann")
    handle = await start(time_env.client, v1, worker)
    await wait_for_state(handle, lambda state: state["position"] == "nap")
    seen = JourneyEvent(type="web_visit", event_id="seen-1", account_id="acme-corp", payload={}, occurred_at=utcnow())
    await handle.signal("event", seen)

    # A version without the node the account waits at is refused, saying how to map it.
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("migrate", MigrateRequest(plan=v3, by="ops"), result_type=MigrateResult)
    assert "no node 'nap'" in str(refused.value.cause) and "--map nap=" in str(refused.value.cause)
    # The same version is refused too; and a node mapped to another type.
    with pytest.raises(WorkflowUpdateFailedError) as same:
        await handle.execute_update("migrate", MigrateRequest(plan=v1, by="ops"), result_type=MigrateResult)
    assert "already runs version" in str(same.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as typed:
        request = MigrateRequest(plan=v3, node_map={"nap": "follow_up"}, by="ops")
        await handle.execute_update("migrate", request, result_type=MigrateResult)
    assert "is a send_email" in str(typed.value.cause)

    await time_env.sleep(timedelta(days=3))  # three days into its ten-day wait
    moved = await handle.execute_update(
        "migrate", MigrateRequest(plan=v2, by="ops", reason="add the follow-up"), id="m1", result_type=MigrateResult
    )
    assert (moved.outcome, moved.from_node, moved.to_node) == ("moved", "nap", "nap")
    assert (moved.from_version, moved.to_version) == (v1.version, v2.version)
    state = await wait_for_state(handle, lambda state: state.get("position") == "nap")
    assert "seen-1" in state["seen_event_ids"] and state["visits"]["intro"] == 1 and state["emails_sent"] == 1

    result: JourneyResult = await handle.result()
    assert result.version == v2.version and result.ended_at == "done" and result.emails_sent == 2
    # The intro went once (not again in the new version), the follow-up of v2 once.
    assert _outbox(db, "acme-corp") == ["follow_up", "intro"]
    # The wait kept its deadline: 10 days from when the account entered it under v1, not 10 from the move.
    (entered,), (left,) = step_times(db, "nap", "node_entered"), step_times(db, "nap", "node_left")
    assert timedelta(days=10) <= left - entered < timedelta(days=10, seconds=5)
    with Session(db) as session:
        logged = session.exec(select(ActivityEvent).where(ActivityEvent.type == "operator_action")).all()
    assert [(row.payload["action"], row.payload["by"], row.payload["reason"]) for row in logged] == [
        ("migrate", "ops", "add the follow-up")
    ]
    assert logged[0].payload["to_version"] == v2.version
    assert logged[0].occurred_at - entered >= timedelta(days=3)  # it moved three days into the wait

    # Both runs replay: the one that asked to move, and the one that went on in v2.
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=time_env.client.data_converter, workflow_runner=temporal.sandbox_runner()
    )
    for run_id in (handle.first_execution_run_id, None):
        history: WorkflowHistory = await time_env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None


async def _journey_cli(dev_env: WorkflowEnvironment, db: Engine, *args: str) -> tuple[int, str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    env["TEMPORAL_ADDRESS"] = dev_env.client.service_client.config.target_host
    env["JOURNEY_DATABASE_URL"] = str(db.url)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "engine.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr


async def _parked_at(dev_env: WorkflowEnvironment, journey: str, version: str, count: int) -> None:
    """Visibility is eventually consistent: wait until `count` accounts show on `version`."""
    query = f'JourneyId = "{journey}" AND JourneyVersion = "{version}" AND JourneyNode = "nap"'
    query += ' AND ExecutionStatus = "Running"'
    for _ in range(300):
        if (await dev_env.client.count_workflows(query)).count == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} accounts never showed at 'nap' on version {version}")


async def test_publish_migrate_moves_the_waiting_accounts_with_a_map(
    dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path
) -> None:
    journey = f"moving-{uuid.uuid4().hex[:6]}"
    v1, _, v3 = _versions(tmp_path, journey)
    accounts = [f"a{n}-{journey}" for n in range(3)]
    for account in accounts:
        add_account(db, account)
        add_person(db, account, f"p@{account}.example", first_name="Pat")
    task_queue = temporal.TASK_QUEUE  # the CLI's journeys start on the default queue
    # As operators run it: the worker's client stores large payloads (the Plan) in the journey database, as the
    # CLI's does, so it reads the Plan the CLI's update carries.
    client = await temporal.connect(dev_env.client.service_client.config.target_host, engine=db)
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        await publish.publish(client, db, v1, task_queue=task_queue)
        await _parked_at(dev_env, journey, v1.version, len(accounts))
        file = str(tmp_path / "v3" / f"{journey}.yaml")

        # Without a map the renamed wait has no place in v3: nobody would move, and the plan says what to do.
        plan = await migrate.plan_moves(dev_env.client, db, v3, {})
        assert [(group.node, group.target, len(group.accounts)) for group in plan.groups] == [("nap", None, 3)]
        assert "--map nap=NEW_NODE" in (plan.groups[0].why_not or "")

        # The dry run prints the per-node plan and neither publishes nor moves anyone.
        code, output, errors = await _journey_cli(
            dev_env, db, "publish", file, "--migrate", "--map", "nap=rest", "--dry-run"
        )
        assert code == 0, errors
        assert f"{v1.version} 'nap': 3 account(s) -> 'rest'" in output and "nothing published" in output
        assert publish.latest_version(db, journey).version == v1.version  # type: ignore[union-attr]

        # A map to a node v3 lacks is a usage error.
        code, _, errors = await _journey_cli(dev_env, db, "publish", file, "--migrate", "--map", "nap=nowhere")
        assert code == 2 and "has no node 'nowhere'" in errors

        code, output, errors = await _journey_cli(
            dev_env, db, "publish", file, "--migrate", "--map", "nap=rest", "--by", "ops"
        )
        assert code == 0, errors
        assert f"moved 3 account(s) to version {v3.version}" in output
        for account in accounts:
            handle = dev_env.client.get_workflow_handle(temporal.workflow_id(journey, account))
            state = await handle.query("state")
            assert state["position"] == "rest" and state["visits"]["rest"] == 1
        # Run again: everyone is on v3 already, nothing to move.
        await _parked_at(dev_env, journey, v1.version, 0)
        again = await migrate.plan_moves(dev_env.client, db, v3, {"nap": "rest"})
        assert again.groups == []
        for account in accounts:
            await dev_env.client.get_workflow_handle(temporal.workflow_id(journey, account)).terminate("test over")
    with Session(db) as session:
        moves = session.exec(select(ActivityEvent).where(ActivityEvent.type == "operator_action")).all()
    assert sorted(row.account_id or "" for row in moves) == sorted(accounts)
    assert _outbox(db, accounts[0]) == ["intro"]  # the move sent nothing again
