"""The scheduled recompute of buying-group scores (engagement decays as activities leave the 30-day
window, so scores change even when nothing happens): one long-running workflow waking on a cron
(JOURNEY_SCORES_CRON, daily at 03:00 UTC by default), and the activity it runs, also run on demand by
`journey scores recompute`."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel
    from sqlalchemy.engine import Engine
    from sqlmodel import Session, col, select
    from temporalio.client import Client
    from temporalio.common import WorkflowIDConflictPolicy

    from activities.buying_groups import BuyingGroupActivities
    from engine import runtime, schedule
    from engine.contracts import BuyingGroupRequest
    from engine.db import BuyingGroup, JourneyVersion
    from engine.plan import Plan

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


class ScoresActivities:
    def __init__(self, engine: Engine, groups: BuyingGroupActivities) -> None:
        self.engine, self.groups = engine, groups

    @activity.defn(name="recompute_scores")
    async def recompute_scores(self) -> ScoresResult:
        """Re-run every buying group's rules and scores with the role template of its latest journey."""
        requests, skipped = await asyncio.to_thread(self._requests)
        for request in requests:
            await self.groups.load(request)
            activity.heartbeat(request.account_id)
        return ScoresResult(groups=len(requests), skipped=skipped)

    def _requests(self) -> tuple[list[BuyingGroupRequest], int]:
        with Session(self.engine) as session:
            templates: dict[str, Plan] = {}
            for row in session.exec(select(JourneyVersion).order_by(col(JourneyVersion.published_at))).all():
                plan = Plan.model_validate(row.plan)
                if plan.solution_interest is not None:
                    templates[plan.solution_interest.id] = plan  # the latest published wins
            requests, skipped = [], 0
            for group in session.exec(select(BuyingGroup).order_by(col(BuyingGroup.id))).all():
                latest = templates.get(group.solution_interest_id)
                if latest is None or latest.role_template is None or latest.solution_interest is None:
                    skipped += 1  # no published journey says which template this group uses
                    continue
                stages = {"stages": latest.stages} if latest.stages is not None else {}
                requests.append(
                    BuyingGroupRequest(
                        key=f"scores/{group.id}",
                        journey_id=latest.journey,
                        account_id=group.account_id,
                        solution_interest=latest.solution_interest,
                        role_template=latest.role_template,
                        **stages,
                    )
                )
            return requests, skipped

    def recompute_now(self) -> ScoresResult:
        """The same work without Temporal, for `journey scores recompute`."""
        requests, skipped = self._requests()
        for request in requests:
            self.groups.sync(request)
        return ScoresResult(groups=len(requests), skipped=skipped)


async def schedule_scores(client: Client, cron: str | None = None, task_queue: str = runtime.TASK_QUEUE) -> str:
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
