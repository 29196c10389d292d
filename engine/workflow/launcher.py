"""The audience refresh: one long-running launcher workflow per journey, waking on its `refresh` cron.

Each wake-up runs an activity (engine/runtime/audience.py) that reads the journey's latest published
version, evaluates its audience and starts the accounts that are new to it. Re-publishing changes what the next wake-up
does without restarting the launcher; a version without `refresh` ends it.

A journey with a `schedule` has a launcher too, refresh or not: it wakes at schedule.start to start the audience
(publishing before the start starts nobody), and at schedule.end to record the journey closed. Its activity is
given the workflow's time, so whether entry is open is decided at the moment the timer fired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from engine.language import schedule

CONTINUE_AFTER = 100  # wake-ups per run: a daily refresh continues as new about every three months


class LauncherInput(BaseModel):
    journey_id: str
    refresh: str | None  # None: only a schedule wakes it
    wake_ups: int = 0
    opens_at: datetime | None = None  # schedule.start
    closes_at: datetime | None = None  # schedule.end


class LaunchResult(BaseModel):
    refresh: str | None
    started: int = 0
    already_running: int = 0
    excluded_by_reentry: int = 0
    opens_at: datetime | None = None  # the latest version's schedule: a re-publish moves the next wake-up
    closes_at: datetime | None = None


class LaunchRequest(BaseModel):
    """What a scheduled launcher asks of its activity: start the audience (or, `close`, record the end) as of `at`."""

    journey_id: str
    at: datetime
    close: bool = False


@workflow.defn(name="JourneyLauncher")
class LauncherWorkflow:
    @workflow.run
    async def run(self, launcher: LauncherInput) -> None:
        refresh, wake_ups = launcher.refresh, launcher.wake_ups
        opens, closes = launcher.opens_at, launcher.closes_at
        while True:
            now = workflow.now()
            due, why = _next_wake(refresh, opens, closes, now)
            if due is None:
                return
            workflow.set_current_details(
                f"{why} at {due.astimezone(UTC):%Y-%m-%d %H:%M} UTC" + _cron_note(refresh, why)
            )
            summary = f"until the next audience refresh ({refresh})" if why == REFRESH else f"until the {why}"
            await workflow.sleep(due - now, summary=summary)
            if opens is None and closes is None:  # launchers without a schedule, as they always ran
                result = await workflow.execute_activity(
                    "launch_audience",
                    launcher.journey_id,
                    result_type=LaunchResult,
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=timedelta(minutes=2),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
                    summary=f"start new accounts of {launcher.journey_id}",
                )
            else:
                result = await workflow.execute_activity(
                    "launch_scheduled",
                    LaunchRequest(journey_id=launcher.journey_id, at=workflow.now(), close=why == CLOSE),
                    result_type=LaunchResult,
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=timedelta(minutes=2),
                    retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
                    summary=f"{why} of {launcher.journey_id}",
                )
                if why == CLOSE and (result.closes_at is None or result.closes_at <= workflow.now()):
                    return
            wake_ups += 1
            refresh, opens, closes = result.refresh, result.opens_at, result.closes_at
            if refresh is None and opens is None and closes is None:
                return
            if wake_ups % CONTINUE_AFTER == 0 or workflow.info().is_continue_as_new_suggested():
                workflow.continue_as_new(
                    LauncherInput(
                        journey_id=launcher.journey_id,
                        refresh=refresh,
                        wake_ups=wake_ups,
                        opens_at=opens,
                        closes_at=closes,
                    )
                )


REFRESH, OPEN, CLOSE = "next audience refresh", "schedule start", "schedule end"


def _next_wake(
    refresh: str | None, opens: datetime | None, closes: datetime | None, now: datetime
) -> tuple[datetime | None, str]:
    """When to wake next and why: the schedule's start first (no refresh before entry opens), then each refresh
    before the schedule's end, then the end; None when nothing is left to do."""
    if opens is not None and now < opens:
        return opens, OPEN
    due = schedule.next_time(refresh, now, "UTC") if refresh is not None else None
    if closes is not None and now < closes and (due is None or due >= closes):
        return closes, CLOSE
    if closes is not None and now >= closes:
        return None, CLOSE
    return due, REFRESH


def _cron_note(refresh: str | None, why: str) -> str:
    return f" (`{refresh}`)" if why == REFRESH else ""
