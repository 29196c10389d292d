"""What an `external_action` does with its service's answer, decided inside the workflow: which `on_response` path
it takes and which values `store` saves. Pure and deterministic: the same answer gives the same decision on replay.
"""

from __future__ import annotations

import json
from typing import Any

from engine.language import responses
from engine.language.errors import ExpressionError, ExpressionLimitError
from engine.language.model import ExternalAction, ResponsePath
from engine.workflow.contracts import ServiceCallResult

# A stored value goes into the store activity's input, in the history: a value built larger than this is left
# out (the activity refuses the same size for an attribute anyway).
MAX_STORED_CHARACTERS = 10_000


def response_of(result: Any) -> dict[str, Any]:
    """The `response` variable from the activity's result, as recorded (a result without headers loads too)."""
    answer = ServiceCallResult.model_validate(result) if isinstance(result, dict) else None
    if answer is None:
        return responses.data(0, None, {})
    return responses.data(answer.status_code, answer.body, answer.headers)


def branch(node: ExternalAction, response: dict[str, Any]) -> tuple[ResponsePath | None, list[str]]:
    """The first path whose condition holds (None: on_success), and a note for each condition that failed on this
    answer (a failing condition counts as false, as in a split). ExpressionLimitError passes through."""
    notes: list[str] = []
    for index, path in enumerate(node.on_response or []):
        try:
            if responses.compile_condition(path.when).evaluate(response=response):
                return path, notes
        except ExpressionLimitError:
            raise
        except ExpressionError as error:
            notes.append(f"on_response[{index}]: {error}")
    return None, notes


def stored(node: ExternalAction, response: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The values `store` saves from this answer; a missing or null value is not saved (the field keeps what it
    has), nor one that fails or is too large, each with a note. ExpressionLimitError passes through."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for name, source in (node.store or {}).items():
        try:
            value = responses.compile_value(source).evaluate(response)
        except ExpressionLimitError:
            raise
        except ExpressionError as error:
            notes.append(f"store.{name}: {error}")
            continue
        if value is responses.MISSING:
            continue
        size = len(json.dumps(value))
        if size > MAX_STORED_CHARACTERS:
            notes.append(f"store.{name}: {size:,} characters as JSON, at most {MAX_STORED_CHARACTERS:,}")
            continue
        values[name] = value
    return values, notes
