"""How much a report may be asked for: the same bounds for the CLI's options, the web's query parameters and the
report functions themselves. Past them a report is only computed (and held in memory, and printed), never read."""

from __future__ import annotations

MOST_EVENTS_NEEDED = 1_000_000  # events a container needs to be included or to count as returning (64-bit safe)
MOST_PERIODS = 120  # cohort periods: ten years of months (the latency table: that many either side)
MOST_BY_VALUES = 50  # values of a cohort's --by dimension, each its own set of tables
MOST_COLUMNS = 20  # flow columns, the milestone included
MOST_TOP = 50  # flow values kept per column before the rest become 'other'
MOST_DAYS = 400  # email report: days listed, the latest kept (a year and a bit)
MOST_CANVAS_NODES = 20  # nodes of a branching canvas: each is one query over the log
MOST_CANVAS_EDGES = 40  # edges of a branching canvas: each is one more query
MOST_CANVAS_BYTES = 64_000  # a branching canvas's YAML file: twenty nodes with long selectors fit easily
