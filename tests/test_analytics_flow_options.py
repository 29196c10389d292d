"""Flow options (issue 18): repeats included or excluded, the first or last milestone as the anchor, and a
milestone in the middle (contains), on SQLite and PostgreSQL, over a small event log written for them.

The log (2026-01-05, UTC), in the order it is recorded (so ids follow it); D is the demo form fill, the
milestone; `-` marks an event without a content_type:
- alpha: 09:00 blog, 09:01 blog, 09:02 email_open -, 09:03 blog, 09:04 pricing, 09:05 D, 09:06 pricing,
  09:07 pricing, 09:08 webinar, 09:09 D (a second milestone), 09:10 webinar, 09:11 blog.
- beta: four events at 10:00 (blog, pricing, D, pricing: the instant's order is the log's), then 10:02 blog
  recorded before 10:01 pricing.
- gamma: 11:00 D, 11:01 newsletter form fill -, 11:05 blog, 11:06 email_click -, 11:07 blog.
- delta: 12:00 blog, never a demo request (no anchor, not counted).

So, content_type values in log order around each anchor (the milestone itself has no content_type):
- alpha: blog blog blog pricing [D1] pricing pricing webinar [D2] webinar blog. Excluded repeats collapse
  the blogs across the email open, and, anchored at D2, the pricings across D1 (an event without a value).
- beta: blog pricing [D] pricing pricing blog.
- gamma: [D] blog blog (the email click between them has no value).

Every expected table below was worked out by hand from these lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import chromium, dump_dom
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import serving
from test_analytics_browser import TablesOnPage, expected_tables
from typer.testing import CliRunner

from engine.analytics.choices import Container, Direction, Occurrence, Repeats
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.flow import FlowReport, flow
from engine.analytics.page import figure_for
from engine.analytics.selectors import parse_selector
from engine.analytics.web import analytics_engine, router
from engine.cli import app
from engine.db import Account, ActivityEvent, init_db, make_engine

DEMO = "form_fill where event.form == 'demo'"
D = DEMO  # the milestone's label, as paths show it
NONE = Filters()
TOO_FEW_COLUMNS = "a flow containing a milestone needs at least 3 columns: one before it, its own, one after"
ONE_ANCHOR = "give exactly one of --starts-with, --ends-with and --contains"


def at(hour: int, minute: int) -> datetime:
    return datetime(2026, 1, 5, hour, minute, tzinfo=UTC)


def visit(content: str) -> tuple[str, dict[str, str]]:
    return "web_visit", {"content_type": content}


DEMO_FILL = ("form_fill", {"form": "demo"})
# account, time, (type, payload): in recording order.
EVENTS: list[tuple[str, datetime, tuple[str, dict[str, str]]]] = [
    ("alpha", at(9, 0), visit("blog")),
    ("alpha", at(9, 1), visit("blog")),
    ("alpha", at(9, 2), ("email_open", {"message": "m-1"})),
    ("alpha", at(9, 3), visit("blog")),
    ("alpha", at(9, 4), visit("pricing")),
    ("alpha", at(9, 5), DEMO_FILL),
    ("alpha", at(9, 6), visit("pricing")),
    ("alpha", at(9, 7), visit("pricing")),
    ("alpha", at(9, 8), visit("webinar")),
    ("alpha", at(9, 9), DEMO_FILL),
    ("alpha", at(9, 10), visit("webinar")),
    ("alpha", at(9, 11), visit("blog")),
    ("beta", at(10, 0), visit("blog")),
    ("beta", at(10, 0), visit("pricing")),
    ("beta", at(10, 0), DEMO_FILL),
    ("beta", at(10, 0), visit("pricing")),
    ("beta", at(10, 2), visit("blog")),
    ("beta", at(10, 1), visit("pricing")),
    ("gamma", at(11, 0), DEMO_FILL),
    ("gamma", at(11, 1), ("form_fill", {"form": "newsletter"})),
    ("gamma", at(11, 5), visit("blog")),
    ("gamma", at(11, 6), ("email_click", {"message": "m-2", "link": "blog"})),
    ("gamma", at(11, 7), visit("blog")),
    ("delta", at(12, 0), visit("blog")),
]


def load(engine: Engine) -> None:
    with Session(engine) as session:
        for account in ("alpha", "beta", "delta", "gamma"):
            session.add(Account(id=account, name=account.title(), domain=f"{account}.example"))
        session.flush()
        for number, (account, when, (kind, payload)) in enumerate(EVENTS):
            event = ActivityEvent(key=f"e{number:02}", type=kind, account_id=account, payload=payload, occurred_at=when)
            session.add(event)
            session.flush()  # ids in recording order
        session.commit()


@pytest.fixture
def log(engine: Engine) -> Engine:
    load(engine)
    return engine


Columns = list[list[tuple[str, int]]]
Links = list[tuple[int, str, str, int]]
Paths = list[tuple[int, list[str], int]]


def tables(report: FlowReport) -> tuple[Columns, Links, Paths]:
    return (
        [[(v.value, v.containers) for v in c.values] for c in report.columns],
        [(li.column, li.source, li.target, li.containers) for li in report.links],
        [(p.start_column, p.steps, p.containers) for p in report.paths],
    )


def demo_flow(engine: Engine, direction: Direction, columns: int, top: int = 5, **options: Any) -> FlowReport:
    return flow(
        engine, parse_selector(DEMO), direction, Container.account, NONE, "content_type", columns, top, **options
    )


class TestRepeats:
    def test_excluded_by_default_after_the_milestone(self, log: Engine) -> None:
        # alpha: pricing pricing webinar [D2] webinar blog -> pricing, webinar, blog; beta: pricing pricing blog
        # -> pricing, blog; gamma: blog blog -> blog.
        report = demo_flow(log, Direction.starts_with, 4)
        assert (report.repeats, report.occurrence, report.milestone_column, report.containers) == (
            Repeats.exclude,
            Occurrence.first,
            1,
            3,
        )
        assert tables(report) == (
            [[(D, 3)], [("pricing", 2), ("blog", 1)], [("blog", 1), ("webinar", 1)], [("blog", 1)]],
            [
                (1, D, "pricing", 2),
                (1, D, "blog", 1),
                (2, "pricing", "blog", 1),
                (2, "pricing", "webinar", 1),
                (3, "webinar", "blog", 1),
            ],
            [(1, [D, "blog"], 1), (1, [D, "pricing", "blog"], 1), (1, [D, "pricing", "webinar", "blog"], 1)],
        )

    def test_included_after_the_milestone(self, log: Engine) -> None:
        report = demo_flow(log, Direction.starts_with, 4, repeats=Repeats.include)
        assert tables(report) == (
            [[(D, 3)], [("pricing", 2), ("blog", 1)], [("pricing", 2), ("blog", 1)], [("blog", 1), ("webinar", 1)]],
            [
                (1, D, "pricing", 2),
                (1, D, "blog", 1),
                (2, "pricing", "pricing", 2),
                (2, "blog", "blog", 1),
                (3, "pricing", "blog", 1),
                (3, "pricing", "webinar", 1),
            ],
            [
                (1, [D, "blog", "blog"], 1),
                (1, [D, "pricing", "pricing", "blog"], 1),
                (1, [D, "pricing", "pricing", "webinar"], 1),
            ],
        )

    def test_excluded_across_events_without_a_value_before_the_milestone(self, log: Engine) -> None:
        # alpha: blog blog (email open) blog pricing [D1] -> blog, pricing; beta: blog pricing [D] at one instant.
        report = demo_flow(log, Direction.ends_with, 4)
        assert tables(report) == (
            [[], [("blog", 2)], [("pricing", 2)], [(D, 3)]],
            [(2, "blog", "pricing", 2), (3, "pricing", D, 2)],
            [(2, ["blog", "pricing", D], 2), (4, [D], 1)],
        )
        assert report.milestone_column == 4

    def test_included_before_the_milestone(self, log: Engine) -> None:
        report = demo_flow(log, Direction.ends_with, 4, repeats=Repeats.include)
        assert tables(report) == (
            [[("blog", 1)], [("blog", 2)], [("pricing", 2)], [(D, 3)]],
            [(1, "blog", "blog", 1), (2, "blog", "pricing", 2), (3, "pricing", D, 2)],
            [(1, ["blog", "blog", "pricing", D], 1), (2, ["blog", "pricing", D], 1), (4, [D], 1)],
        )

    def test_the_milestone_never_merges_with_a_neighbour(self, log: Engine) -> None:
        # By event type, gamma's demo request is followed by another form fill: two steps, not one. alpha:
        # web_visit x3, form_fill (D2), web_visit x2 after D1; beta: web_visit x3.
        report = flow(log, parse_selector("form_fill"), Direction.starts_with, Container.account, NONE, "type", 4)
        assert tables(report) == (
            [
                [("form_fill", 3)],
                [("web_visit", 2), ("form_fill", 1)],
                [("form_fill", 1), ("web_visit", 1)],
                [("email_click", 1), ("web_visit", 1)],
            ],
            [
                (1, "form_fill", "web_visit", 2),
                (1, "form_fill", "form_fill", 1),
                (2, "form_fill", "web_visit", 1),
                (2, "web_visit", "form_fill", 1),
                (3, "form_fill", "web_visit", 1),
                (3, "web_visit", "email_click", 1),
            ],
            [
                (1, ["form_fill", "form_fill", "web_visit", "email_click"], 1),
                (1, ["form_fill", "web_visit"], 1),
                (1, ["form_fill", "web_visit", "form_fill", "web_visit"], 1),
            ],
        )


class TestOccurrence:
    def test_last_milestone_after(self, log: Engine) -> None:
        # alpha anchors at D2 (09:09): webinar blog.
        report = demo_flow(log, Direction.starts_with, 3, occurrence=Occurrence.last)
        assert report.occurrence == Occurrence.last
        assert tables(report)[2] == [
            (1, [D, "blog"], 1),
            (1, [D, "pricing", "blog"], 1),
            (1, [D, "webinar", "blog"], 1),
        ]

    def test_last_milestone_before_collapses_across_the_first(self, log: Engine) -> None:
        # alpha before D2: webinar, pricing, pricing, (D1: no value), pricing, blog... -> webinar, pricing, blog.
        report = demo_flow(log, Direction.ends_with, 4, occurrence=Occurrence.last)
        assert tables(report) == (
            [[("blog", 1)], [("blog", 1), ("pricing", 1)], [("pricing", 1), ("webinar", 1)], [(D, 3)]],
            [
                (1, "blog", "pricing", 1),
                (2, "blog", "pricing", 1),
                (2, "pricing", "webinar", 1),
                (3, "pricing", D, 1),
                (3, "webinar", D, 1),
            ],
            [(2, ["blog", "pricing", D], 1), (1, ["blog", "pricing", "webinar", D], 1), (4, [D], 1)],
        )

    def test_last_milestone_before_with_repeats(self, log: Engine) -> None:
        report = demo_flow(log, Direction.ends_with, 4, occurrence=Occurrence.last, repeats=Repeats.include)
        assert tables(report)[2] == [
            (2, ["blog", "pricing", D], 1),
            (4, [D], 1),
            (1, ["pricing", "pricing", "webinar", D], 1),
        ]


class TestContains:
    def test_milestone_in_the_middle(self, log: Engine) -> None:
        # 5 columns: two before, the milestone in column 3, two after.
        report = demo_flow(log, Direction.contains, 5)
        assert (report.direction, report.milestone_column) == (Direction.contains, 3)
        assert tables(report) == (
            [[("blog", 2)], [("pricing", 2)], [(D, 3)], [("pricing", 2), ("blog", 1)], [("blog", 1), ("webinar", 1)]],
            [
                (1, "blog", "pricing", 2),
                (2, "pricing", D, 2),
                (3, D, "pricing", 2),
                (3, D, "blog", 1),
                (4, "pricing", "blog", 1),
                (4, "pricing", "webinar", 1),
            ],
            [
                (1, ["blog", "pricing", D, "pricing", "blog"], 1),
                (1, ["blog", "pricing", D, "pricing", "webinar"], 1),
                (3, [D, "blog"], 1),
            ],
        )

    def test_an_even_count_gives_the_extra_column_to_after(self, log: Engine) -> None:
        report = demo_flow(log, Direction.contains, 4)
        assert report.milestone_column == 2
        assert tables(report)[2] == [
            (2, [D, "blog"], 1),
            (1, ["pricing", D, "pricing", "blog"], 1),
            (1, ["pricing", D, "pricing", "webinar"], 1),
        ]

    def test_last_milestone_with_repeats(self, log: Engine) -> None:
        # alpha around D2: pricing webinar [D2] webinar blog; beta: blog pricing [D] pricing pricing; gamma: [D]
        # blog blog.
        report = demo_flow(log, Direction.contains, 5, occurrence=Occurrence.last, repeats=Repeats.include)
        assert tables(report) == (
            [
                [("blog", 1), ("pricing", 1)],
                [("pricing", 1), ("webinar", 1)],
                [(D, 3)],
                [("blog", 1), ("pricing", 1), ("webinar", 1)],
                [("blog", 2), ("pricing", 1)],
            ],
            [
                (1, "blog", "pricing", 1),
                (1, "pricing", "webinar", 1),
                (2, "pricing", D, 1),
                (2, "webinar", D, 1),
                (3, D, "blog", 1),
                (3, D, "pricing", 1),
                (3, D, "webinar", 1),
                (4, "blog", "blog", 1),
                (4, "pricing", "pricing", 1),
                (4, "webinar", "blog", 1),
            ],
            [
                (1, ["blog", "pricing", D, "pricing", "pricing"], 1),
                (3, [D, "blog", "blog"], 1),
                (1, ["pricing", "webinar", D, "webinar", "blog"], 1),
            ],
        )

    def test_rare_values_become_other_per_column(self, log: Engine) -> None:
        report = demo_flow(log, Direction.contains, 5, top=1)
        assert tables(report) == (
            [[("blog", 2)], [("pricing", 2)], [(D, 3)], [("pricing", 2), ("other", 1)], [("blog", 1), ("other", 1)]],
            [
                (1, "blog", "pricing", 2),
                (2, "pricing", D, 2),
                (3, D, "pricing", 2),
                (3, D, "other", 1),
                (4, "pricing", "blog", 1),
                (4, "pricing", "other", 1),
            ],
            [(1, ["blog", "pricing", D, "pricing", "blog"], 1)],
        )

    def test_the_sankey_keeps_the_milestone_in_the_middle(self, log: Engine) -> None:
        # 7 columns: 3 before, but no path reaches column 1; plotly alone would draw column 2 at the left edge.
        report = demo_flow(log, Direction.contains, 7)
        figure = figure_for(report)
        assert figure is not None
        node = figure.data[0].node
        placed = {(round(x, 4), label) for x, label in zip(node.x, node.label, strict=True)}
        assert placed == {
            (0.1733, "blog"),
            (0.3367, "pricing"),
            (0.5, D),
            (0.6633, "pricing"),
            (0.6633, "blog"),
            (0.8267, "blog"),
            (0.8267, "webinar"),
            (0.99, "blog"),
        }

    def test_needs_a_column_on_each_side(self, log: Engine) -> None:
        with pytest.raises(AnalyticsError) as raised:
            demo_flow(log, Direction.contains, 2)
        assert str(raised.value) == TOO_FEW_COLUMNS


# --- the same reports from the command line, over HTTP and in Chromium -----------------------------------

OPTIONS = [
    "--contains",
    DEMO,
    "--dimension",
    "content_type",
    "--columns",
    "5",
    "--occurrence",
    "last",
    "--repeats",
    "include",
]
QUERY = {"contains": DEMO, "dimension": "content_type", "columns": "5", "occurrence": "last", "repeats": "include"}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('flow-options') / 'flow.db'}")
    init_db(engine)
    load(engine)
    yield engine
    engine.dispose()


def cli_json(database: Engine, monkeypatch: pytest.MonkeyPatch, *extra: str) -> dict[str, Any]:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", database.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["analytics", "flow", *OPTIONS, "--json", *extra])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_cli_echoes_the_options(database: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    report = cli_json(database, monkeypatch)
    echoed = {key: report[key] for key in ("direction", "milestone", "milestone_column", "repeats", "occurrence")}
    assert echoed == {
        "direction": "contains",
        "milestone": DEMO,
        "milestone_column": 3,
        "repeats": "include",
        "occurrence": "last",
    }
    assert [(p["start_column"], p["steps"]) for p in report["paths"]][1] == (3, [D, "blog", "blog"])


def test_web_json_equals_cli_json(database: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    web = FastAPI()
    web.include_router(router)
    web.dependency_overrides[analytics_engine] = lambda: database
    with serving(web) as url:
        response = httpx.get(f"{url}/analytics/flow", params={**QUERY, "format": "json"}, timeout=30)
        mixed = httpx.get(f"{url}/analytics/flow", params={**QUERY, "starts_with": DEMO}, timeout=30)
        unknown = httpx.get(f"{url}/analytics/flow", params={**QUERY, "repeats": "twice"}, timeout=30)
    assert response.status_code == 200
    assert response.json() == cli_json(database, monkeypatch)
    assert (mixed.status_code, mixed.json()["detail"]) == (
        400,
        "give exactly one of starts_with, ends_with and contains",
    )
    assert unknown.status_code == 422


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--contains", DEMO, "--starts-with", DEMO], 2, f"journey: {ONE_ANCHOR}\n"),
        (["--contains", DEMO, "--columns", "2"], 1, f"journey: {TOO_FEW_COLUMNS}\n"),
    ],
)
def test_cli_mistakes(
    database: Engine, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", database.url.render_as_string(hide_password=False))
    result = CliRunner().invoke(app, ["analytics", "flow", *args])
    assert (result.exit_code, result.stderr) == (code, message)


def test_contains_page_in_chromium(database: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium draws the contains-anchored Sankey offline and the page's tables hold the --json numbers."""
    chromium()  # installs it, or skips with the reason
    page = tmp_path / "flow-contains.html"
    report = cli_json(database, monkeypatch, "--html", str(page))
    dom = dump_dom(page)
    parser = TablesOnPage()
    parser.feed(dom)
    assert parser.tables == expected_tables(report)
    assert len(parser.tables["links"]) == 10
    assert 'class="main-svg"' in dom and 'class="sankey-node' in dom
    assert "Flow of content_type around the last " in dom
