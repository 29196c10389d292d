"""Check data against a pydantic model and turn what pydantic says into located, readable issues."""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError

from engine.language.errors import Issue, did_you_mean
from engine.language.loader import PathKey, SourceMap

M = TypeVar("M", bound=BaseModel)

_PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9-]*$": "lowercase letters, digits and '-'",
    r"^[A-Za-z0-9][A-Za-z0-9_-]*$": "letters, digits, '_' and '-', starting with a letter or digit",
    r"^[a-z][a-z0-9_]*$": "lowercase letters, digits and '_', starting with a letter",
    r"^[A-Z_][A-Z0-9_]*$": "an environment variable name: capitals, digits and '_'",
    r"^https?://": "a URL starting with http:// or https://",
}
_EXPECTED = {
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
}


def validate(
    model: type[M], data: Any, source: SourceMap, at: PathKey = (), node: str | None = None
) -> tuple[M | None, list[Issue]]:
    """The model instance, or None and one issue per problem, each at its own line and column."""
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        problems = error.errors(include_url=False)
        return None, [_issue(model, problem, data, source, at, node) for problem in problems]


def dotted(loc: tuple[str | int, ...]) -> str:
    """('paths', 0, 'when') -> 'paths[0].when'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _issue(model: type[BaseModel], problem: Any, data: Any, source: SourceMap, at: PathKey, node: str | None) -> Issue:
    loc = _in_data(problem["loc"], data)
    full = (*at, *loc)
    kind, value = problem["type"], problem.get("input")
    prefix = f"{dotted(loc)}: " if loc else ""
    if kind == "extra_forbidden":
        name = str(loc[-1])
        line, col = source.key(full)
        hint = did_you_mean(name, _fields_at(model, loc[:-1]))
        return Issue(source.path, line, col, f"unknown key {_shown(name)}{hint}", node)
    if kind == "missing":
        line, col = source.value(full[:-1])
        where = f" in {dotted(loc[:-1])}" if len(loc) > 1 else ""
        return Issue(source.path, line, col, f"missing required key '{loc[-1]}'{where}", node)
    if kind == "union_tag_invalid":  # a list of typed items (a people_split path's steps) names an unknown type
        tag = value.get("type") if isinstance(value, dict) else problem["ctx"]["tag"]
        expected = problem["ctx"]["expected_tags"]
        line, col = source.value((*full, "type"))
        choices = [choice.strip(" '") for choice in expected.split(",")]
        hint = did_you_mean(str(tag), choices)
        message = f"{dotted((*loc, 'type'))}: {_shown(tag)} is not allowed here{hint} (one of {expected})"
        return Issue(source.path, line, col, message, node)
    if kind == "union_tag_not_found":
        line, col = source.value(full)
        return Issue(source.path, line, col, f"{prefix}missing required key 'type'", node)
    line, col = source.value(full)
    if kind in ("value_error", "assertion_error"):
        message = str(problem["ctx"]["error"])
    elif kind == "literal_error":
        expected = problem["ctx"]["expected"].replace(" or ", ", ")
        choices = [choice.strip(" '") for choice in expected.split(",")]
        message = f"expected one of {expected}, got {_shown(value)}{did_you_mean(str(value), choices)}"
    elif kind == "string_pattern_mismatch":
        pattern = problem["ctx"]["pattern"]
        allowed = _PATTERN_WORDS.get(pattern, "the allowed characters")
        message = f"{_shown(value)} is not allowed here: use {allowed} ({pattern})"
    elif kind in ("too_short", "string_too_short"):
        message = "must not be empty"
    elif kind == "string_too_long":
        message = f"{_shown(value)} is too long (at most {problem['ctx']['max_length']} characters)"
    elif kind in _EXPECTED:
        message = f"{_EXPECTED[kind]}, got {_shown(value)}"
    else:
        text = problem["msg"]
        message = f"{text[:1].lower()}{text[1:]}, got {_shown(value)}"
    return Issue(source.path, line, col, prefix + message, node)


def _shown(value: Any) -> str:
    """The value in quotes, cut short when long: one problem stays one readable line."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = str(value).replace("\n", "\\n").replace("\r", "\\r")
    return f"'{text}'" if len(text) <= 60 else f"'{text[:40]}...{text[-12:]}' ({len(text):,} characters)"


def _in_data(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """pydantic's location without the names it adds for union members ('function-after[...]', 'str').

    A part that leads into the data is kept whatever it looks like (a key may be called '[a]' or 'str');
    one that does not is kept unless it looks like such a name (the key a 'missing' problem names).
    """
    kept: list[str | int] = []
    current = data
    for part in loc:
        walks = (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        )
        if not walks and (_is_union_tag(part) or (isinstance(current, dict) and current.get("type") == part)):
            continue  # a union member's name, or the tag of a discriminated union's member
        current = current[part] if walks else None
        kept.append(part)
    return tuple(kept)


def _is_union_tag(part: str | int) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "none"))


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The key names allowed at `loc` inside `model`, for 'did you mean' suggestions."""
    current: Any = model
    for part in loc:
        # List indexes and the keys of dict fields (a service's name) stay on the same model.
        if isinstance(part, str) and part in current.model_fields:
            current = _model_in(current.model_fields[part].annotation)
        if current is None:
            return []
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside Optional[...], list[...], dict[str, ...] or Annotated[...], if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType, list, dict, typing.Annotated):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None
