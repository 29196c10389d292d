"""The journey worker: connect to Temporal, register the journey workflows and activities, run.

    TEMPORAL_ADDRESS=localhost:7233 python worker.py

Configuration comes from the environment only (see the README). SIGINT / SIGTERM drain the worker:
running activities finish, then it exits.
"""

from __future__ import annotations

import asyncio
import signal

import structlog

from activities.delivery import delivery_from_env
from engine import logs
from engine.db import database_url, init_db, make_engine
from engine.runtime import temporal
from engine.runtime.workers import cache_from_env, running_worker, slots_from_env


async def main() -> None:
    logs.configure()
    log = structlog.get_logger("worker")
    try:
        cache, slots = cache_from_env(), slots_from_env()
    except ValueError as error:
        raise SystemExit(f"worker: {error}") from None
    engine = make_engine()
    init_db(engine)
    client = await temporal.connect(engine=engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(client, engine, delivery_from_env(), max_cached_workflows=cache, **slots):
        log.info(
            "worker running",
            task_queue=temporal.TASK_QUEUE,
            cached_workflows=cache,
            workflow_task_slots=slots["max_concurrent_workflow_tasks"],
            activity_slots=slots["max_concurrent_activities"],
            namespace=client.namespace,
            database=database_url().split("@")[-1],
        )
        await stop.wait()
        log.info("worker stopping: finishing running activities")
    engine.dispose()
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
