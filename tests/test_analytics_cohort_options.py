"""Cohort options (issue 18): CJA's returns after the inclusion period, quarter and year grains, churn, latency
and side-by-side cohorts (--by), against tables computed by hand from tests/cohort_options_data.py, on SQLite and
PostgreSQL; the web's JSON equals the CLI's; mistakes are refused the same way by both."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cohort_options_data import JOURNEY, load
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account, serving
from typer.testing import CliRunner

from engine.analytics.choices import Container, Grain
from engine.analytics.cohort import CohortReport, cohort
from engine.analytics.cohort_rows import CohortRow
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.selectors import parse_selector
from engine.analytics.web import analytics_engine, router
from engine.cli import app
from engine.db import ActivityEvent, utcnow

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)

Rows = list[tuple[str, int, list[int]]]


@pytest.fixture
def data(engine: Engine, tmp_path: Path) -> Engine:
    load(engine, tmp_path / "journeys")
    return engine


def run(engine: Engine, grain: Grain = Grain.month, periods: int = 4, **options: Any) -> CohortReport:
    container = options.pop("container", Container.account)
    filters = Filters(journey=options.pop("journey", None))
    selectors = parse_selector("form_fill"), parse_selector("web_visit")
    return cohort(engine, *selectors, container, filters, grain, periods, **options)


def counts(rows: list[CohortRow] | None) -> Rows:
    assert rows is not None
    return [(row.cohort, row.size, row.counts) for row in rows]


def groups(report: CohortReport, table: str = "rows") -> dict[str, Rows]:
    assert report.groups is not None
    return {group.value: counts(getattr(group, table)) for group in report.groups}


class TestReturnsAfterInclusion:
    """Today's way counts returns after the inclusion event from period 0; CJA's way makes period 0 the cohort."""

    @pytest.mark.parametrize(
        ("after_inclusion", "rolling", "expected"),
        [
            (False, False, [[1, 1, 2, 0], [1, 1, 1, 2], [0, 1, 1, 0]]),
            (False, True, [[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]),
            (True, False, [[2, 1, 2, 0], [2, 1, 1, 2], [1, 1, 1, 0]]),
            (True, True, [[2, 1, 1, 0], [2, 1, 1, 1], [1, 1, 1, 0]]),
        ],
    )
    def test_months(self, data: Engine, after_inclusion: bool, rolling: bool, expected: list[list[int]]) -> None:
        report = run(data, rolling=rolling, returns_after_inclusion=after_inclusion)
        cohorts = [("2025-01-01", 2), ("2025-02-01", 2), ("2025-11-01", 1)]
        assert counts(report.rows) == [(c, size, row) for (c, size), row in zip(cohorts, expected, strict=True)]
        assert report.returns_after_inclusion is after_inclusion
        assert (report.churn, report.latency, report.groups) == (None, None, None)

    def test_percents_of_the_size(self, data: Engine) -> None:
        report = run(data, returns_after_inclusion=True)
        assert report.rows[0].percents == [100.0, 50.0, 100.0, 0.0]

    def test_containers_that_never_return_are_in_the_cohort(self, engine: Engine) -> None:
        # Three accounts fill the form on 2025-03-03; only `back` visits, a month later (period 1).
        included = datetime(2025, 3, 3, tzinfo=UTC)
        events = [(name, "form_fill", included) for name in ("quiet-1", "quiet-2", "back")]
        events.append(("back", "web_visit", included + timedelta(days=31)))
        with Session(engine) as session:
            for name in ("quiet-1", "quiet-2", "back"):
                add_account(engine, name)
            for n, (account, kind, moment) in enumerate(events):
                session.add(ActivityEvent(key=f"q{n}", type=kind, account_id=account, payload={}, occurred_at=moment))
            session.commit()
        report = run(engine, returns_after_inclusion=True, churn=True, latency=True)
        assert counts(report.rows) == [("2025-03-01", 3, [3, 1, 0, 0])]
        assert counts(report.churn) == [("2025-03-01", 3, [0, 2, 3, 3])]
        assert counts(report.latency) == [("2025-03-01", 3, [0, 0, 0, 3, 1, 0, 0])]
        assert counts(run(engine).rows) == [("2025-03-01", 3, [0, 1, 0, 0])]


class TestGrains:
    """Calendar quarters and years (UTC): a2's return at 00:30 on February 1st is in its inclusion quarter."""

    @pytest.mark.parametrize(("after_inclusion", "first"), [(False, [3, 2, 0]), (True, [4, 2, 0])])
    def test_quarters(self, data: Engine, after_inclusion: bool, first: list[int]) -> None:
        report = run(data, Grain.quarter, 3, returns_after_inclusion=after_inclusion, latency=True)
        assert counts(report.rows) == [("2025-01-01", 4, first), ("2025-10-01", 1, [1, 1, 0])]
        assert report.rows[0].percents == [100.0 * count / 4 for count in first]
        zero = 4 if after_inclusion else 3
        assert counts(report.latency) == [("2025-01-01", 4, [0, 2, zero, 2, 0]), ("2025-10-01", 1, [0, 0, 1, 1, 0])]

    def test_years(self, data: Engine) -> None:
        report = run(data, Grain.year, 2, churn=True, latency=True)
        assert counts(report.rows) == [("2025-01-01", 5, [5, 1])]
        assert counts(report.churn) == [("2025-01-01", 5, [0, 4])]
        assert counts(report.latency) == [("2025-01-01", 5, [2, 5, 1])]
        assert report.latency is not None and report.latency[0].percents == [40.0, 100.0, 20.0]
        assert report.latency_periods == [-1, 0, 1]


