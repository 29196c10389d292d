"""The branching canvas (issue 18): hand-computed counts on a small log with branches, merges, a skipped node,
events recorded out of order and ties at one instant, on SQLite and PostgreSQL; the definition's checks; the
CLI's and the web's JSON; and Chromium showing the page's numbers equal to `--json`.

The canvas of the hand-computed tests (hours after 2026-03-02 00:00 UTC; `order` is the order recorded):

    visit (web_visit) ──> lead (form_fill where form == 'lead') ──> opp (opportunity_created)
         └──────────────> webinar (web_visit where content_type == 'webinar') ──┘
    click (email_click) ──> lead
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from analytics_support import loaded_database
from browser import chromium, dump_dom, screenshot
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session
from support import add_account, serving
from test_analytics_browser import DOCS, TablesOnPage
from typer.testing import CliRunner

from engine.analytics import canvas_graph
from engine.analytics.branching import branching
from engine.analytics.canvas import canvas
from engine.analytics.choices import Container
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.selectors import parse_selector
from engine.analytics.web import analytics_engine, router
from engine.cli import app
from engine.db import ActivityEvent, init_db, make_engine

T0 = datetime(2026, 3, 2, tzinfo=UTC)
LEAD = "form_fill where event.form == 'lead'"
WEBINAR = "web_visit where event.content_type == 'webinar'"
NODES = [
    ("visit", "web_visit"),
    ("lead", LEAD),
    ("webinar", WEBINAR),
    ("opp", "opportunity_created"),
    ("click", "email_click"),
]
EDGES = [("visit", "lead"), ("visit", "webinar"), ("lead", "opp"), ("webinar", "opp"), ("click", "lead")]
BLOG, WEB = {"content_type": "blog"}, {"content_type": "webinar"}
FORM = {"form": "lead"}

# account, hours, type, payload — in the order recorded (so the log's ids follow this list).
EVENTS: list[tuple[str, float, str, dict[str, Any]]] = [
    # alpha: visit 1 -> lead 2 -> opp 5
    ("alpha", 1, "web_visit", BLOG),
    ("alpha", 2, "form_fill", FORM),
    ("alpha", 5, "opportunity_created", {}),
    # bravo: its first visit is a webinar, which counts for visit only; webinar at its second one, 3; opp 4
    ("bravo", 1, "web_visit", WEB),
    ("bravo", 3, "web_visit", WEB),
    ("bravo", 4, "opportunity_created", {}),
    # charlie skips lead and webinar: its opportunity does not count
    ("charlie", 1, "web_visit", BLOG),
    ("charlie", 2, "opportunity_created", {}),
    # delta, recorded out of order: opp 6 first, then visit 3, lead 4, and a form at 0.5 (before the visit)
    ("delta", 6, "opportunity_created", {}),
    ("delta", 3, "web_visit", BLOG),
    ("delta", 4, "form_fill", FORM),
    ("delta", 0.5, "form_fill", FORM),
    # echo: everything at 2; the opportunity was recorded before the lead, so it is not after it
    ("echo", 2, "opportunity_created", {}),
    ("echo", 2, "web_visit", BLOG),
    ("echo", 2, "form_fill", FORM),
    # foxtrot starts from the click: click 1 -> lead 2 -> opp 3
    ("foxtrot", 1, "email_click", {}),
    ("foxtrot", 2, "form_fill", FORM),
    ("foxtrot", 3, "opportunity_created", {}),
    # golf takes both branches: visit 1, webinar 2, lead 3, opp 4 (through lead and through webinar)
    ("golf", 1, "web_visit", BLOG),
    ("golf", 2, "web_visit", WEB),
    ("golf", 3, "form_fill", FORM),
    ("golf", 4, "opportunity_created", {}),
    # hotel reaches lead through click at 1.5 (through visit only at 4): opp 3 follows lead
    ("hotel", 1, "email_click", {}),
    ("hotel", 1.5, "form_fill", FORM),
    ("hotel", 2, "web_visit", BLOG),
    ("hotel", 3, "opportunity_created", {}),
    ("hotel", 4, "form_fill", FORM),
    # india enters no start node
    ("india", 1, "opportunity_created", {}),
]

# node: containers, entered, from start %, previous, from previous %, fallout, fallout %
NODE_TABLE: dict[str, tuple[int, int, float | None, int | None, float | None, int | None, float | None]] = {
    "visit": (7, 7, 100.0, None, None, 1, 14.3),  # charlie goes on along neither edge
    "click": (2, 2, 100.0, None, None, 0, 0.0),
    "lead": (6, 8, 75.0, 8, 75.0, 1, 16.7),  # alpha delta echo foxtrot golf hotel; echo falls out
    "webinar": (2, 7, 28.6, 7, 28.6, 0, 0.0),  # bravo golf
    "opp": (6, 8, 75.0, 7, 85.7, None, None),  # alpha bravo delta foxtrot golf hotel
}
# edge: containers, from previous %, median seconds
EDGE_TABLE: dict[tuple[str, str], tuple[int, float | None, float | None]] = {
    ("visit", "lead"): (5, 71.4, 3600.0),  # alpha 1h, delta 1h, echo 0, golf 2h, hotel 2h
    ("visit", "webinar"): (2, 28.6, 5400.0),  # bravo 2h, golf 1h
    ("click", "lead"): (2, 100.0, 2700.0),  # foxtrot 1h, hotel 0.5h
    ("lead", "opp"): (5, 83.3, 5400.0),  # alpha 3h, delta 2h, foxtrot 1h, golf 1h, hotel 1.5h
    ("webinar", "opp"): (2, 100.0, 5400.0),  # bravo 1h, golf 2h
}


def load_events(engine: Engine) -> None:
    for account in dict.fromkeys(account for account, *_ in EVENTS):
        add_account(engine, account)
    with Session(engine) as session:
        for number, (account, hours, type_, payload) in enumerate(EVENTS):
            when = T0 + timedelta(hours=hours)
            session.add(
                ActivityEvent(key=f"e{number}", type=type_, account_id=account, payload=payload, occurred_at=when)
            )
            session.flush()  # one insert at a time: the log's ids follow the list
        session.commit()


def definition() -> canvas_graph.CanvasGraph:
    return canvas_graph.from_options([f"{n}={s}" for n, s in NODES], [f"{a}:{b}" for a, b in EDGES])


class TestCounts:
    """Hand-computed nodes and edges, identical on SQLite and PostgreSQL."""

    @pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
    def test_nodes_and_edges(self, engine: Engine) -> None:
        load_events(engine)
        report = branching(engine, definition(), Container.account, Filters())
        assert [n.node for n in report.nodes] == ["visit", "click", "lead", "webinar", "opp"]  # by layer
        assert {
            n.node: (
                n.containers,
                n.entered,
                n.from_start_pct,
                n.previous,
                n.from_previous_pct,
                n.fallout,
                n.fallout_pct,
            )
            for n in report.nodes
        } == NODE_TABLE
        assert [(e.source, e.target) for e in report.edges] == [
            ("visit", "lead"),
            ("visit", "webinar"),
            ("click", "lead"),
            ("lead", "opp"),
            ("webinar", "opp"),
        ]
        assert {(e.source, e.target): (e.containers, e.from_previous_pct, e.median_seconds) for e in report.edges} == (
            EDGE_TABLE
        )

    @pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
    def test_a_selector_evaluated_in_python(self, engine: Engine) -> None:
        """A `where` SQL cannot say (a filter) selects the same events, so the canvas is the same."""
        load_events(engine)
        nodes = [(n, "form_fill where event.form | lower == 'lead'" if n == "lead" else s) for n, s in NODES]
        graph = canvas_graph.from_options([f"{n}={s}" for n, s in nodes], [f"{a}:{b}" for a, b in EDGES])
        report = branching(engine, graph, Container.account, Filters())
        assert {n.node: n.containers for n in report.nodes} == {n: row[0] for n, row in NODE_TABLE.items()}
        assert {(e.source, e.target): e.median_seconds for e in report.edges} == {
            k: v[2] for k, v in EDGE_TABLE.items()
        }

    @pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
    def test_filters_narrow_the_log(self, engine: Engine) -> None:
        """From 2:00 on: first visits at 2 (echo, hotel) or 3 (bravo, delta) only; clicks and forms before are gone."""
        load_events(engine)
        report = branching(engine, definition(), Container.account, Filters(since=T0 + timedelta(hours=2)))
        counts = {n.node: n.containers for n in report.nodes}
        # visit: bravo 3, delta 3, echo 2, golf 2 (its webinar visit), hotel 2; lead after it: delta 4, echo 2,
        # golf 3, hotel 4; webinar after visit: none (bravo's and golf's webinar visits are now their first);
        # opp after lead: delta 6, golf 4 (echo's is recorded before its lead, hotel's at 3 is before its lead).
        assert counts == {"visit": 5, "click": 0, "lead": 4, "webinar": 0, "opp": 2}

    def test_a_chain_equals_the_linear_canvas(self, tmp_path: Path) -> None:
        """A canvas without branches counts what the linear canvas counts, with the same median times."""
        with loaded_database("sqlite", tmp_path, None) as engine:
            steps = ["web_visit", "form_fill where event.form == 'lead-step-1'", "opportunity_created"]
            chain = canvas_graph.from_options([f"s{i}={s}" for i, s in enumerate(steps)], ["s0:s1", "s1:s2"])
            for container in Container:
                graph = branching(engine, chain, container, Filters())
                linear = canvas(engine, [parse_selector(s) for s in steps], container, Filters())
                assert [n.containers for n in graph.nodes] == [s.containers for s in linear.steps]
                assert [e.median_seconds for e in graph.edges] == [
                    s.median_seconds_from_previous for s in linear.steps[1:]
                ]
                assert [n.from_start_pct for n in graph.nodes] == [s.overall_pct for s in linear.steps]


CANVAS_YAML = f"""\
# the canvas of the hand-computed tests
nodes:
  - {{id: visit, select: web_visit}}
  - {{id: lead, select: "{LEAD}"}}
  - {{id: webinar, select: "{WEBINAR}"}}
  - {{id: opp, select: opportunity_created}}
  - {{id: click, select: email_click}}
