"""The launcher's activity: read a journey's latest published version and start the accounts new to its
audience (the workflow that wakes it is engine/workflow/launcher.py)."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client

from engine.runtime import publish
from engine.workflow.launcher import LaunchResult


class LauncherActivities:
    def __init__(self, client: Client, engine: Engine, task_queue: str) -> None:
        self.client, self.engine, self.task_queue = client, engine, task_queue

    @activity.defn(name="launch_audience")
    async def launch_audience(self, journey_id: str) -> LaunchResult:
        plan = publish.latest_version(self.engine, journey_id)
        if plan is None:
            return LaunchResult(refresh=None)
        summary = await publish.publish(
            self.client, self.engine, plan, task_queue=self.task_queue, progress=lambda _: activity.heartbeat()
        )
        activity.logger.info("audience refreshed", extra={"journey": journey_id, "started": len(summary.started)})
        return LaunchResult(
            refresh=plan.audience.refresh,
            started=len(summary.started),
            already_running=len(summary.already_running),
            excluded_by_reentry=len(summary.excluded_by_reentry),
        )
