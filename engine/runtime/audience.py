"""The launcher's activities: read a journey's latest published version and start the accounts new to its audience,
when the journey takes entries; for a scheduled journey, also record the close at schedule.end (the workflow that
wakes them is engine/workflow/launcher.py)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.engine import Engine
from temporalio import activity
from temporalio.client import Client

from engine.db import utcnow
from engine.language.schedule_model import Schedule
from engine.runtime import journey_state, publish
from engine.workflow.launcher import LaunchRequest, LaunchResult


class LauncherActivities:
    def __init__(self, client: Client, engine: Engine, task_queue: str) -> None:
        self.client, self.engine, self.task_queue = client, engine, task_queue

    @activity.defn(name="launch_audience")
    async def launch_audience(self, journey_id: str) -> LaunchResult:
        return await self._launch(journey_id, None)

    @activity.defn(name="launch_scheduled")
    async def launch_scheduled(self, request: LaunchRequest) -> LaunchResult:
        """As launch_audience, at the workflow's time; at schedule.end, record the journey closed instead."""
        if request.close:
            closed = await asyncio.to_thread(
                journey_state.close_on_schedule, self.engine, request.journey_id, request.at
            )
            activity.logger.info("schedule end", extra={"journey": request.journey_id, "closed": closed})
            plan = await asyncio.to_thread(publish.latest_version, self.engine, request.journey_id)
            return _result(plan.audience.refresh if plan else None, plan.schedule if plan else None)
        return await self._launch(request.journey_id, request.at)

    async def _launch(self, journey_id: str, at: datetime | None) -> LaunchResult:
        plan = await asyncio.to_thread(publish.latest_version, self.engine, journey_id)
        if plan is None:
            return LaunchResult(refresh=None)
        found = await asyncio.to_thread(journey_state.lifecycle, self.engine, journey_id, at or utcnow())
        if found is not None and found.state in journey_state.ENDED:  # closed or stopped: the launcher's work is done
            return LaunchResult(refresh=None)
        summary = await publish.launch(
            self.client, self.engine, plan, task_queue=self.task_queue, progress=lambda _: activity.heartbeat(), at=at
        )
        activity.logger.info(
            "audience refreshed",
            extra={"journey": journey_id, "started": len(summary.started), "not_open": summary.not_open},
        )
        result = _result(plan.audience.refresh, plan.schedule)
        return result.model_copy(
            update={
                "started": len(summary.started),
                "already_running": len(summary.already_running),
                "excluded_by_reentry": len(summary.excluded_by_reentry),
            }
        )


def _result(refresh: str | None, schedule: Schedule | None) -> LaunchResult:
    return LaunchResult(
        refresh=refresh,
        opens_at=schedule.start if schedule is not None else None,
        closes_at=schedule.end if schedule is not None else None,
    )
