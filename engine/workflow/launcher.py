"""The audience refresh: one long-running launcher workflow per journey, waking on its `refresh` cron.

Each wake-up runs an activity (engine/runtime/audience.py) that reads the journey's latest published
version, evaluates its audience and starts the accounts that are new to it. Re-publishing changes what the next wake-up
does without restarting the launcher; a version without `refresh` ends it.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from engine.language import schedule

CONTINUE_AFTER = 100  # wake-ups per run: a daily refresh continues as new about every three months


class LauncherInput(BaseModel):
    journey_id: str
    refresh: str
    wake_ups: int = 0


class LaunchResult(BaseModel):
    refresh: str | None
    started: int = 0
    already_running: int = 0
    excluded_by_reentry: int = 0


@workflow.defn(name="JourneyLauncher")
class LauncherWorkflow:
    @workflow.run
    async def run(self, launcher: LauncherInput) -> None:
        refresh, wake_ups = launcher.refresh, launcher.wake_ups
        while True:
            now = workflow.now()
            due = schedule.next_time(refresh, now, "UTC")
            workflow.set_current_details(
                f"next audience refresh at {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC (`{refresh}`)"
            )
            await workflow.sleep(due - now, summary=f"until the next audience refresh ({refresh})")
            result = await workflow.execute_activity(
                "launch_audience",
                launcher.journey_id,
                result_type=LaunchResult,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
                summary=f"start new accounts of {launcher.journey_id}",
            )
            wake_ups += 1
            if result.refresh is None:
                return
            refresh = result.refresh
            if wake_ups % CONTINUE_AFTER == 0 or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    LauncherInput(journey_id=launcher.journey_id, refresh=refresh, wake_ups=wake_ups)
                )
