"""Recorded histories of the example journeys replay against today's workflow code without
non-determinism errors. Record them with tests/histories/record.py. Older recordings stay in
sub-folders, each shape behind a patch, to prove workflows started by an earlier worker still replay:
before-visibility/ (before search attributes and operator actions), before-step-batches/ (one
record_step activity per node edge), shape-1/ (every change behind a patch marker, step rows in full, before
JourneyInput.shape), shape-2/ (events during a wait's last task dropped) and shape-3/ (every email and handoff written
to the search attributes). migration/ holds both runs of an account moved to a later version while it waited
(tests/histories/record_migration.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from engine.language import catalog
from engine.runtime import temporal
from engine.runtime.workers import WORKFLOWS

REPO = Path(__file__).resolve().parent.parent
HISTORIES = sorted((REPO / "tests" / "histories").rglob("*.json"))


@pytest.mark.parametrize("path", HISTORIES, ids=lambda path: str(path.relative_to(REPO / "tests" / "histories")))
async def test_replays(path: Path) -> None:
    """The history replays to the same commands."""
    replayer = Replayer(
        workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=temporal.sandbox_runner()
    )
    history = WorkflowHistory.from_json(path.stem.replace("__", "/"), path.read_text())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None


def test_every_runnable_example_is_recorded() -> None:
    """Each example journey has at least one recorded history."""
    recorded = {path.stem.split("__")[0] for path in HISTORIES if path.parent.name == "histories"}
    examples = {plan.journey for plan in catalog.validate([REPO / "journeys"]).plans}
    assert examples and examples <= recorded