edges: [[visit, lead], [visit, webinar], [lead, opp], [webinar, opp], [click, lead]]
"""


def as_tables(report: dict[str, Any]) -> tuple[dict[str, tuple[Any, ...]], dict[tuple[str, str], tuple[Any, ...]]]:
    """The JSON report in the shape of NODE_TABLE and EDGE_TABLE."""
    keys = ["containers", "entered", "from_start_pct", "previous", "from_previous_pct", "fallout", "fallout_pct"]
    nodes = {n["node"]: tuple(n[k] for k in keys) for n in report["nodes"]}
    edges = {
        (e["source"], e["target"]): (e["containers"], e["from_previous_pct"], e["median_seconds"])
        for e in report["edges"]
    }
    return nodes, edges


class TestDefinition:
    """A canvas definition is checked before anything runs; every problem is named with its node or edge."""

    @pytest.mark.parametrize(
        ("steps", "edges", "message"),
        [
            (
                ["visit=web_visit", "lead=form_fill"],
                ["visit:laed"],
                "edge visit:laed: unknown node 'laed' (did you mean 'lead'?)",
            ),
            (
                ["a=web_visit", "b=form_fill", "c=opportunity_created"],
                ["a:b", "b:c", "c:b"],
                "the edges form a cycle (b -> c -> b): a canvas goes forward only, remove one of them",
            ),
            (
                ["a=web_visit"],
                ["a:a"],
                "the edges form a cycle (a -> a): a canvas goes forward only, remove one of them",
            ),
            (["a=web_visit", "a=form_fill"], [], "node 'a' is defined twice"),
            (["a=web_visit", "b=form_fill"], ["a:b", "a:b"], "edge a:b is given twice"),
            (["a:b=web_visit"], [], "node id 'a:b' must be 1-64 letters, digits, '_' or '-'"),
            (["visit"], [], "step 'visit' must be ID=SELECTOR, e.g. lead=\"form_fill where event.form == 'x'\""),
            (["a=web_visit"], ["ab"], "edge 'ab' must be FROM:TO with two node ids, e.g. visit:lead"),
            ([f"n{i}=web_visit" for i in range(21)], [], "a branching canvas has 1 to 20 nodes, not 21"),
            (["a=web_visit", "b=form_fill"], ["a:b"] * 41, "a branching canvas has at most 40 edges, not 41"),
            (
                ["a=web_visit where event.form ==", "b=form_fill"],
                ["a:c"],
                "node 'a': selector 'web_visit where event.form ==': invalid expression 'event.form ==': unexpected end"
                " of expression; edge a:c: unknown node 'c'",
            ),
        ],
    )
    def test_mistakes(self, steps: list[str], edges: list[str], message: str) -> None:
        with pytest.raises(AnalyticsError) as raised:
            canvas_graph.from_options(steps, edges)
        assert str(raised.value) == message

    def test_selector_errors_name_the_node(self) -> None:
        with pytest.raises(
            AnalyticsError, match=r"^node 'lead': selector 'form_fil': unknown event type 'form_fil' \(did"
        ):
            canvas_graph.from_options(["lead=form_fil"], [])

    def test_layers_order_the_nodes(self) -> None:
        """Nodes come by their longest way from a start node, then as defined; edges by their ends."""
        graph = definition()
        assert [(n.id, n.layer) for n in graph.nodes] == [
            ("visit", 0),
            ("click", 0),
            ("lead", 1),
            ("webinar", 1),
            ("opp", 2),
        ]
        assert graph.starts_above("opp") == ["visit", "click"] and graph.starts_above("webinar") == ["visit"]

    def test_yaml_is_the_options(self, tmp_path: Path) -> None:
        path = tmp_path / "canvas.yaml"
        path.write_text(CANVAS_YAML, encoding="utf-8")
        assert canvas_graph.from_yaml(path) == definition()

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                "nodes: [{id: a, select: web_visit}]\nedge: []\n",
                "expected a mapping with 'nodes' and 'edges' (unknown key 'edge' (did you mean 'edges'?))",
            ),
            ("nodes: [{id: a}]\n", "node 1 must be {id: ..., select: ...} and nothing else"),
            ("nodes: [{id: a, select: 3}]\n", "node 1: id and select must be text"),
            (
                "nodes: [{id: a, select: web_visit}]\nedges: [[a]]\n",
                "edge 1 must be a pair of node ids, e.g. [visit, lead]",
            ),
            ("nodes: {id: a}\n", "'nodes' and 'edges' must be lists"),
            ("nodes: [a\n", "not valid YAML: while parsing a flow sequence"),
            ("nodes: []\n", "a branching canvas has 1 to 20 nodes, not 0"),
            ("nodes: [{id: a, select: web_visit}]\n" + "#" * 64_000, "a canvas file may hold at most 64,000 bytes"),
        ],
    )
    def test_yaml_mistakes(self, tmp_path: Path, text: str, message: str) -> None:
        path = tmp_path / "canvas.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(AnalyticsError) as raised:
            canvas_graph.from_yaml(path)
        assert message in str(raised.value)

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(AnalyticsError, match=r"cannot read the canvas file .*missing\.yaml: No such file"):
            canvas_graph.from_yaml(tmp_path / "missing.yaml")


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The hand-computed log in a SQLite file, for the CLI, the web and the browser."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('branching') / 'journey.db'}")
    init_db(engine)
    load_events(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def journey(database: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("JOURNEY_DATABASE_URL", database.url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


OPTIONS = [arg for n, s in NODES for arg in ("--step", f"{n}={s}")] + [
    arg for a, b in EDGES for arg in ("--edge", f"{a}:{b}")
]


class TestCommand:
    """`journey analytics canvas --graph FILE` or `--step/--edge`: tables, JSON, and mistakes with one clear line."""

    def test_json_from_yaml_and_from_options(self, journey: CliRunner, tmp_path: Path) -> None:
        path = tmp_path / "canvas.yaml"
        path.write_text(CANVAS_YAML, encoding="utf-8")
        from_file = journey.invoke(app, ["analytics", "canvas", "--graph", str(path), "--json"])
        assert from_file.exit_code == 0, from_file.output
        assert as_tables(json.loads(from_file.stdout)) == (NODE_TABLE, EDGE_TABLE)
        from_options = journey.invoke(app, ["analytics", "canvas", *OPTIONS, "--json"])
        assert from_options.exit_code == 0, from_options.output
        assert json.loads(from_options.stdout) == json.loads(from_file.stdout)

    def test_tables(self, journey: CliRunner) -> None:
        result = journey.invoke(app, ["analytics", "canvas", *OPTIONS])
        assert result.exit_code == 0, result.output
        rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "│" in line]
        assert ["lead", LEAD, "1", "6", "8", "75", "8", "75", "1", "16.7"] in rows
        assert ["click", "lead", "2", "100", "2700"] in rows

    def test_the_linear_canvas_is_unchanged(self, journey: CliRunner) -> None:
        result = journey.invoke(app, ["analytics", "canvas", "web_visit", LEAD, "opportunity_created", "--json"])
        assert result.exit_code == 0, result.output
        assert [s["containers"] for s in json.loads(result.stdout)["steps"]] == [
            7,
            5,
            3,
        ]  # alpha delta golf: hotel's lead is at 4 here

    @pytest.mark.parametrize(
        ("args", "code", "message"),
        [
            (["--step", "visit=web_visit", "--edge", "visit:laed"], 1, "unknown node 'laed'"),
            (["--step", "lead=form_fil"], 1, "node 'lead': selector 'form_fil': unknown event type"),
            (["--graph", "missing.yaml"], 1, "cannot read the canvas file missing.yaml"),
            (["web_visit", "--step", "visit=web_visit"], 2, "give either milestones"),
            (["--graph", "x.yaml", "--step", "visit=web_visit"], 2, "either as --graph FILE or as --step/--edge"),
            (["--edge", "a:b"], 2, "--edge joins nodes given with --step ID=SELECTOR"),
            (["--step", "a=web_visit", "--by", "variant"], 2, "--by variant breaks down the linear canvas only"),
            ([], 2, "give the milestones, or a branching canvas with --graph FILE or --step/--edge"),
            (["--step", "a=web_visit", "--since", "2026-03-03", "--until", "2026-03-02"], 1, "must be before until"),
        ],
    )
    def test_mistakes(self, journey: CliRunner, args: list[str], code: int, message: str) -> None:
        result = journey.invoke(app, ["analytics", "canvas", *args])
        assert result.exit_code == code
        assert message in " ".join(result.stderr.split())
        assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def base_url(database: Engine) -> Iterator[str]:
    served = FastAPI()
    served.include_router(router)
    served.dependency_overrides[analytics_engine] = lambda: database
    with serving(served) as url:
        yield url


QUERY: dict[str, Any] = {"step": [f"{n}={s}" for n, s in NODES], "edge": [f"{a}:{b}" for a, b in EDGES]}


class TestWeb:
    """GET /analytics/canvas-graph: the CLI's `--step/--edge` as repeated `step` and `edge` parameters."""

    def test_json(self, base_url: str) -> None:
        response = httpx.get(f"{base_url}/analytics/canvas-graph", params={**QUERY, "format": "json"}, timeout=30)
        assert response.status_code == 200, response.text
        assert as_tables(response.json()) == (NODE_TABLE, EDGE_TABLE)

    def test_page(self, base_url: str) -> None:
        response = httpx.get(f"{base_url}/analytics/canvas-graph", params=QUERY, timeout=30)
        assert (response.status_code, response.headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert '<body data-report="branching">' in response.text
        assert "script-src 'sha256-" in response.headers["content-security-policy"]

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"step": ["visit=web_visit"], "edge": ["visit:laed"]}, "edge visit:laed: unknown node 'laed'"),
            ({"step": ["a=web_visit", "b=form_fill"], "edge": ["a:b", "b:a"]}, "the edges form a cycle (a -> b -> a)"),
            ({"step": [f"n{i}=web_visit" for i in range(21)]}, "a branching canvas has 1 to 20 nodes, not 21"),
        ],
    )
    def test_mistakes_are_400(self, base_url: str, params: dict[str, Any], message: str) -> None:
        response = httpx.get(f"{base_url}/analytics/canvas-graph", params=params, timeout=30)
        assert response.status_code == 400
        assert message in response.json()["detail"]

    def test_the_linear_route_is_unchanged(self, base_url: str) -> None:
        params = {"step": ["web_visit", LEAD, "opportunity_created"], "format": "json"}
        response = httpx.get(f"{base_url}/analytics/canvas", params=params, timeout=30)
        assert [s["containers"] for s in response.json()["steps"]] == [7, 5, 3]


