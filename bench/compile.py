"""Generate a large journey, compile it, and print how long loading + compiling took.

    python bench/compile.py --nodes 2000

The generated journey mixes every account-level node type: chains of emails, waits, event and change waits, splits and
A/B tests (variant_split, whose holdouts are checked for sends), person-level paths (people_split), moves into and
out of another journey of the folder (add_to_journey, remove_from_journey), with loops
that go through a wait, so every check of the compiler (references, reachability, ways to an end, loops, expressions,
templates) does real work.
Last line: `compile N nodes: X.XXX s`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from engine.language import conditions
from engine.language.compiler import compile_file
from engine.language.workspace import load_workspace

STEP = """\
  - id: email_{i}
    type: send_email
    to: {{where: "person.job_title is matching('(?i)\\\\b(cto|vp)\\\\b')"}}
    subject: "Step {i} for {{{{ account.name }}}}"
    template: emails/step.html.j2
    next: wait_{i}
  - id: wait_{i}
    type: wait_for_event
    event: form_fill
    where: "event.form == 'demo-{i}' and account.employees >= {i}"
    timeout: 3d
    on_event: split_{i}
    on_timeout: pause_{i}
  - id: pause_{i}
    type: wait
    duration: 1d
    next: {back}
  - id: split_{i}
    type: split
    paths:
      - when: "account.industry in ['Agriculture', 'Biotech'] and account.annual_revenue > {i}000"
        next: ab_{i}
    otherwise: {next}
  - id: ab_{i}
    type: variant_split
    salt: "bench-{i}"
    variants:
      - {{name: A, percent: 45, next: {next}}}
      - {{name: B, percent: 45, next: pause_{i}}}
      - {{name: control, percent: 10, holdout: true, next: done}}
"""
# Every other step pauses until the account changes (wait_for_change) instead of for a fixed day.
PAUSE = "  - id: pause_{i}\n    type: wait\n    duration: 1d\n    next: {back}\n"
PAUSE_FOR_CHANGE = (
    "  - id: pause_{i}\n    type: wait_for_change\n    change: {{account: industry}}\n    timeout: 1d\n"
    "    on_change: {back}\n    on_timeout: {back}\n"
)
# Every third step emails person by person (people_split: leaders get the email and a field, the others a tag).
EMAIL = STEP[: STEP.index("  - id: wait_{i}")]
PEOPLE = """\
  - id: email_{i}
    type: people_split
    paths:
      - name: leaders
        when: "person.job_title is matching('(?i)\\\\b(cto|vp)\\\\b') and account.employees >= {i}"
        steps:
          - {{type: send_email, subject: "Step {i} for {{{{ person.first_name }}}}", template: emails/step.html.j2}}
          - {{type: update_person, set: {{track: leaders}}}}
    otherwise:
      steps:
        - {{type: update_person, set: {{track: step-{i}}}}}
    next: wait_{i}
"""
# Every fifth step moves the account into or out of another journey of the folder instead of emailing it.
JOURNEY_CHANGES = (
    "  - id: email_{i}\n    type: add_to_journey\n    journey: bench-other\n    next: wait_{i}\n",
    "  - id: email_{i}\n    type: remove_from_journey\n    journey: bench-other\n    reason: step {i}\n"
    "    next: wait_{i}\n",
)
OTHER = """\
journey: bench-other
name: The journey the benchmark adds accounts to and removes them from
audience:
  accounts: "account.employees >= 10"
start: done
nodes:
  - id: done
    type: end
"""


def generate(folder: Path, nodes: int) -> Path:
    steps = max(1, (nodes - 1) // 5)
    tail = max(0, nodes - 1 - 5 * steps)  # plain waits, so the journey has exactly `nodes` nodes
    parts = [
        "journey: bench-compile",
        "name: Compile benchmark",
        "audience:",
        '  accounts: "account.employees >= 10"',
        "start: email_0",
        "nodes:",
    ]
    for i in range(steps):
        following = f"email_{i + 1}" if i + 1 < steps else ("tail_0" if tail else "done")
        back = f"email_{max(0, i - 1)}"
        step = STEP.format(i=i, next=following, back=back)
        if i % 2:
            step = step.replace(PAUSE.format(i=i, back=back), PAUSE_FOR_CHANGE.format(i=i, back=back))
        if i % 3 == 2:
            step = step.replace(EMAIL.format(i=i, next=following, back=back), PEOPLE.format(i=i))
        elif i % 5 == 1:
            step = step.replace(EMAIL.format(i=i, next=following, back=back), JOURNEY_CHANGES[i // 5 % 2].format(i=i))
        parts.append(step.rstrip("\n"))
    for k in range(tail):
        following = f"tail_{k + 1}" if k + 1 < tail else "done"
        parts.append(f"  - id: tail_{k}\n    type: wait\n    duration: 1h\n    next: {following}")
    parts.append("  - id: done\n    type: end")
    (folder / "emails").mkdir()
    (folder / "emails" / "step.html.j2").write_text("<p>Hello {{ person.first_name }} at {{ account.name }}</p>\n")
    (folder / "other.yaml").write_text(OTHER)
    path = folder / "bench.yaml"
    path.write_text("\n".join(parts) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5, help="runs; the median is reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(Path(tmp), args.nodes)
        timings = []
        for _ in range(args.repeat):
            conditions.parsed.cache_clear()  # every run parses every expression, as a fresh process does
            started = time.perf_counter()
            plan = compile_file(path, load_workspace(path.parent))
            timings.append(time.perf_counter() - started)
        lines = path.read_text().count("\n")
        print(f"journey: {len(plan.nodes)} nodes, {lines} lines of YAML, version {plan.version}")
        print(f"runs: {', '.join(f'{t:.3f}' for t in timings)} s (load, check, build the Plan)")
        print(f"compile {len(plan.nodes)} nodes: {statistics.median(timings):.3f} s")


if __name__ == "__main__":
    main()
