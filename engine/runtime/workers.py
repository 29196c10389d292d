"""Assemble a worker: the journey workflows and every activity, bound to a database and a mailer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.accounts import AccountActivities
from activities.buying_group_changes import BuyingGroupChangeActivities
from activities.buying_groups import BuyingGroupActivities
from activities.delivery import Delivery
from activities.email import EmailActivities
from activities.people import PeopleActivities
from activities.sales_alert import SalesAlertActivities
from activities.scores import ScoresActivities
from activities.services import ServiceActivities
from engine.runtime import temporal
from engine.runtime.audience import LauncherActivities
from engine.runtime.journey_changes import JourneyChangeActivities
from engine.workflow.interpreter import JourneyWorkflow
from engine.workflow.launcher import LauncherWorkflow
from engine.workflow.scores import ScoresWorkflow

WORKFLOWS: list[type] = [JourneyWorkflow, LauncherWorkflow, ScoresWorkflow]
DEFAULT_CACHE = 1_000  # the SDK's own default for max_cached_workflows


# How much work one worker process takes on at once. The SDK's default is 100 of each; in one Python process every
# workflow task shares one GIL, and a task waiting for its step rows' local activity keeps its slot, so past ~50
# a burst (a publish of 1,000 accounts) only queues tasks inside the process while their 10 s timeout runs: they
# time out, are redone from history, and the worker stalls for minutes (bench/throughput.py, README). Activities
# do their database work on the event loop's thread pool (cores + 4 threads): slots past a few times that only
# queue there while their start-to-close timeouts run. Work the worker has not taken waits safely on the server.
DEFAULT_WORKFLOW_TASKS = 50
DEFAULT_ACTIVITIES = 20


def cache_from_env() -> int:
    """JOURNEY_WORKER_CACHE: how many accounts' workflows a worker keeps in memory (max_cached_workflows)."""
    return _count_from_env("JOURNEY_WORKER_CACHE", DEFAULT_CACHE, 0, "size it for the accounts active at once")


def slots_from_env() -> dict[str, int]:
    """JOURNEY_WORKER_WORKFLOW_TASKS and JOURNEY_WORKER_ACTIVITIES: the worker's concurrent task slots."""
    hint = "raise it only for a worker with more cores (see docs/scale.md)"
    return {
        "max_concurrent_workflow_tasks": _count_from_env(
            "JOURNEY_WORKER_WORKFLOW_TASKS", DEFAULT_WORKFLOW_TASKS, 2, hint
        ),
        "max_concurrent_activities": _count_from_env("JOURNEY_WORKER_ACTIVITIES", DEFAULT_ACTIVITIES, 1, hint),
    }


def _count_from_env(name: str, default: int, least: int, hint: str) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not least <= int(value) <= 1_000_000:
        raise ValueError(f"{name} must be a whole number from {least} to 1000000, got '{value}'; {hint}")
    return int(value)


@asynccontextmanager
async def running_worker(
    client: Client,
    engine: Engine,
    delivery: Delivery,
    task_queue: str = temporal.TASK_QUEUE,
    services: ServiceActivities | None = None,
    http: httpx.AsyncClient | None = None,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A started worker; leaving the block drains it and closes what the activities opened. `services` and `http`
    (the CRM webhook's client) replace the real outside calls: `journey simulate` answers them itself."""
    accounts = AccountActivities(engine)
    services = services or ServiceActivities()
    email = EmailActivities(engine, delivery)
    launcher = LauncherActivities(client, engine, task_queue)
    groups = BuyingGroupActivities(engine, delivery, http)
    scores = ScoresActivities(engine, groups)
    changes = BuyingGroupChangeActivities(engine, groups)
    people = PeopleActivities(engine, groups)
    alerts = SalesAlertActivities(engine, delivery)
    journey_changes = JourneyChangeActivities(client, engine, task_queue)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[
            accounts.load_account,
            accounts.update_account,
            accounts.store_response,
            accounts.record_step,
            accounts.record_steps,
            accounts.log_steps,
            accounts.record_operator_action,
            email.send_email,
            services.call_service,
            launcher.launch_audience,
            launcher.launch_scheduled,
            groups.assign,
            groups.load,
            groups.handoff,
            changes.update,
            changes.remove,
            people.route,
            people.assign_role,
            people.update,
            alerts.sales_alert,
            journey_changes.add_to_journey,
            journey_changes.remove_from_journey,
            scores.recompute_scores,
        ],
        **({"workflow_runner": temporal.sandbox_runner()} | slots_from_env() | options),
    )
    try:
        async with worker:
            yield worker
    finally:
        await services.aclose()
        await groups.aclose()
