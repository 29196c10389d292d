"""How many running accounts a new version touches, counted by Temporal visibility, and `journey diff` /
`journey publish` printing it. On the dev server: the time-skipping test server has no visibility counts
(CountWorkflowExecutions is unimplemented there)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from support import add_account, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.language.plan import Plan
from engine.runtime import diff_impact, plan_diff, publish
from engine.runtime.diff_impact import Impact
from engine.runtime.workers import running_worker

REPO = Path(__file__).resolve().parent.parent


def nodes(wait_x: str | None, wait_y: str) -> str:
    """Forms accounts wait at wait_x (when there is one), the others at wait_y."""
    route = "wait_x" if wait_x else "wait_y"
    text = f"""
    - id: route
      type: split
      paths:
        - when: "account.industry == 'Forms'"
          next: {route}
      otherwise: wait_y
    - id: wait_y
      type: wait
      duration: {wait_y}
      next: done
    - id: done
      type: end
    """
    if wait_x:
        text += f"""
    - id: wait_x
      type: wait
      duration: {wait_x}
      next: done
    """
    return text


@dataclass
class Versions:
    client: Client
    folder: Path
    journey: str
    v1: Plan
    v2: Plan


@pytest.fixture
async def versions(dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> AsyncIterator[Versions]:
    """Two published versions with accounts waiting: version 1 has two Forms accounts at wait_x and one other at
    wait_y; version 2 (wait_x shorter) has one more Forms account at wait_x."""
    journey = f"impact-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    for account in ("a1", "a2"):
        add_account(db, f"{account}-{journey}", industry="Forms")
    add_account(db, f"b1-{journey}", industry="Labs")
    task_queue = f"impact-{journey}"
    async with running_worker(client, db, OutboxFileDelivery(tmp_path / "outbox"), task_queue):
        v1 = write_journey(tmp_path, nodes("30d", "30d"), start="route", journey=journey)
        assert len((await publish.publish(client, db, v1, task_queue=task_queue)).started) == 3
        add_account(db, f"a3-{journey}", industry="Forms")
        v2 = write_journey(tmp_path, nodes("20d", "30d"), start="route", journey=journey)
        assert (await publish.publish(client, db, v2, task_queue=task_queue)).started == [f"a3-{journey}"]
        try:
            yield Versions(client, tmp_path, journey, v1, v2)
        finally:
            async for execution in client.list_workflows(diff_impact.running_query(journey)):
                await client.get_workflow_handle(execution.id).terminate("test over")


async def settled(client: Client, db: Engine, journey: str, affected: list[str], waiting: dict[str, int]) -> Impact:
    """Visibility is eventually consistent (a journey shows at its start node first): count until the accounts
    show at their wait nodes, `waiting` accounts at each."""
    for _ in range(200):
        impact = await diff_impact.impact(client, db, journey, affected)
        if {node.node: node.total for node in impact.nodes if node.total} == waiting:
            return impact
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility did not settle: {impact}")


async def test_counts_by_node_and_version(versions: Versions, db: Engine) -> None:
    """Removing wait_x and changing wait_y: 3 accounts wait at wait_x (2 on version 1, 1 on version 2), 1 at wait_y."""
    v1, v2 = versions.v1.version, versions.v2.version
    v3 = write_journey(versions.folder, nodes(None, "10d"), start="route", journey=versions.journey)
    found = plan_diff.diff(publish.latest_version(db, versions.journey), v3)
    assert found.old_version == v2
    assert [node.node for node in found.removed] == ["wait_x"]
    assert [node.node for node in found.changed] == ["route", "wait_y"]

    impact = await settled(versions.client, db, versions.journey, found.affected_nodes(), {"wait_x": 3, "wait_y": 1})

    by_node = {node.node: node.by_version for node in impact.nodes}
    assert by_node == {"wait_x": {v1: 2, v2: 1}, "route": {}, "wait_y": {v1: 1}}
    assert impact.complete and impact.running_by_version == {v1: 3, v2: 1}


async def journey_cli(client: Client, db: Engine, *args: str) -> tuple[int, str, str]:
    """The real CLI in a subprocess, on the test's database and the dev server."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")}
    env |= {"TEMPORAL_ADDRESS": client.service_client.config.target_host, "JOURNEY_DATABASE_URL": str(db.url)}
    env["COLUMNS"] = "200"  # rich wraps at 80 columns without a terminal
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *args, env=env, stdout=PIPE, stderr=PIPE, cwd=REPO
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_diff_and_publish_print_the_changes(versions: Versions, db: Engine) -> None:
    """`journey diff --json` carries the counts; `journey publish` prints the summary before it starts anyone, and
    publishing the same file again says there are no changes."""
    v1, v2 = versions.v1.version, versions.v2.version
    v3 = write_journey(versions.folder, nodes(None, "10d"), start="route", journey=versions.journey)
    file = str(versions.folder / f"{versions.journey}.yaml")
    await settled(versions.client, db, versions.journey, ["wait_x", "wait_y"], {"wait_x": 3, "wait_y": 1})

    code, stdout, stderr = await journey_cli(versions.client, db, "diff", file, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert (data["old_version"], data["new_version"], data["impact_error"]) == (v2, v3.version, None)
    assert data["impact"]["nodes"] == [
        {"node": "wait_x", "total": 3, "by_version": {v2: 1, v1: 2}},
        {"node": "route", "total": 0, "by_version": {}},
        {"node": "wait_y", "total": 1, "by_version": {v1: 1}},
    ]

    code, stdout, stderr = await journey_cli(versions.client, db, "publish", file)
    assert code == 0, stderr
    summary, published = stdout.index("1 node removed (3 accounts are waiting there now)"), stdout.index("published")
    assert summary < published
    assert "2 nodes changed (1 account is waiting there now)" in stdout
    assert f"wait_x (wait): 3 accounts are waiting here now (1 on {v2}, 2 on {v1})" in stdout  # newest first
    assert "a republish does not move them" in stdout
    assert "0 started, 0 already running, 4 excluded by re-entry" in stdout

    code, stdout, stderr = await journey_cli(versions.client, db, "publish", file, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["changes"]["unchanged"] is True and data["changes"]["old_version"] == v3.version
    before = {"journey", "version", "in_audience", "started", "already_running", "excluded_by_reentry"}
    assert before | {"changes"} <= set(data)  # the keys publish printed before stay as they were
    code, stdout, _ = await journey_cli(versions.client, db, "publish", file)
    assert "no changes" in stdout.splitlines()
