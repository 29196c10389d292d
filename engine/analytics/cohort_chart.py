"""The cohort report's chart: one heat map per table (retention, churn, latency) stacked, percent of the cohort's
size as colour and the count as text. With `by`, a menu shows one value's heat maps at a time (all first)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from engine.analytics.cohort import CohortReport
from engine.analytics.cohort_rows import CohortRow, CohortTables

_COLOURS = {"retention": "Blues", "churn": "Reds", "latency": "Purples"}


def cohort_figure(report: CohortReport) -> go.Figure:
    kinds = ["retention", *(["churn"] if report.churn is not None else [])]
    kinds += ["latency"] if report.latency is not None else []
    figure = make_subplots(rows=len(kinds), cols=1, subplot_titles=[kind.title() for kind in kinds])
    shown: list[tuple[str, CohortTables]] = [("all", report.overall())]
    shown += [(f"{report.by} = {group.value}", group) for group in report.groups or []]
    height = max((len(counted.rows) for _, counted in shown), default=0)
    for index, (_, counted) in enumerate(shown):
        for place, kind in enumerate(kinds, start=1):
            rows = {"retention": counted.rows, "churn": counted.churn, "latency": counted.latency}[kind] or []
            domain = figure.layout[f"yaxis{place if place > 1 else ''}"].domain
            figure.add_trace(
                _heat_map(report, kind, rows, visible=index == 0, colour_bar=(domain[0] + domain[1]) / 2, size=domain),
                row=place,
                col=1,
            )
    if len(shown) > 1:
        buttons = [
            {
                "label": label,
                "method": "update",
                "args": [{"visible": [i == index for i in range(len(shown)) for _ in kinds]}],
            }
            for index, (label, _) in enumerate(shown)
        ]
        figure.update_layout(
            updatemenus=[{"buttons": buttons, "x": 0, "xanchor": "left", "y": 1.08, "yanchor": "bottom"}]
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(height=(160 + 40 * height) * len(kinds))
    return figure


def _heat_map(
    report: CohortReport, kind: str, rows: list[CohortRow], visible: bool, colour_bar: float, size: tuple[float, float]
) -> go.Heatmap:
    if kind == "latency":
        labels = [f"{report.grain} {p:+d}" if p else f"{report.grain} 0" for p in report.latency_periods or []]
    else:
        labels = [f"{report.grain} {period}" for period in range(max((len(row.counts) for row in rows), default=0))]
    return go.Heatmap(
        z=[row.percents for row in rows],
        x=labels,
        y=[f"{row.cohort} ({row.size})" for row in rows],
        text=[[str(count) for count in row.counts] for row in rows],
        texttemplate="%{text}",
        colorscale=_COLOURS[kind],
        zmin=0,
        zmax=100,
        colorbar={"title": "%", "y": colour_bar, "len": size[1] - size[0]},
        visible=visible,
        name=kind,
    )
