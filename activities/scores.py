"""The `recompute_scores` activity of the scheduled score job (engine/workflow/scores.py): re-run every
buying group's rules and scores with the role template of its latest journey."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity

from activities.buying_groups import BuyingGroupActivities
from engine.db import BuyingGroup, JourneyVersion
from engine.language.plan import Plan
from engine.workflow.contracts import BuyingGroupRequest
from engine.workflow.scores import ScoresResult


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
