"""`journey analytics canvas|cohort|email|flow|nodes|timeline`: tables in the terminal, `--json`, `--html FILE`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from engine.analytics.bounds import MOST_COLUMNS, MOST_EVENTS_NEEDED, MOST_PERIODS, MOST_TOP
from engine.analytics.choices import Breakdown, Container, Grain, Occurrence, Repeats
from engine.cli.common import data_table, database, group, out

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from engine.analytics.containers import Filters
    from engine.analytics.report import Report

app = group(
    "Account analytics over the event log: journey canvas, cohorts, flow, node counts, timelines, email performance.",
    no_args_is_help=True,
)

CONTAINER = typer.Option(Container.account, "--container", "-c", help="what to count")
JOURNEY = typer.Option(None, "--journey", help="only accounts that entered this journey (and its steps)")
INTEREST = typer.Option(None, "--solution-interest", help="only buying groups (or their accounts) of this interest")
SINCE = typer.Option(None, "--since", help="events from this day or time on (UTC), e.g. 2026-01-01")
UNTIL = typer.Option(None, "--until", help="events before this day or time (UTC)")
AS_JSON = typer.Option(False, "--json", help="print the report as JSON, for scripts")
HTML = typer.Option(None, "--html", help="write a self-contained page with the chart to this file")
BY = typer.Option(None, "--by", help="also break the counts down: variant (the variant an A/B test gave each account)")
SPLIT = typer.Option(None, "--split", help="with --by variant: the variant_split node, when the journey has several")


def filters(journey: str | None, interest: str | None, since: str | None, until: str | None) -> Filters:
    from engine.analytics.containers import Filters
    from engine.analytics.timing import parse_moment

    return Filters(journey, interest, parse_moment(since, "--since"), parse_moment(until, "--until"))


def _by_variant(by: Breakdown | None, split: str | None) -> bool:
    """Whether to break down by variant; --split alone is a mistake (exit 2), not silently ignored."""
    if split is not None and by != Breakdown.variant:
        print("journey: --split chooses the A/B test for --by variant: give --by variant too", file=sys.stderr)
        raise typer.Exit(2)
    return by == Breakdown.variant


def _run(build: Callable[[Engine], Report], as_json: bool, html: Path | None) -> None:
    """Build the report in the database, then print it or write its page; mistakes exit 1 with the reason."""
    from engine.analytics import page
    from engine.analytics.errors import AnalyticsError

    try:
        with database() as engine:
            report = build(engine)
    except AnalyticsError as error:
        print(f"journey: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    if html is not None:
        html.write_text(page.render(report), encoding="utf-8")
        print(f"wrote {html}", file=sys.stderr)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
    elif html is None:
        _print(report)


def _print(report: Report) -> None:
    from engine.analytics.tables import display, tables

    for table in tables(report):
        rich = data_table(title=table.title, title_justify="left")
        for column in table.columns:
            rich.add_column(column, overflow="fold")
        for row in table.rows:
            rich.add_row(*(display(value) for value in row))
        if not table.rows:
            rich.caption = "nothing matched"
        out().print(rich)


def _branching_alone(
    steps: list[str] | None, graph: Path | None, nodes: list[str] | None, edges: list[str] | None, by_variant: bool
) -> None:
    """A branching canvas comes from one source and has no variant breakdown; a mix is a usage mistake (exit 2)."""
    problem = None
    if steps:
        problem = "give either milestones (a linear canvas) or --graph / --step / --edge (a branching one), not both"
    elif graph is not None and (nodes or edges):
        problem = "give the branching canvas either as --graph FILE or as --step/--edge options, not both"
    elif graph is None and not nodes:
        problem = "--edge joins nodes given with --step ID=SELECTOR: give them"
    elif by_variant:
        problem = "--by variant breaks down the linear canvas only: leave it out of a branching canvas"
    if problem is not None:
        print(f"journey: {problem}", file=sys.stderr)
        raise typer.Exit(2)


@app.command("canvas")
def canvas_command(
    steps: list[str] | None = typer.Argument(
        None, help="milestones in order, e.g. \"form_fill where event.form == 'x'\" (a linear canvas)"
    ),
    graph: Path | None = typer.Option(None, "--graph", help="a branching canvas: a YAML file of nodes and edges"),
    node_steps: list[str] | None = typer.Option(
        None, "--step", help="a branching canvas's node ID=SELECTOR, e.g. lead=form_fill; repeat it"
    ),
    edges: list[str] | None = typer.Option(None, "--edge", help="a branching canvas's edge FROM:TO; repeat it"),
    container: Container = CONTAINER,
    journey: str | None = JOURNEY,
    solution_interest: str | None = INTEREST,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    by: Breakdown | None = BY,
    split: str | None = SPLIT,
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """How many containers reached each milestone after the previous one; conversion, fallout, median time.
    With --graph FILE or --step/--edge: a canvas that branches and merges."""
    from engine.analytics.canvas import canvas
    from engine.analytics.selectors import parse_selector

    by_variant = _by_variant(by, split)
    if graph is not None or node_steps or edges:
        from engine.analytics.branching import branching
        from engine.analytics.canvas_graph import from_options, from_yaml

        _branching_alone(steps, graph, node_steps, edges, by_variant)
        _run(
            lambda engine: branching(
                engine,
                from_yaml(graph) if graph is not None else from_options(node_steps or [], edges or []),
                container,
                filters(journey, solution_interest, since, until),
            ),
            as_json,
            html,
        )
        return
    if not steps:
        print("journey: give the milestones, or a branching canvas with --graph FILE or --step/--edge", file=sys.stderr)
        raise typer.Exit(2)
    _run(
        lambda engine: canvas(
            engine,
            [parse_selector(step) for step in steps],
            container,
            filters(journey, solution_interest, since, until),
            by_variant=by_variant,
            split=split,
        ),
        as_json,
        html,
    )


@app.command("cohort")
def cohort_command(
    include: str = typer.Option(..., "--include", help="inclusion metric, e.g. opportunity_created"),
    returning: str = typer.Option(
        ..., "--return", help="return metric, e.g. \"... where event.stage == 'closed_won'\""
    ),
    include_min: int = typer.Option(
        1, "--include-min", min=1, max=MOST_EVENTS_NEEDED, help="events needed to be included"
    ),
    return_min: int = typer.Option(
        1, "--return-min", min=1, max=MOST_EVENTS_NEEDED, help="events in a period needed to count"
    ),
    grain: Grain = typer.Option(Grain.month, "--grain", help="period length"),
    periods: int = typer.Option(
        6, "--periods", min=1, max=MOST_PERIODS, help="periods after inclusion (0 = the inclusion period)"
    ),
    rolling: bool = typer.Option(False, "--rolling", help="count only containers that returned in every period so far"),
    returns_after_inclusion: bool = typer.Option(
        False, "--returns-after-inclusion", help="CJA's way: period 0 is the cohort, returns count from period 1"
    ),
    churn: bool = typer.Option(False, "--churn", help="also the churn table: containers that did not return"),
    latency: bool = typer.Option(
        False, "--latency", help="also the latency table: returns in the periods before and after inclusion"
    ),
    by: str | None = typer.Option(
        None, "--by", help="cohorts side by side: an account column (industry, ...), solution_interest or variant"
    ),
    split: str | None = SPLIT,
    container: Container = CONTAINER,
    journey: str | None = JOURNEY,
    solution_interest: str | None = INTEREST,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """Containers grouped by when they met the inclusion metric, followed period by period on the return metric."""
    from engine.analytics.cohort import cohort
    from engine.analytics.selectors import parse_selector

    _run(
        lambda engine: cohort(
            engine,
            parse_selector(include),
            parse_selector(returning),
            container,
            filters(journey, solution_interest, since, until),
            grain,
            periods,
            include_min,
            return_min,
            rolling,
            returns_after_inclusion=returns_after_inclusion,
            churn=churn,
            latency=latency,
            by=by,
            split=split,
        ),
        as_json,
        html,
    )


@app.command("flow")
def flow_command(
    starts_with: str | None = typer.Option(None, "--starts-with", help="milestone the paths start from"),
    ends_with: str | None = typer.Option(None, "--ends-with", help="milestone the paths lead to"),
    contains: str | None = typer.Option(None, "--contains", help="milestone in the middle: paths before and after it"),
    dimension: str = typer.Option("type", "--dimension", help="type, node, or a payload field such as content_type"),
    columns: int = typer.Option(5, "--columns", min=2, max=MOST_COLUMNS, help="columns, the milestone included"),
    top: int = typer.Option(5, "--top", min=1, max=MOST_TOP, help="values kept per column; the rest are 'other'"),
    repeats: Repeats = typer.Option(
        Repeats.exclude, "--repeats", help="exclude (as CJA): a run of one value is one step; include: each event is"
    ),
    occurrence: Occurrence = typer.Option(
        Occurrence.first, "--occurrence", help="anchor at each container's first or last milestone event"
    ),
    container: Container = CONTAINER,
    journey: str | None = JOURNEY,
    solution_interest: str | None = INTEREST,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """The most frequent sequences of one dimension after (--starts-with), before (--ends-with) or around
    (--contains) a milestone."""
    from engine.analytics.flow import chosen_anchor, flow
    from engine.analytics.selectors import parse_selector

    anchor = chosen_anchor(starts_with, ends_with, contains)
    if anchor is None:
        print("journey: give exactly one of --starts-with, --ends-with and --contains", file=sys.stderr)
        raise typer.Exit(2)
    direction, milestone = anchor
    _run(
        lambda engine: flow(
            engine,
            parse_selector(milestone),
            direction,
            container,
            filters(journey, solution_interest, since, until),
            dimension,
            columns,
            top,
            repeats=repeats,
            occurrence=occurrence,
        ),
        as_json,
        html,
    )


@app.command("nodes")
def nodes_command(
    journey: str = typer.Argument(..., help="the journey's id"),
    since: str | None = SINCE,
    until: str | None = UNTIL,
    by: Breakdown | None = BY,
    split: str | None = SPLIT,
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """Per node of a journey: accounts that entered, are there now, and left by each branch; --by variant also
    per variant of its A/B test."""
    from engine.analytics.nodes import node_counts

    by_variant = _by_variant(by, split)
    _run(
        lambda engine: node_counts(
            engine, journey, filters(None, None, since, until), by_variant=by_variant, split=split
        ),
        as_json,
        html,
    )


@app.command("timeline")
def timeline_command(
    account: str = typer.Argument(..., help="the account's id"),
    solution_interest: str | None = typer.Option(None, "--solution-interest", help="only this buying group"),
    journey: str | None = JOURNEY,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """Every interaction of one account (or one of its buying groups), oldest first, with people and roles."""
    from engine.analytics.timeline import timeline

    _run(
        lambda engine: timeline(engine, account, filters(journey, None, since, until), solution_interest),
        as_json,
        html,
    )


@app.command("email")
def email_command(
    journey: str | None = typer.Argument(None, help="the journey's id; every journey when left out"),
    node: str | None = typer.Option(None, "--node", help="only this node of the journey"),
    split: str | None = typer.Option(
        None, "--split", help="the variant_split to break down by, when the journey has several"
    ),
    since: str | None = typer.Option(None, "--since", help="emails sent from this day or time on (UTC)"),
    until: str | None = typer.Option(None, "--until", help="emails sent before this day or time (UTC)"),
    as_json: bool = AS_JSON,
    html: Path | None = HTML,
) -> None:
    """Email performance per journey, node, variant and day: sent, suppressed, opens, clicks, unsubscribes."""
    from engine.analytics.email_report import email_report

    _run(
        lambda engine: email_report(engine, journey, filters(None, None, since, until), node, split),
        as_json,
        html,
    )
