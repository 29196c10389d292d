"""`journey list`, `journey close` and `journey stop` through the real CLI, against the dev server (visibility
counts) and a real database (SQLite and PostgreSQL): the listing's states and counts, a stop that cancels every
running account with the reason logged, and the error paths a marketer may hit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from support import add_account, write_journey
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.db import ActivityEvent
from engine.language.plan import Plan
from engine.runtime import journey_listing, publish
from engine.runtime.workers import running_worker

REPO = Path(__file__).resolve().parent.parent
WAITS = "- id: linger\n  type: wait\n  duration: 30d\n  next: done\n- id: done\n  type: end\n"
ENDS = "- id: done\n  type: end\n"


@pytest.fixture
async def lab(dev_env: WorkflowEnvironment, engine: Engine, tmp_path: Path) -> AsyncIterator[tuple[Client, str]]:
    """A worker on the dev server and the `engine` database; yields the client and a suffix for this test's ids."""
    suffix = uuid.uuid4().hex[:6]
    async with running_worker(dev_env.client, engine, OutboxFileDelivery(tmp_path / "outbox"), f"life-{suffix}"):
        yield dev_env.client, suffix


def cli_env(engine: Engine, client: Client | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    env["JOURNEY_DATABASE_URL"] = engine.url.render_as_string(hide_password=False)
    env["TEMPORAL_ADDRESS"] = client.service_client.config.target_host if client is not None else "127.0.0.1:1"
    env["JOURNEY_OPERATOR"] = "ann"
    return env


async def journey_cli(engine: Engine, client: Client | None, *args: str) -> tuple[int, str, str]:
    """The real CLI in a subprocess, asynchronously: this process's worker must answer its updates."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.cli", *args, env=cli_env(engine, client), cwd=REPO, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def until_running(client: Client, journey_id: str, count: int) -> None:
    """Visibility is eventually consistent: wait until it counts `count` running accounts."""
    for _ in range(200):
        if (await journey_listing.running_counts(client, [journey_id]))[journey_id] == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility never showed {count} running accounts of {journey_id}")


async def listed(engine: Engine, client: Client, folder: Path) -> dict[str, dict[str, Any]]:
    code, stdout, stderr = await journey_cli(engine, client, "list", "--journeys", str(folder), "--json")
    assert code == 0, stderr
    return {row["journey"]: row for row in json.loads(stdout)}


def seeded(engine: Engine, folder: Path, suffix: str) -> tuple[Plan, Plan, list[str]]:
    """(a journey whose accounts wait 30 days, one whose accounts end at once, the two accounts of both)."""
    accounts = [f"one-{suffix}", f"two-{suffix}"]
    for account in accounts:
        add_account(engine, account, industry=f"Labs-{suffix}")
    audience = f"account.industry == 'Labs-{suffix}'"
    waits = write_journey(folder, WAITS, start="linger", journey=f"waits-{suffix}")
    ends = write_journey(folder, ENDS, start="done", journey=f"ends-{suffix}")
    for plan in (waits, ends):
        path = folder / f"{plan.journey}.yaml"
        path.write_text(path.read_text().replace('"account.employees >= 1"', f'"{audience}"'))
    from engine.language.compiler import compile_file

    return compile_file(folder / f"{waits.journey}.yaml"), compile_file(folder / f"{ends.journey}.yaml"), accounts


class TestListAndStop:
    """The listing shows each journey's state and counts; stop cancels everyone running, with the reason."""

    async def test_list_close_stop(self, lab: tuple[Client, str], engine: Engine, tmp_path: Path) -> None:
        """Drafts, live and finished journeys are listed with their counts; stopping cancels the running accounts,
        logs each cancel with the reason, and the stopped journey is then listed as finished."""
        client, suffix = lab
        waits, ends, accounts = seeded(engine, tmp_path, suffix)
        write_journey(tmp_path, ENDS, start="done", journey=f"draft-{suffix}")
        task_queue = f"life-{suffix}"
        assert (await publish.publish(client, engine, waits, task_queue=task_queue)).started == accounts
        assert (await publish.publish(client, engine, ends, task_queue=task_queue)).started == accounts
        await until_running(client, waits.journey, 2)
        await until_running(client, ends.journey, 0)
        code, stdout, stderr = await journey_cli(engine, client, "close", ends.journey, "--reason", "all done")
        assert (code, stdout.strip()) == (
            0,
            f"closed {ends.journey}: nobody new enters; accounts in it finish their journey",
        ), stderr

        rows = await listed(engine, client, tmp_path)
        assert {key: rows[f"draft-{suffix}"][key] for key in ("state", "version", "running", "file")} == {
            "state": "draft",
            "version": None,
            "running": 0,
            "file": str(tmp_path / f"draft-{suffix}.yaml"),
        }
        live = rows[waits.journey]
        assert (live["state"], live["version"], live["running"], live["finished"], live["cancelled"]) == (
            "live",
            waits.version,
            2,
            0,
            0,
        )
        assert live["first_published"] is not None and live["changed_by"] == "publish"
        done = rows[ends.journey]
        assert (done["state"], done["running"], done["finished"], done["changed_by"]) == ("finished", 0, 2, "engine")

        code, stdout, stderr = await journey_cli(
            engine, client, "stop", waits.journey, "--reason", "wrong audience", "--yes", "--json"
        )
        assert code == 0, stderr
        summary = json.loads(stdout)
        assert (summary["newly_stopped"], summary["refused"]) == (True, {})
        assert sorted(summary["cancelled"] + summary["ended_meanwhile"]) == sorted(
            f"journey/{waits.journey}/{account}" for account in accounts
        )
        with Session(engine) as session:
            cancels = session.exec(
                select(ActivityEvent)
                .where(ActivityEvent.type == "operator_action", ActivityEvent.journey_id == waits.journey)
                .order_by(col(ActivityEvent.id))
            ).all()
            changed = session.exec(
                select(ActivityEvent).where(
                    ActivityEvent.type == "journey_state_changed", ActivityEvent.journey_id == waits.journey
                )
            ).all()
        assert sorted(
            (row.account_id, row.payload["action"], row.payload["by"], row.payload["reason"]) for row in cancels
        ) == [(account, "cancel", "ann", "wrong audience") for account in accounts]
        assert [(row.payload["from"], row.payload["to"]) for row in changed] == [("draft", "live"), ("live", "stopped")]

        await until_running(client, waits.journey, 0)
        again = await journey_cli(engine, client, "stop", waits.journey, "--reason", "again", "--yes", "--json")
        assert again[0] == 0 and json.loads(again[1])["cancelled"] == []  # idempotent: nobody left to cancel
        stopped = (await listed(engine, client, tmp_path))[waits.journey]
        assert (stopped["state"], stopped["running"], stopped["cancelled"]) == ("finished", 0, 2)


class TestErrors:
    """Mistakes get a message saying what to do, and no traceback."""

    def run_cli(self, engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=cli_env(engine, None),
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    def test_unknown_journey(self, db: Engine, tmp_path: Path) -> None:
        """Closing or stopping an id that was never published exits 1 and says how to find or publish one."""
        publish.store_version(db, write_journey(tmp_path, ENDS, start="done", journey="spring-launch"))
        closing = self.run_cli(db, "close", "spring-lunch")
        assert (closing.returncode, closing.stdout) == (1, "")
        assert closing.stderr == (
            "journey close: journey 'spring-lunch' was never published (did you mean 'spring-launch'?): see "
            "`journey list` for the journeys there are, or publish it first with `journey publish FILE`\n"
        )
        stopping = self.run_cli(db, "stop", "nothing-here", "--reason", "test", "--yes")
        assert stopping.returncode == 1
        assert stopping.stderr.startswith("journey stop: journey 'nothing-here' was never published")

    def test_stop_needs_yes_without_a_terminal(self, db: Engine) -> None:
        """Without --yes and with no terminal to ask in, stop refuses before touching anything (exit 2)."""
        result = self.run_cli(db, "stop", "spring-launch", "--reason", "test")
        assert result.returncode == 2
        assert result.stderr == (
            "journey stop: this cancels every running account of 'spring-launch' and cannot be undone; "
            "confirm with --yes (there is no terminal to ask in)\n"
        )

    def test_stop_needs_a_reason(self, db: Engine) -> None:
        """A blank reason is refused: it is kept with every cancelled account."""
        result = self.run_cli(db, "stop", "spring-launch", "--reason", " ", "--yes")
        assert (result.returncode, result.stderr) == (
            2,
            "journey stop: say why with --reason: it is kept with every cancelled account\n",
        )

    def test_list_without_temporal(self, db: Engine, tmp_path: Path) -> None:
        """With Temporal unreachable the listing still shows states, with running counts unknown."""
        publish.store_version(db, write_journey(tmp_path, ENDS, start="done", journey="spring-launch"))
        result = self.run_cli(db, "list", "--journeys", str(tmp_path), "--json")
        assert result.returncode == 0, result.stderr
        [row] = json.loads(result.stdout)
        assert (row["journey"], row["state"], row["running"]) == ("spring-launch", "live", None)
        assert "running counts unknown" in result.stderr