def test_page_shows_the_json_numbers(journey: CliRunner, tmp_path: Path) -> None:
    """Chromium draws the Sankey offline, and the page's tables hold exactly the --json numbers."""
    chromium()  # installs it, or skips with the reason
    page = tmp_path / "analytics-branching.html"
    result = journey.invoke(app, ["analytics", "canvas", *OPTIONS, "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    keys = ["node", "label", "layer", "containers", "entered", "from_start_pct", "previous", "from_previous_pct"]
    expected = {
        "nodes": [[n[k] for k in [*keys, "fallout", "fallout_pct"]] for n in report["nodes"]],
        "edges": [
            [e[k] for k in ["source", "target", "containers", "from_previous_pct", "median_seconds"]]
            for e in report["edges"]
        ],
    }
    dom = dump_dom(page)
    parser = TablesOnPage()
    parser.feed(dom)
    assert parser.tables == expected
    assert expected["nodes"][2][:4] == ["lead", LEAD, 1, 6]  # the page is not empty
    assert 'class="main-svg"' in dom and "sankey" in dom  # plotly ran from the page itself and drew the chart
    png = screenshot(page, tmp_path / "analytics-branching.png", (1280, 1100))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("JOURNEY_UPDATE_SCREENSHOTS") == "1":  # as tests/test_analytics_browser.py does
        shutil.copyfile(png, DOCS / png.name)


DOCUMENTED = """\
nodes:
  - {id: visit, select: web_visit}
  - {id: lead, select: "form_fill where event.form == 'lead-step-1'"}
  - {id: webinar, select: "web_visit where event.content_type == 'webinar'"}
  - {id: opp, select: opportunity_created}
edges: [[visit, lead], [visit, webinar], [lead, opp], [webinar, opp]]
"""


def test_the_documented_example(tmp_path: Path) -> None:
    """The canvas.yaml of docs/analytics.md over tests/analytics_data.py, computed by hand: acme visits 01-05 9:00,
    fills lead-step-1 01-06 10:00, a webinar 01-07 10:00, opportunity 01-10 12:00; globex visits 01-12 9:00,
    lead-step-1 01-13 10:00, opportunity 01-20 10:00; initech has no visit, umbrella none of these."""
    path = tmp_path / "canvas.yaml"
    path.write_text(DOCUMENTED, encoding="utf-8")
    with loaded_database("sqlite", tmp_path, None) as engine:
        report = branching(engine, canvas_graph.from_yaml(path), Container.account, Filters())
    assert as_tables(report.as_json()) == (
        {
            "visit": (2, 2, 100.0, None, None, 0, 0.0),
            "lead": (2, 2, 100.0, 2, 100.0, 0, 0.0),
            "webinar": (1, 2, 50.0, 2, 50.0, 0, 0.0),
            "opp": (2, 2, 100.0, 2, 100.0, None, None),
        },
        {
            ("visit", "lead"): (2, 100.0, 90_000.0),  # 25 h each
            ("visit", "webinar"): (1, 50.0, 176_400.0),  # 49 h
            ("lead", "opp"): (2, 100.0, 478_800.0),  # 98 h and 168 h
            ("webinar", "opp"): (1, 100.0, 266_400.0),  # 74 h
        },
    )
