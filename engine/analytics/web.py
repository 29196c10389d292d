"""The analytics pages over HTTP: `router` serves GET /analytics/{canvas,canvas-graph,cohort,email,flow,nodes,timeline}.

Query parameters mirror the CLI options; `?format=json` returns the report's JSON instead of the page.
The service mounting the router may override `analytics_engine` to share its own database engine.
A page comes with a Content-Security-Policy that runs its own inline scripts (plotly, embedded) by hash
and nothing else: no other script, no network, no framing.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine

from engine.analytics import page
from engine.analytics.bounds import MOST_COLUMNS, MOST_EVENTS_NEEDED, MOST_PERIODS, MOST_TOP
from engine.analytics.branching import branching
from engine.analytics.canvas import canvas
from engine.analytics.canvas_graph import from_options
from engine.analytics.choices import Breakdown, Container, Grain, Occurrence, Repeats
from engine.analytics.cohort import cohort
from engine.analytics.containers import Filters
from engine.analytics.email_report import email_report
from engine.analytics.errors import AnalyticsError
from engine.analytics.flow import chosen_anchor, flow
from engine.analytics.nodes import node_counts
from engine.analytics.report import Report
from engine.analytics.selectors import parse_selector
from engine.analytics.timeline import timeline
from engine.analytics.timing import parse_moment
from engine.db import init_db, make_engine

router = APIRouter(prefix="/analytics", tags=["analytics"])


class Format(StrEnum):
    html = "html"
    json = "json"


@lru_cache(maxsize=1)
def analytics_engine() -> Engine:
    """The database of JOURNEY_DATABASE_URL (or .journey/), opened once per process."""
    engine = make_engine()
    init_db(engine)
    return engine


EngineDep = Annotated[Engine, Depends(analytics_engine)]
ContainerQ = Annotated[Container, Query(description="what to count")]
Text = Annotated[str | None, Query()]
FormatQ = Annotated[Format, Query(description="html (the page) or json")]


ByQ = Annotated[Breakdown | None, Query(description="variant: also break the counts down by A/B test variant")]
SplitQ = Annotated[str | None, Query(description="with by=variant: the variant_split node, when there are several")]


def _by_variant(by: Breakdown | None, split: str | None) -> bool:
    """Whether to break down by variant; a split without by=variant is a mistake, not silently ignored."""
    if split is not None and by != Breakdown.variant:
        raise AnalyticsError("split chooses the A/B test for by=variant: give by=variant too")
    return by == Breakdown.variant


def _filters(journey: str | None, interest: str | None, since: str | None, until: str | None) -> Filters:
    return Filters(journey, interest, _moment(since, "since"), _moment(until, "until"))


def _moment(text: str | None, option: str) -> datetime | None:
    try:
        return parse_moment(text, option)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first moment UTC can hold
        raise AnalyticsError(
            f"{option} '{text}' is out of range: use a date between 0001-01-02 and 9999-12-30"
        ) from None


def _respond(build: Callable[[], Report], format_: Format) -> Response:
    """The page or the JSON; a mistake in the request is a 400 whose detail says what to change."""
    try:
        report = build()
    except AnalyticsError as error:
        raise HTTPException(status_code=400, detail=str(error)) from None
    if format_ is Format.json:
        return JSONResponse(report.as_json())
    html = page.render(report)
    return HTMLResponse(html, headers={"Content-Security-Policy": page_policy(html)})


def page_policy(html: str) -> str:
    """The Content-Security-Policy for one analytics page: its inline scripts by hash, inline styles (plotly
    styles the chart's elements one by one), data: images (plotly's icons) and nothing from anywhere."""
    return (
        f"default-src 'none'; script-src {inline_scripts(html)}; style-src 'unsafe-inline'; img-src data: blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def inline_scripts(html: str) -> str:
    """CSP sources ('sha256-...') allowing exactly the inline <script> elements of `html`.

    Found with str.find rather than a regular expression: plotly's script alone is ~5 MB. A script element
    ends at the first `</script`, as the browser's parser has it, and its text is hashed with line ends
    normalised, as the browser reads it. The pages write their tags in lowercase; any other script is
    simply not allowed."""
    sources: list[str] = []
    start = html.find("<script")
    while start != -1:
        opened = html.find(">", start)
        closed = html.find("</script", opened)
        if opened == -1 or closed == -1:
            break
        text = html[opened + 1 : closed].replace("\r\n", "\n").replace("\r", "\n")
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        sources.append(f"'sha256-{digest}'")
        start = html.find("<script", closed)
    return " ".join(dict.fromkeys(sources)) or "'none'"


@router.get("/canvas")
def canvas_page(
    engine: EngineDep,
    step: Annotated[list[str], Query(description="milestones in order; repeat the parameter")],
    container: ContainerQ = Container.account,
    journey: Text = None,
    solution_interest: Text = None,
    since: Text = None,
    until: Text = None,
    by: ByQ = None,
    split: SplitQ = None,
    format: FormatQ = Format.html,
) -> Response:
    return _respond(
        lambda: canvas(
            engine,
            [parse_selector(s) for s in step],
            container,
            _filters(journey, solution_interest, since, until),
            by_variant=_by_variant(by, split),
            split=split,
        ),
        format,
    )


@router.get("/canvas-graph")
def canvas_graph_page(
    engine: EngineDep,
    step: Annotated[list[str], Query(description="a node as ID=SELECTOR, e.g. lead=form_fill; repeat the parameter")],
    edge: Annotated[list[str] | None, Query(description="an edge as FROM:TO, e.g. visit:lead; repeat it")] = None,
    container: ContainerQ = Container.account,
    journey: Text = None,
    solution_interest: Text = None,
    since: Text = None,
    until: Text = None,
    format: FormatQ = Format.html,
) -> Response:
    """The branching canvas: the CLI's `canvas --step ... --edge ...`."""
    return _respond(
        lambda: branching(
            engine, from_options(step, edge or []), container, _filters(journey, solution_interest, since, until)
        ),
        format,
    )


