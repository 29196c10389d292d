"""`python worker.py` as operators run it: configured by environment variables, JSON logs when not on a
terminal, runs journeys, and drains cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from support import add_account, write_journey
from temporalio.testing import WorkflowEnvironment

from engine.runtime import temporal
from engine.workflow.contracts import JourneyInput, JourneyResult

REPO = Path(__file__).resolve().parent.parent


async def test_worker_runs_and_stops(dev_env: WorkflowEnvironment, db: Engine, tmp_path: Path) -> None:
    """The worker process runs a journey, logs JSON lines, and exits 0 on SIGTERM."""
    plan = write_journey(
        tmp_path / "journeys",
        """
        - id: bump
          type: update_account
          add: {touches: 1}
          next: done
        - id: done
          type: end
    """,
        start="bump",
    )
    add_account(db)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    env.update(
        {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "JOURNEY_DATABASE_URL": str(db.url),
            "JOURNEY_HOME": str(tmp_path / "home"),
            "JOURNEY_WORKER_CACHE": "50",
        }
    )
    worker = subprocess.Popen([sys.executable, "worker.py"], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        result = await dev_env.client.execute_workflow(
            "Journey",
            JourneyInput(plan=plan, account_id="acme-corp"),
            id=temporal.workflow_id(plan.journey, f"acme-corp-{uuid.uuid4().hex[:6]}"),
            task_queue=temporal.TASK_QUEUE,
            result_type=JourneyResult,
        )
        assert result.ended_at == "done"
    finally:
        worker.send_signal(signal.SIGTERM)
        _, logs = await asyncio.to_thread(worker.communicate, None, 60)
    assert worker.returncode == 0, logs
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    messages = [entry["event"] for entry in events]
    assert "worker running" in messages and messages[-1] == "worker stopped"
    running = next(entry for entry in events if entry["event"] == "worker running")
    assert running["task_queue"] == temporal.TASK_QUEUE and running["level"] == "info"
    assert running["cached_workflows"] == 50
    assert running["workflow_task_slots"] == 50 and running["activity_slots"] == 20  # the defaults


@pytest.mark.parametrize(
    ("name", "value"),
    [("JOURNEY_WORKER_CACHE", "lots"), ("JOURNEY_WORKER_WORKFLOW_TASKS", "1"), ("JOURNEY_WORKER_ACTIVITIES", "-3")],
)
def test_a_bad_worker_size_is_refused_with_what_to_do(tmp_path: Path, name: str, value: str) -> None:
    env = {key: setting for key, setting in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    env.update({"JOURNEY_HOME": str(tmp_path / "home"), name: value})
    done = subprocess.run([sys.executable, "worker.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"{name} must be a whole number" in done.stderr and "Traceback" not in done.stderr
