"""The broken-import corpus: each file under tests/broken_imports/ has one defect, and `journey import` must print
exactly the lines of its `.expect` file, exit as it says, never show a traceback, and write nothing.

A case is a data file (`NN_name.csv` or `.jsonl`) and `NN_name.expect` beside it:

    # journey import people tests/broken_imports/01_bad_email.csv
    # exit 1
    tests/broken_imports/01_bad_email.csv:2: column 'email': 'bob@' is not an email address (expected name@domain.tld)
    journey: 1 problem, nothing written: fix them and import again, or import the good rows with --skip-invalid

The first line is the command, the second its exit code, the rest is its standard error, line for line. Every
case runs in-process against a fresh SQLite database holding two accounts (acme-corp, beta) and one person
(ann@acme-corp.example); one test runs a few cases as a real process.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from engine.cli.app import app
from engine.db import Account, ActivityEvent, Opportunity, Person, init_db, make_engine

REPO = Path(__file__).resolve().parent.parent
BROKEN = REPO / "tests" / "broken_imports"
CASES = sorted(path for path in BROKEN.iterdir() if path.suffix != ".expect")
CLI_CASES = ("01_bad_email.csv", "14_map_without_equals.csv", "16_jsonl_bad_json.jsonl")


def expected(case: Path) -> tuple[list[str], int, list[str]]:
    """(the command's arguments after `journey`, its exit code, its standard error lines)."""
    command, exit_line, *lines = case.with_suffix(".expect").read_text(encoding="utf-8").splitlines()
    assert command.startswith("# journey ") and exit_line.startswith("# exit "), case
    return shlex.split(command.removeprefix("# journey ")), int(exit_line.removeprefix("# exit ")), lines


def seeded(folder: Path) -> str:
    url = f"sqlite:///{folder / 'journey.db'}"
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        session.add(Account(id="acme-corp", name="Acme Corp", domain="acme-corp.example"))
        session.add(Account(id="beta", name="Beta", domain="beta.example"))
        session.commit()
        session.add(Person(account_id="acme-corp", email="ann@acme-corp.example"))
        session.commit()
    engine.dispose()
    return url


def dump(url: str) -> list[Any]:
    engine = make_engine(url)
    with Session(engine) as session:
        rows = [
            *(row.model_dump() for row in session.exec(select(Account).order_by(col(Account.id)))),
            *(row.model_dump() for row in session.exec(select(Person).order_by(col(Person.id)))),
            *(row.model_dump() for row in session.exec(select(Opportunity))),
            *(row.model_dump() for row in session.exec(select(ActivityEvent))),
        ]
    engine.dispose()
    return rows


def test_corpus_is_complete() -> None:
    """At least 25 cases, each data file with its expectations naming it, each expecting at least one line."""
    assert len(CASES) >= 25
    for case in CASES:
        args, _, lines = expected(case)
        assert str(case.relative_to(REPO)) in args, case
        assert lines, case
    assert sorted(path.with_suffix("") for path in BROKEN.glob("*.expect")) == [case.with_suffix("") for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_reports_exactly_the_expected_lines_and_writes_nothing(
    case: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    url = seeded(tmp_path)
    before = dump(url)
    args, code, lines = expected(case)
    result = CliRunner().invoke(app, args, env={"JOURNEY_DATABASE_URL": url})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stdout + result.stderr
    assert (result.exit_code, result.stderr.splitlines(), result.stdout) == (code, lines, "")
    assert dump(url) == before


def test_the_real_command_prints_the_same() -> None:
    """Run as a process, `journey import` prints the same lines and exits with the same codes."""
    for name in CLI_CASES:
        args, code, lines = expected(BROKEN / name)
        with_home = {"JOURNEY_DATABASE_URL": "sqlite://", "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=with_home,
            timeout=60,
        )
        assert (result.returncode, result.stderr.splitlines(), result.stdout) == (code, lines, ""), name
