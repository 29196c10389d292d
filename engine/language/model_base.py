"""What every model of the journey language is built from: strict models, the fields all nodes share, and the
value types (durations, cron, ids, expressions) that several files and node types use."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from engine.language.durations import DURATION_PATTERN, check_cron, format_duration, parse_duration

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["30m", "12h", "7d", "2w"]}),
]
Cron = Annotated[
    str,
    AfterValidator(check_cron),
    WithJsonSchema({"type": "string", "description": "5-field cron: minute hour day month weekday"}),
]
NodeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64)]
JourneyId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Expression = Annotated[str, Field(min_length=1, description="condition in the journey expression language")]


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); parsed values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeBase(Strict):
    id: NodeId
    type: str
    description: str | None = None
