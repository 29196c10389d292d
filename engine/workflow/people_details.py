"""What an operator reads while a people_split runs: how many people took each path and which step is running.
Pure functions of the node and the routing result, so the workflow can call them while staying deterministic."""

from __future__ import annotations

from engine.language.model import PeopleSplit
from engine.language.render import step_summary
from engine.workflow.people_contracts import MAX_PEOPLE


def progress(node: PeopleSplit, people: list[list[int]], left_out: int, running: tuple[int, int] | None) -> str:
    """Markdown: people per path, then the step running now ((path index, step index); None: routing or done)."""
    names, steps = node.path_names(), node.all_steps()
    counts = " · ".join(f"{name} {len(ids)}" for name, ids in zip(names, people, strict=True))
    lines = [f"People routed: {counts} ({sum(len(ids) for ids in people)} in all)."]
    if left_out:
        lines.append(f"{left_out} more people of the account took no path: a split routes the first {MAX_PEOPLE:,}.")
    if running is not None:
        path, step = running
        count = len(people[path])
        lines.append(
            f"Now: path '{names[path]}' step {step + 1} of {len(steps[path])}: {step_summary(steps[path][step])}"
            f" for {count} {'person' if count == 1 else 'people'}."
        )
    return "\n\n".join(lines)
