"""What a simulation found, as one JSON-ready summary (the `--json` output, also what the text and HTML show):
per-node counts, the commonest paths, emails per node, handoffs and when, and each expectation held or failed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from engine.language.durations import format_duration
from engine.language.plan import Plan
from engine.simulate.expectations import Expectation
from engine.simulate.runner import Simulation
from engine.simulate.scenario import Scenario

PATHS_SHOWN = 20


def after(delta: timedelta) -> str:
    """A simulated time after entry as a person reads it: '2d 4h', '35m', '0s'."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or f"{seconds}s"


def summary(plan: Plan, scenario: Scenario, simulation: Simulation, expectations: list[Expectation]) -> dict[str, Any]:
    outcome = simulation.outcome
    checked = []
    for expectation in expectations:
        held, found = expectation.check(outcome)
        checked.append({"expect": expectation.text, "passed": held, "found": found})
    nodes = []
    for node_id, node in plan.nodes.items():
        nodes.append(
            {
                "node": node_id,
                "type": node.type,
                "entered": sum(1 for reached in outcome.reached.values() if node_id in reached),
                "entries": outcome.entries.get(node_id, 0),
                "left": dict(sorted(outcome.left.get(node_id, {}).items())),
                "waiting": outcome.waiting.get(node_id, 0),
                "emails": outcome.emails.get(node_id, 0),
            }
        )
    paths = sorted(outcome.paths.items(), key=lambda item: (-item[1], item[0]))[:PATHS_SHOWN]
    return {
        "journey": plan.journey,
        "version": plan.version,
        "scenario": scenario.path,
        "seed": scenario.seed,
        "duration": format_duration(scenario.duration),
        "accounts": {"entered": simulation.audience, "not_in_audience": simulation.not_in_audience},
        "events": {"sent": outcome.events_sent, "unmatched": outcome.events_unmatched},
        "nodes": nodes,
        "edges": [
            {"source": source, "target": edge.target, "label": edge.label}
            for source, edges in plan.edges.items()
            for edge in edges
        ],
        "start": plan.start,
        "paths": [{"nodes": list(path), "accounts": count} for path, count in paths],
        "positions": dict(sorted(outcome.positions.items())),
        "emails": {
            "total": sum(outcome.emails.values()),
            "by_node": dict(sorted(outcome.emails.items())),
            # Journey emails plus what the handoff and sales alerts send to account owners, none of it delivered.
            "handed_to_mailer": simulation.emails_delivered,
        },
        "handoffs": [
            {"account": account, "node": node, "after": after(delta), "after_seconds": int(delta.total_seconds())}
            for account, node, delta in sorted(outcome.handoffs, key=lambda item: (item[2], item[0]))
        ],
        "service_calls": simulation.service_calls,
        "expectations": checked,
        "passed": all(item["passed"] for item in checked),
        "seconds": round(simulation.seconds, 1),
    }
