"""Record the histories of an account moved to a later version (`journey publish --migrate`): the run that was
asked to move while it waited in ai-seed-abm, and the run that went on in the new version. The replay test
replays both (tests/histories/migration/).

    .venv/bin/python tests/histories/record_migration.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from activities.delivery import OutboxFileDelivery  # noqa: E402
from engine.db import init_db, make_engine  # noqa: E402
from engine.dev.demo_data import load_demo_data  # noqa: E402
from engine.language.compiler import compile_file  # noqa: E402
from engine.runtime import search_attributes, temporal  # noqa: E402
from engine.runtime.workers import running_worker  # noqa: E402
from engine.workflow import details  # noqa: E402
from engine.workflow.contracts import JourneyInput  # noqa: E402
from engine.workflow.migration_contracts import MigrateRequest, MigrateResult  # noqa: E402

HERE = Path(__file__).resolve().parent / "migration"
JOURNEY = REPO / "journeys" / "ai_seed_abm.yaml"
ACCOUNT = "acme-corp"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/journey.db")
        init_db(engine)
        load_demo_data(engine, REPO / "journeys")
        old = compile_file(JOURNEY)
        # The new version: its first email's subject changed (versions are content-addressed: a new id), written
        # next to the original so its templates resolve.
        changed = JOURNEY.with_name(f".migration-{uuid.uuid4().hex[:6]}.yaml")
        changed.write_text(JOURNEY.read_text().replace("and AI-based seeds", "and AI-based seeds, version 2", 1))
        try:
            new = compile_file(changed)
        finally:
            changed.unlink()
        assert new.version != old.version
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal.test_server_path(), data_converter=pydantic_data_converter
        )
        async with env:
            await search_attributes.register(env.client)
            task_queue = f"record-{uuid.uuid4()}"
            # As record.py records ai-seed-abm: no LinkedIn token, so its service node takes its failure path.
            async with running_worker(env.client, engine, OutboxFileDelivery(Path(tmp) / "outbox"), task_queue):
                handle = await env.client.start_workflow(
                    "Journey",
                    JourneyInput(plan=old, account_id=ACCOUNT),
                    id=temporal.workflow_id(old.journey, ACCOUNT),
                    task_queue=task_queue,
                    search_attributes=details.start_attributes(old, ACCOUNT, None, datetime.now(UTC)),
                )
                for _ in range(400):
                    state = await handle.query("state")
                    if state and old.nodes[state["position"]].type in {"wait", "wait_for_event"}:
                        break
                    await asyncio.sleep(0.05)
                await env.sleep(timedelta(days=1))
                request = MigrateRequest(plan=new, by="recorder", reason="recorded migration")
                result = await handle.execute_update("migrate", request, result_type=MigrateResult)
                print(result.message)
                await handle.result()
                first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
                HERE.mkdir(exist_ok=True)
                (HERE / f"{old.journey}__{ACCOUNT}__moved.json").write_text((await first.fetch_history()).to_json())
                last = env.client.get_workflow_handle(handle.id)
                (HERE / f"{old.journey}__{ACCOUNT}__after.json").write_text((await last.fetch_history()).to_json())
        engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
