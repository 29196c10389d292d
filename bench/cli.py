"""How fast the `journey` command answers: the median wall time of `journey validate` on an example journey
and of `journey --help`, each run as a fresh process, as a marketer or a script runs it.

    python bench/cli.py [--runs 10]

Prints every run's time, the CPU time (user + system) of the median run, and then the last line
`cli: validate X.XX s, help Y.YY s`. Target: both under 0.3 s on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOURNEY = "journeys/ai_seed_abm.yaml"


def journey_command() -> list[str]:
    """The installed `journey` script beside this Python, as users run it; `python -m engine.cli` otherwise."""
    script = Path(sys.executable).parent / "journey"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one run; a failing command stops the benchmark."""
    before = os.times()
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def measure(name: str, command: list[str], runs: int) -> float:
    timed(command)  # a first run writes bytecode caches: not what a user sees after the first time
    samples = [timed(command) for _ in range(runs)]
    walls = [wall for wall, _ in samples]
    median = statistics.median(walls)
    cpu = statistics.median(cpu for _, cpu in samples)
    print(f"{name}: median {median:.3f} s wall, {cpu:.3f} s CPU; runs {', '.join(f'{w:.2f}' for w in walls)}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    base = journey_command()
    validate = measure(f"journey validate {JOURNEY}", [*base, "validate", JOURNEY], args.runs)
    help_ = measure("journey --help", [*base, "--help"], args.runs)
    print(f"cli: validate {validate:.2f} s, help {help_:.2f} s")


if __name__ == "__main__":
    main()
