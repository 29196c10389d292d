"""The scheduled recompute of buying-group scores (engagement decays as activities leave the 30-day
window, so scores change even when nothing happens): one long-running workflow waking on a cron
(JOURNEY_SCORES_CRON, daily at 03:00 UTC by default). Its activity is activities/scores.py (also run on
demand by `journey scores recompute`); engine/runtime/scores.py starts it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from engine.language import schedule

DEFAULT_CRON = "0 3 * * *"
WORKFLOW_ID = "journey-scores"
CONTINUE_AFTER = 100


class ScoresInput(BaseModel):
    cron: str = DEFAULT_CRON
    runs: int = 0


class ScoresResult(BaseModel):
    groups: int = 0
    skipped: int = 0


@workflow.defn(name="ScoresRefresh")
class ScoresWorkflow:
    @workflow.run
    async def run(self, scores: ScoresInput) -> None:
        runs = scores.runs
        while True:
            now = workflow.now()
            due = schedule.next_time(scores.cron, now, "UTC")
            workflow.set_current_details(f"next score recompute at {due:%Y-%m-%d %H:%M} UTC (`{scores.cron}`)")
            await workflow.sleep(due - now, summary=f"until the next score recompute ({scores.cron})")
            await workflow.execute_activity(
                "recompute_scores",
                result_type=ScoresResult,
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=10)),
                summary="recompute every buying group's scores",
            )
            runs += 1
            if runs % CONTINUE_AFTER == 0 or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(ScoresInput(cron=scores.cron, runs=runs))
