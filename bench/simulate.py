"""Simulate the demo accounts through journeys/ai_seed_abm.yaml with a scripted scenario, and time it.

    python bench/simulate.py --accounts 300 --days 60

The accounts and people are the demo set of `journey dev` (engine/dev/demo_data.py), moved into the journey's
audience and written to an accounts file;
the scenario has demo requests (40% of accounts after 3 days, 20% more after 12), new people filling a form, and
the LinkedIn service answering. The time is the whole `engine.simulate.runner.run`: sandbox database, time-skipping
server, worker, every account through the journey, events at their simulated times. Logging is set up as
`journey simulate` sets it up (warnings and errors, unless JOURNEY_LOG_LEVEL says otherwise).
Last line: `simulate N accounts Dd: X.X s`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import textwrap
from pathlib import Path

from ruamel.yaml import YAML

from engine import logs
from engine.dev.demo_data import build_demo_set
from engine.language.compiler import compile_file
from engine.simulate import report
from engine.simulate.expectations import parse
from engine.simulate.runner import run
from engine.simulate.scenario import load_scenario

JOURNEY = Path(__file__).resolve().parent.parent / "journeys" / "ai_seed_abm.yaml"
PERSON_FIELDS = ("email", "first_name", "last_name", "job_title", "department", "seniority", "engagement_score")


def write_scenario(folder: Path, accounts: int, days: int) -> Path:
    demo = build_demo_set(accounts)
    people: dict[str, list[dict[str, object]]] = {}
    for person in demo.people:
        row = {name: getattr(person, name) for name in PERSON_FIELDS if getattr(person, name) is not None}
        people.setdefault(person.account_id, []).append(row)
    rows = []
    for account in demo.accounts:
        row = {
            name: getattr(account, name)
            for name in ("id", "name", "domain", "industry", "employees", "annual_revenue", "country", "timezone")
            if getattr(account, name) is not None
        }
        # Every account in the journey's audience (Agriculture or Biotech, 200+ employees), so all of them enter.
        row["industry"] = "Agriculture" if len(rows) % 2 == 0 else "Biotech"
        row["employees"] = max(int(row.get("employees") or 0), 200)
        rows.append({**row, "people": people.get(account.id, [])})
    with (folder / "accounts.yaml").open("w") as file:
        YAML(typ="safe", pure=True).dump(rows, file)
    scenario = folder / "scenario.yaml"
    scenario.write_text(
        textwrap.dedent(f"""\
            seed: 42
            duration: {days}d
            accounts_file: accounts.yaml
            services:
              linkedin: {{status: 200, body: {{matched: true}}}}
            events:
              - {{type: form_fill, payload: {{form: demo-request}}, after: 3d, probability: 0.4}}
              - {{type: form_fill, payload: {{form: demo-request}}, after: 12d, probability: 0.2}}
              - {{type: web_visit, payload: {{url: /pricing}}, after: 5d, probability: 0.5}}
            expect:
              - at least 1 reach handoff within {days}d
              - at most 100% time out at wait_demo
        """)
    )
    return scenario


async def main(accounts: int, days: int) -> None:
    plan = compile_file(JOURNEY)
    with tempfile.TemporaryDirectory() as folder:
        scenario = load_scenario(write_scenario(Path(folder), accounts, days))
        simulation = await run(plan, scenario)
    expectations = [parse(text, plan.nodes, None) for text in scenario.expect]
    summary = report.summary(plan, scenario, simulation, expectations)
    for node in summary["nodes"]:
        print(f"{node['node']:>16}: {node['entered']:>4} accounts, left {node['left']}, emails {node['emails']}")
    print(f"handoffs: {len(summary['handoffs'])}; events sent: {summary['events']['sent']}")
    for item in summary["expectations"]:
        print(f"{'ok' if item['passed'] else 'FAILED'}: {item['expect']} ({item['found']})")
    print(f"simulate {simulation.audience} accounts {days}d: {simulation.seconds:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    arguments = parser.parse_args()
    logs.configure(level=os.environ.get("JOURNEY_LOG_LEVEL", "WARNING"))
    asyncio.run(main(arguments.accounts, arguments.days))