class TestChurn:
    """Churn is the cohort's size less the retention count, rolling or not, in either way of counting."""

    @pytest.mark.parametrize(
        ("after_inclusion", "rolling", "expected"),
        [
            (False, False, [[1, 1, 0, 2], [1, 1, 1, 0], [1, 0, 0, 1]]),
            (False, True, [[1, 2, 2, 2], [1, 1, 1, 1], [1, 1, 1, 1]]),
            (True, False, [[0, 1, 0, 2], [0, 1, 1, 0], [0, 0, 0, 1]]),
            (True, True, [[0, 1, 1, 2], [0, 1, 1, 1], [0, 0, 0, 1]]),
        ],
    )
    def test_months(self, data: Engine, after_inclusion: bool, rolling: bool, expected: list[list[int]]) -> None:
        report = run(data, rolling=rolling, returns_after_inclusion=after_inclusion, churn=True)
        assert [row for _, _, row in counts(report.churn)] == expected
        assert report.churn is not None and report.churn[0].percents == [100.0 * n / 2 for n in expected[0]]


class TestLatency:
    """Returns in the periods before and after inclusion; the inclusion period counts as the retention table."""

    @pytest.mark.parametrize(
        ("after_inclusion", "expected"),
        [
            (False, [[0, 1, 1, 1, 1, 2, 0], [0, 0, 1, 1, 1, 1, 2], [0, 0, 0, 0, 1, 1, 0]]),
            (True, [[0, 1, 1, 2, 1, 2, 0], [0, 0, 1, 2, 1, 1, 2], [0, 0, 0, 1, 1, 1, 0]]),
        ],
    )
    def test_months(self, data: Engine, after_inclusion: bool, expected: list[list[int]]) -> None:
        # a1's visit on January 5th is in its inclusion month but before its inclusion: in no column.
        report = run(data, returns_after_inclusion=after_inclusion, latency=True)
        assert report.latency_periods == [-3, -2, -1, 0, 1, 2, 3]
        assert [row for _, _, row in counts(report.latency)] == expected

    def test_periods_not_begun_are_zero_in_every_table(self, engine: Engine) -> None:
        add_account(engine, "now")
        with Session(engine) as session:
            for n, (kind, days) in enumerate([("form_fill", 0), ("web_visit", 1e-5), ("web_visit", 400)]):
                moment = utcnow() + timedelta(days=days)
                session.add(ActivityEvent(key=f"f{n}", type=kind, account_id="now", payload={}, occurred_at=moment))
            session.commit()
        report = run(engine, Grain.year, 3, churn=True, latency=True)
        assert counts(report.rows) == [(report.rows[0].cohort, 1, [1, 0, 0])]
        assert counts(report.churn)[0][2] == [0, 0, 0]  # next year's churn is not known yet
        assert counts(report.latency)[0][2] == [0, 0, 1, 0, 0]


