"""How much a report may be asked for: the same bounds for the CLI's options, the web's query parameters and the
report functions themselves. Past them a report is only computed (and held in memory, and printed), never read."""

from __future__ import annotations

MOST_EVENTS_NEEDED = 1_000_000  # events a container needs to be included or to count as returning (64-bit safe)
MOST_PERIODS = 120  # cohort periods: ten years of months
MOST_COLUMNS = 20  # flow columns, the milestone included
MOST_TOP = 50  # flow values kept per column before the rest become 'other'
