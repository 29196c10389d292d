"""The broken-journey corpus: each case under tests/broken/ has one defect, and validation must report
exactly the problems its `# expect:` header lines list, with the right line and column.

A case is either a journey file `tests/broken/NN_name.yaml` (it shares the folder's valid
buying_groups.yaml, services.yaml and emails/), or a folder `tests/broken/<name>/` whose own
buying_groups.yaml or services.yaml is broken. The expected lines sit at the top of the file whose
defect they describe, one `# expect: path:line:col: message` comment per line, paths relative to the
repository root; a folder's expectations are those of its files in name order. Every position was
counted by hand, so a test failing here may mean the validator points at the wrong place.

All cases run in-process through `catalog.validate` (what the CLI calls); one subprocess test runs the
real `journey validate` on a few cases to pin the CLI's output, summary line and exit code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.language import catalog
from engine.language.workspace import load_workspace

REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "tests" / "broken"
EXPECT = "# expect: "
LOCATION = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): ")
SUMMARY = re.compile(r"^(?P<problems>\d+) problems? in (?P<files>\d+) journey file\(s\)$")

CASES = sorted(
    [path for path in BROKEN.glob("*.yaml") if path.name not in catalog.NOT_JOURNEYS]
    + [path for path in BROKEN.iterdir() if path.is_dir() and path.name != "emails"]
)
CLI_CASES = ("19_unknown_on_event.yaml", "45_template_syntax_error.yaml", "bg_bad_rule")


def _header(path: Path) -> list[str]:
    """The `# expect:` lines at the top of one file, without the prefix."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith(EXPECT):
            break
        lines.append(line.removeprefix(EXPECT))
    return lines


def expected(case: Path) -> list[str]:
    """Every problem line a case must produce, in the order `journey validate` prints them."""
    if case.is_file():
        return _header(case)
    return [line for path in sorted(case.glob("*.yaml")) for line in _header(path)]


def _location(line: str) -> tuple[str, int, int]:
    match = LOCATION.match(line)
    assert match is not None, f"not a 'path:line:col: message' line: {line}"
    return match["path"], int(match["line"]), int(match["col"])


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_corpus_is_complete() -> None:
    """The corpus has at least 45 cases and every case states at least one expected problem."""
    assert len(CASES) >= 45
    assert [case.name for case in CASES if not expected(case)] == []


def test_shared_workspace_is_valid() -> None:
    """The buying groups and services the journey cases share are themselves free of problems."""
    workspace = load_workspace(BROKEN)
    assert workspace.has_buying_groups_file and workspace.has_services_file
    assert [issue.render() for issue in workspace.issues] == []


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_expected_positions_exist(case: Path) -> None:
    """Every expected line names a file of the case and a line and column that exist in that file."""
    for line in expected(case):
        path, number, col = _location(line)
        file = REPO / path
        assert file.is_file(), line
        assert file == case or file.is_relative_to(case if case.is_dir() else BROKEN / "emails"), line
        lines = file.read_text(encoding="utf-8").splitlines() or [""]
        assert 1 <= number <= len(lines), line
        assert 1 <= col <= len(lines[number - 1]) + 1, line


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_reports_exactly_the_expected_problems(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating the case reports exactly its `# expect:` lines, in order, and nothing else."""
    monkeypatch.chdir(REPO)
    result = catalog.validate([case.relative_to(REPO)])
    assert [issue.render() for issue in result.issues] == expected(case)


def test_cli_prints_problems_summary_and_exits_1() -> None:
    """`journey validate` prints each problem and a count on stderr, exits 1, and never a traceback."""
    cases = [BROKEN / name for name in CLI_CASES]
    result = _run_cli("validate", *(str(case.relative_to(REPO)) for case in cases))
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    *problems, summary = result.stderr.splitlines()
    wanted = sorted((line for case in cases for line in expected(case)), key=_location)
    assert problems == wanted
    counted = SUMMARY.match(summary)
    assert counted is not None, summary
    journey_files = sum(len(catalog.journey_files(case)) if case.is_dir() else 1 for case in cases)
    assert (int(counted["problems"]), int(counted["files"])) == (len(wanted), journey_files)


def test_example_journeys_are_valid() -> None:
    """`journey validate journeys/` exits 0 and reports every example journey as ok."""
    result = _run_cli("validate", "journeys/")
    assert "Traceback" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == len(catalog.journey_files(REPO / "journeys"))
    assert all(line.startswith("ok  journeys/") for line in result.stdout.splitlines())
