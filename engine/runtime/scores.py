"""Starting the scheduled score recompute (engine/workflow/scores.py) on Temporal."""

from __future__ import annotations

import os

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from engine.runtime import temporal
from engine.workflow.scores import DEFAULT_CRON, WORKFLOW_ID, ScoresInput


async def schedule_scores(client: Client, cron: str | None = None, task_queue: str = temporal.TASK_QUEUE) -> str:
    """Start the recompute workflow (kept when it runs already); returns the cron it uses."""
    cron = cron or os.environ.get("JOURNEY_SCORES_CRON", DEFAULT_CRON)
    await client.start_workflow(
        "ScoresRefresh",
        ScoresInput(cron=cron),
        id=WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"buying-group score recompute ({cron})",
    )
    return cron
