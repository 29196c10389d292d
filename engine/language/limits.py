"""journeys/limits.yaml: how many emails a person, an account or a buying group may get across all journeys, and
the quiet hours in which none goes out. Pure: the email activity counts against the caps, the workflow waits
out the quiet hours.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator, model_validator

from engine.language.durations import format_duration
from engine.language.model import Duration, Strict
from engine.language.schedule import zone

LIMITS_FILE = "limits.yaml"
Scope = Literal["person", "account", "buying_group"]
SCOPES: tuple[Scope, ...] = ("person", "account", "buying_group")
# A window longer than a year is a typo; counting one means reading a year of the outbox on every send.
LONGEST_WINDOW = timedelta(days=366)
MOST_CAPS = 5  # per scope: 'one a day, three a week' is two
_TIME_OF_DAY = r"^([01]\d|2[0-3]):[0-5]\d$"


def _time_of_day(text: str) -> str:
    if not re.match(_TIME_OF_DAY, text):
        raise ValueError(f"'{text[:20]}' is not a time of day: write it as 24-hour 'HH:MM', e.g. '08:00' or '20:30'")
    return text


TimeOfDay = Annotated[
    str,
    AfterValidator(_time_of_day),
    WithJsonSchema({"type": "string", "pattern": _TIME_OF_DAY, "description": "24-hour 'HH:MM'"}),
]


class Cap(Strict):
    """At most `max` emails in any `per` (a rolling window ending at the send)."""

    max: int = Field(ge=1, le=1000, description="emails allowed in the window")
    per: Duration = Field(description="the rolling window, e.g. '7d'")

    @field_validator("per")
    @classmethod
    def _bounded(cls, per: timedelta) -> timedelta:
        if per > LONGEST_WINDOW:
            raise ValueError(f"'{window(per)}' is longer than a year ('366d')")
        if per < timedelta(hours=1):
            raise ValueError(f"'{format_duration(per)}' is shorter than an hour ('1h')")
        return per

    def reason(self, scope: Scope) -> str:
        """How a send this cap suppressed is recorded: 'limit:person:3/7d'."""
        return f"limit:{scope}:{self.max}/{window(self.per)}"


class QuietHours(Strict):
    """No email from `start` to `end` (across midnight when `end` is earlier), in the account's time zone."""

    start: TimeOfDay
    end: TimeOfDay

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError(f"start and end are both '{self.start}': give the hours in which no email is sent")
        return self

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


class LimitsFile(Strict):
    person: list[Cap] = Field(default_factory=list, max_length=MOST_CAPS, description="per person, all journeys")
    account: list[Cap] = Field(default_factory=list, max_length=MOST_CAPS, description="per account's people")
    buying_group: list[Cap] = Field(
        default_factory=list, max_length=MOST_CAPS, description="per buying group's members"
    )
    quiet_hours: QuietHours | None = None

    def caps(self, scope: Scope) -> list[Cap]:
        caps: list[Cap] = getattr(self, scope)
        return caps

    def is_empty(self) -> bool:
        return not (self.person or self.account or self.buying_group or self.quiet_hours)


def quiet_until(quiet: QuietHours, now: datetime, tz: str | None) -> datetime | None:
    """When the quiet hours around `now` end in zone `tz` (an aware UTC datetime), or None when `now` is outside
    them. A pure function of its inputs, so the workflow calls it with `workflow.now()`."""
    place = zone(tz)
    local = now.astimezone(place)
    start, end, clock = _time(quiet.start), _time(quiet.end), local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    ends = datetime.combine(day, end, tzinfo=place).astimezone(UTC)
    return ends if ends > now else None  # a clock change can put the local end behind us: send now


def window(per: timedelta) -> str:
    """A cap's window in days when it is whole days ('7d', as caps are usually written, not '1w'), else as
    format_duration writes it."""
    return f"{per.days}d" if per % timedelta(days=1) == timedelta(0) else format_duration(per)


def _time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))