@router.get("/cohort")
def cohort_page(
    engine: EngineDep,
    include: Annotated[str, Query(description="inclusion metric")],
    returning: Annotated[str, Query(alias="return", description="return metric")],
    include_min: Annotated[int, Query(ge=1, le=MOST_EVENTS_NEEDED)] = 1,
    return_min: Annotated[int, Query(ge=1, le=MOST_EVENTS_NEEDED)] = 1,
    grain: Grain = Grain.month,
    periods: Annotated[int, Query(ge=1, le=MOST_PERIODS)] = 6,
    rolling: bool = False,
    returns_after_inclusion: Annotated[bool, Query(description="CJA's way: period 0 is the cohort")] = False,
    churn: Annotated[bool, Query(description="also the churn table")] = False,
    latency: Annotated[bool, Query(description="also the latency table")] = False,
    by: Annotated[str | None, Query(description="account column, solution_interest or variant")] = None,
    split: SplitQ = None,
    container: ContainerQ = Container.account,
    journey: Text = None,
    solution_interest: Text = None,
    since: Text = None,
    until: Text = None,
    format: FormatQ = Format.html,
) -> Response:
    return _respond(
        lambda: cohort(
            engine,
            parse_selector(include),
            parse_selector(returning),
            container,
            _filters(journey, solution_interest, since, until),
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
        format,
    )


@router.get("/flow")
def flow_page(
    engine: EngineDep,
    starts_with: Text = None,
    ends_with: Text = None,
    contains: Text = None,
    dimension: str = "type",
    columns: Annotated[int, Query(ge=2, le=MOST_COLUMNS)] = 5,
    top: Annotated[int, Query(ge=1, le=MOST_TOP)] = 5,
    repeats: Annotated[Repeats, Query(description="exclude: consecutive equal values are one step")] = Repeats.exclude,
    occurrence: Annotated[Occurrence, Query(description="anchor at the first or last milestone")] = Occurrence.first,
    container: ContainerQ = Container.account,
    journey: Text = None,
    solution_interest: Text = None,
    since: Text = None,
    until: Text = None,
    format: FormatQ = Format.html,
) -> Response:
    anchor = chosen_anchor(starts_with, ends_with, contains)
    if anchor is None:
        raise HTTPException(status_code=400, detail="give exactly one of starts_with, ends_with and contains")
    direction, milestone = anchor
    return _respond(
        lambda: flow(
            engine,
            parse_selector(milestone),
            direction,
            container,
            _filters(journey, solution_interest, since, until),
            dimension,
            columns,
            top,
            repeats=repeats,
            occurrence=occurrence,
        ),
        format,
    )


@router.get("/nodes")
def nodes_page(
    engine: EngineDep,
    journey: Annotated[str, Query(description="the journey's id")],
    since: Text = None,
    until: Text = None,
    by: ByQ = None,
    split: SplitQ = None,
    format: FormatQ = Format.html,
) -> Response:
    return _respond(
        lambda: node_counts(
            engine, journey, _filters(None, None, since, until), by_variant=_by_variant(by, split), split=split
        ),
        format,
    )


@router.get("/timeline")
def timeline_page(
    engine: EngineDep,
    account: Annotated[str, Query(description="the account's id")],
    solution_interest: Text = None,
    journey: Text = None,
    since: Text = None,
    until: Text = None,
    format: FormatQ = Format.html,
) -> Response:
    return _respond(lambda: timeline(engine, account, _filters(journey, None, since, until), solution_interest), format)


@router.get("/email")
def email_page(
    engine: EngineDep,
    journey: Annotated[str | None, Query(description="the journey's id; every journey when left out")] = None,
    node: Annotated[str | None, Query(description="only this node of the journey")] = None,
    split: Annotated[str | None, Query(description="the variant_split to break down by, if several")] = None,
    since: Annotated[str | None, Query(description="emails sent from this day or time on (UTC)")] = None,
    until: Annotated[str | None, Query(description="emails sent before this day or time (UTC)")] = None,
    format: FormatQ = Format.html,
) -> Response:
    return _respond(lambda: email_report(engine, journey, _filters(None, None, since, until), node, split), format)
