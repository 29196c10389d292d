"""Documented behaviours of the reports checked against an outside data set (issue 18): cohort periods after today
are 0, an end node is left by '(ended)', an empty time range and an unknown journey are mistakes, and the CLI bounds
what it is asked for as the web does. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account, serving, write_journey
from typer.testing import CliRunner

from engine.analytics.choices import Container, Grain
from engine.analytics.cohort import cohort
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.nodes import ENDED, node_counts
from engine.analytics.selectors import parse_selector
from engine.cli import app
from engine.db import ActivityEvent, utcnow
from engine.runtime import publish

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def _event(engine: Engine, key: str, type_: str, account: str, days: float, **fields: object) -> None:
    payload = fields.pop("payload", {})
    with Session(engine) as session:
        session.add(
            ActivityEvent(
                key=key,
                type=type_,
                account_id=account,
                payload=payload,
                occurred_at=utcnow() + timedelta(days=days),
                **fields,  # type: ignore[arg-type]
            )
        )
        session.commit()


def test_cohort_periods_after_today_are_zero(engine: Engine) -> None:
    """Events stamped in the future (clock skew, imported plans) do not fill periods that have not begun."""
    add_account(engine, "early")
    _event(engine, "i", "opportunity_created", "early", 0)
    for n, days in enumerate((1e-5, 3, 40, 75)):
        _event(engine, f"r{n}", "web_visit", "early", days)
    report = cohort(
        engine,
        parse_selector("opportunity_created"),
        parse_selector("web_visit"),
        Container.account,
        Filters(),
        grain=Grain.day,
        periods=90,
    )
    (row,) = report.rows
    assert row.counts[0] == 1 and sum(row.counts[1:]) == 0  # days 3, 40 and 75 have not come yet


def test_the_end_node_is_left_by_ended(engine: Engine, tmp_path: Path) -> None:
    plan = write_journey(
        tmp_path,
        "- id: pause\n  type: wait\n  duration: 1d\n  next: done\n- id: done\n  type: end\n",
        start="pause",
        journey="ends",
    )
    publish.store_version(engine, plan)
    add_account(engine, "acme-corp")
    for n, (kind, node, node_type, branch) in enumerate(
        [
            ("node_entered", "pause", "wait", None),
            ("node_left", "pause", "wait", "next"),
            ("node_entered", "done", "end", None),
            ("node_left", "done", "end", "end"),
        ]
    ):
        payload = {"node_type": node_type, "visit": 1, "branch": branch, "version": plan.version}
        _event(engine, f"s{n}", kind, "acme-corp", -1 + n / 10, journey_id="ends", node_id=node, payload=payload)
    counts = {count.node: count.left for count in node_counts(engine, "ends", Filters()).nodes}
    assert counts == {"pause": {"next": 1}, "done": {ENDED: 1}}


def test_unknown_journey_and_empty_ranges_are_mistakes(engine: Engine) -> None:
    with pytest.raises(AnalyticsError, match="unknown journey 'nowhere'"):
        node_counts(engine, "nowhere", Filters())
    now = utcnow()
    with pytest.raises(AnalyticsError, match="must be before until"):
        Filters(since=now, until=now - timedelta(days=1))
    with pytest.raises(AnalyticsError, match="at most 120 periods"):
        cohort(
            engine,
            parse_selector("form_fill"),
            parse_selector("form_fill"),
            Container.account,
            Filters(),
            periods=100_000_000,
        )


def test_cli_and_web_refuse_what_they_cannot_answer(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import FastAPI

    from engine.analytics.web import router

    monkeypatch.setenv("JOURNEY_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    runner = CliRunner()
    cohort_args = ["analytics", "cohort", "--include", "form_fill", "--return", "form_fill"]
    for args, code, said in [
        ([*cohort_args, "--periods", "100000000"], 2, "--periods"),
        (["analytics", "flow", "--starts-with", "form_fill", "--columns", "100000"], 2, "--columns"),
        (["analytics", "flow", "--starts-with", "form_fill", "--top", "100000"], 2, "--top"),
        (["analytics", "nodes", "nowhere"], 1, "journey: unknown journey 'nowhere'"),
        ([*cohort_args, "--since", "2026-03-01", "--until", "2026-02-01"], 1, "must be before until"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == code and said in result.stderr, (args, result.output)
        assert result.stdout == ""
    api = FastAPI()
    api.include_router(router)
    with serving(api) as base:
        answer = httpx.get(
            f"{base}/analytics/canvas",
            params={"step": "form_fill", "since": "2026-03-01", "until": "2026-02-01", "format": "json"},
        )
        assert answer.status_code == 400 and "must be before until" in answer.json()["detail"]
        answer = httpx.get(f"{base}/analytics/nodes", params={"journey": "nowhere", "format": "json"})
        assert answer.status_code in (400, 404) and "unknown journey" in answer.text
