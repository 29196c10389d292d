"""The journey header's `schedule`: when entry opens and when it closes by itself (as AJO's journey start and end
dates). Moments are ISO 8601 with their UTC offset, so a file means the same instant on every machine."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, ValidationInfo, WithJsonSchema, field_validator

from engine.language.model_base import Strict

MAX_LENGTH = timedelta(days=3 * 365 + 1)  # AJO: a journey ends at most 3 years after it starts (one leap day)
EXAMPLE = "2027-01-04T09:00:00+01:00"
YEARS = (2000, 2999)


def _moment(value: Any) -> datetime:
    """An aware datetime from YAML's timestamp or an ISO 8601 string; a date alone or a missing offset is refused
    (the engine would otherwise have to guess a time zone)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO 8601 date and time: write e.g. '{EXAMPLE}'") from None
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ValueError(f"'{value}' is a date without a time: write e.g. '{value.isoformat()}T09:00:00+01:00'")
    else:
        raise ValueError(f"expected an ISO 8601 date and time with its UTC offset, e.g. '{EXAMPLE}', got '{value}'")
    if moment.tzinfo is None or moment.utcoffset() is None:
        shown = moment.isoformat()
        raise ValueError(f"'{shown}' has no UTC offset: add one, e.g. '{shown}+01:00' or '{shown}Z'")
    if not YEARS[0] <= moment.year <= YEARS[1]:  # beyond, converting to UTC for the database could overflow
        raise ValueError(f"'{moment.isoformat()}' is out of range: expected a year from {YEARS[0]} to {YEARS[1]}")
    return moment


Moment = Annotated[
    datetime,
    BeforeValidator(_moment),
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": [EXAMPLE]}),
]


class Schedule(Strict):
    """Entry opens at `start` and closes at `end`; either may be left out (open now, never closes by itself)."""

    start: Moment | None = Field(None, description="when accounts may start entering (ISO 8601 with offset)")
    end: Moment | None = Field(
        None, description="when entry closes by itself; after start, at most 3 years later (ISO 8601 with offset)"
    )

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start")
        if end is None or start is None:
            return end
        if end <= start:
            raise ValueError(f"'{end.isoformat()}' is not after schedule.start '{start.isoformat()}'")
        if end - start > MAX_LENGTH:
            raise ValueError(
                f"'{end.isoformat()}' is more than 3 years after schedule.start '{start.isoformat()}': "
                "end the journey sooner, or publish a new one for the later years"
            )
        return end