class TestBy:
    """One set of tables per value of the dimension, sorted, '(none)' last."""

    def test_industry(self, data: Engine) -> None:
        report = run(data, by="industry", churn=True)
        assert groups(report) == {
            "Agriculture": [("2025-01-01", 1, [1, 0, 1, 0]), ("2025-02-01", 1, [0, 0, 0, 1])],
            "Software": [("2025-01-01", 1, [0, 1, 1, 0]), ("2025-11-01", 1, [0, 1, 1, 0])],
            "(none)": [("2025-02-01", 1, [1, 1, 1, 1])],
        }
        assert list(groups(report)) == ["Agriculture", "Software", "(none)"]
        assert groups(report, "churn")["Agriculture"] == [
            ("2025-01-01", 1, [0, 1, 0, 1]),
            ("2025-02-01", 1, [1, 1, 1, 0]),
        ]
        assert counts(report.rows)[0] == ("2025-01-01", 2, [1, 1, 2, 0])  # the whole cohort is still there

    @pytest.mark.parametrize("container", [Container.account, Container.buying_group])
    def test_solution_interest(self, data: Engine, container: Container) -> None:
        """a1 has two interests and is in both; a buying group has its own."""
        report = run(data, by="solution_interest", returns_after_inclusion=True, container=container)
        expected = {
            "irrigation": [("2025-01-01", 1, [1, 0, 1, 0]), ("2025-11-01", 1, [1, 1, 1, 0])],
            "seeds": [("2025-01-01", 2, [2, 1, 2, 0])],
        }
        if container is Container.account:
            expected["(none)"] = [("2025-02-01", 2, [2, 1, 1, 2])]
        else:
            assert counts(report.rows) == [("2025-01-01", 3, [3, 1, 3, 0]), ("2025-11-01", 1, [1, 1, 1, 0])]
        assert groups(report) == expected

    def test_variant(self, data: Engine) -> None:
        report = run(data, by="variant", journey=JOURNEY, latency=True)
        assert (report.by, report.split) == ("variant", "test")
        assert groups(report) == {
            "A": [("2025-01-01", 1, [1, 0, 1, 0]), ("2025-02-01", 1, [1, 1, 1, 1])],
            "control": [("2025-01-01", 1, [0, 1, 1, 0])],
            "(none)": [("2025-02-01", 1, [0, 0, 0, 1])],
        }
        assert groups(report, "latency")["control"] == [("2025-01-01", 1, [0, 1, 0, 0, 1, 1, 0])]

    def test_too_many_values(self, engine: Engine) -> None:
        for n in range(51):
            add_account(engine, f"acct-{n:02}")
        with Session(engine) as session:
            for n in range(51):
                moment = utcnow() - timedelta(days=1)
                session.add(
                    ActivityEvent(
                        key=f"k{n}", type="form_fill", account_id=f"acct-{n:02}", payload={}, occurred_at=moment
                    )
                )
            session.commit()
        with pytest.raises(AnalyticsError, match="--by id has 51 values among the included accounts, at most 50"):
            run(engine, by="id")
        assert list(groups(run(engine, by="industry"))) == ["Agriculture"]


MISTAKES = [
    ({"by": "industy"}, "unknown dimension 'industy' (did you mean 'industry'?): use variant, solution_interest or an"),
    ({"split": "test"}, "--split chooses the A/B test for --by variant: give --by variant too"),
    ({"by": "variant"}, "a breakdown by variant needs --journey"),
    ({"by": "variant", "journey": JOURNEY, "split": "tset"}, f"journey '{JOURNEY}' has no variant_split 'tset'"),
]


def cli_args(options: Mapping[str, str | bool]) -> list[str]:
    args = ["analytics", "cohort", "--include", "form_fill", "--return", "web_visit"]
    for name, value in options.items():
        flag = f"--{name.replace('_', '-')}"
        args += [flag] if value is True else [flag, str(value)]
    return args


@pytest.fixture
def served(data: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", data.url.render_as_string(hide_password=False))
    api = FastAPI()
    api.include_router(router)
    api.dependency_overrides[analytics_engine] = lambda: data
    with serving(api) as base:
        yield base


@pytest.mark.parametrize(
    "options",
    [
        {"returns_after_inclusion": True, "rolling": True, "churn": True, "latency": True, "by": "industry"},
        {"grain": "quarter", "periods": "3", "latency": True, "by": "variant", "journey": JOURNEY, "split": "test"},
    ],
)
def test_web_json_equals_cli_json(served: str, options: dict[str, str | bool]) -> None:
    printed = CliRunner().invoke(app, [*cli_args(options), "--json"])
    assert printed.exit_code == 0, printed.output
    query = {"include": "form_fill", "return": "web_visit", "format": "json"}
    query |= {name: "true" if value is True else str(value) for name, value in options.items()}
    answer = httpx.get(f"{served}/analytics/cohort", params=query, timeout=30)
    assert answer.status_code == 200 and answer.json() == json.loads(printed.stdout)
    assert answer.json()["groups"]


@pytest.mark.parametrize(("options", "message"), MISTAKES)
def test_mistakes_are_refused_alike(served: str, options: dict[str, str], message: str) -> None:
    printed = CliRunner().invoke(app, cli_args(options))
    assert printed.exit_code == 1 and f"journey: {message}" in printed.stderr, printed.output
    query = {"include": "form_fill", "return": "web_visit", **options}
    answer = httpx.get(f"{served}/analytics/cohort", params=query, timeout=30)
    assert answer.status_code == 400 and answer.json()["detail"].startswith(message)
