"""The choices a report takes (what to count, period length, flow direction): plain enums, importable
without the database, so the command line can offer them without loading the reports."""

from __future__ import annotations

from enum import StrEnum


class Container(StrEnum):
    account = "account"
    buying_group = "buying_group"
    person = "person"
    opportunity = "opportunity"


class Grain(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    quarter = "quarter"
    year = "year"


class Direction(StrEnum):
    starts_with = "starts_with"
    ends_with = "ends_with"
    contains = "contains"  # the milestone in the middle column, paths before and after it


class Repeats(StrEnum):
    """Whether a flow keeps consecutive equal values as separate steps (include) or as one (exclude, as CJA)."""

    include = "include"
    exclude = "exclude"


class Occurrence(StrEnum):
    """Which of a container's milestone events anchors its flow path."""

    first = "first"
    last = "last"


class Breakdown(StrEnum):
    """What a report can break its counts down by."""

    variant = "variant"  # the variant an A/B test (variant_split) gave each account
