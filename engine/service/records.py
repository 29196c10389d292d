"""The upsert API: a team's accounts, people and opportunities, one at a time (`PUT /v1/accounts/{id}`) or up to
1,000 a request (`POST /v1/accounts`), with the credentials that send events.

The same checks and writes as `journey import` (engine/data): fields map by name, unknown keys go to
`attributes`, every item gets a verdict (created, updated, unchanged, rejected with its problems); rejected
items store nothing, the others are written in one transaction with their `account_updated` / `person_updated`
change events, which the relay then delivers to the account's running journeys. Unsubscribed people stay
unsubscribed; an erased address comes back unsubscribed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from engine.data.fields import KEY, Kind
from engine.data.importer import ItemResult, WriteRefusedError, upsert_items
from engine.data.problem import Problem as ItemProblem
from engine.service import auth, ingest
from engine.service.limits import value_problem
from engine.service.schemas import MAX_BATCH, Problem

Verdict = Literal["created", "updated", "unchanged", "rejected"]
SINGULAR: dict[Kind, str] = {"accounts": "account", "people": "person", "opportunities": "opportunity"}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong credentials; nothing stored"},
    403: {"model": Problem, "description": "revoked or expired API key; nothing stored"},
    413: {"model": Problem, "description": "body too large; nothing stored"},
    422: {"model": Problem, "description": "the body cannot be read, or (PUT) the record was rejected"},
    503: {"model": Problem, "description": "a concurrent writer kept the write from committing; send it again"},
}


class FieldProblem(BaseModel):
    field: str | None = Field(None, description="the field at fault, when there is one")
    message: str


class RecordAnswer(BaseModel):
    index: int = Field(description="the item's position in the request (0 for PUT)")
    key: str | None = Field(None, description="the account id, the person's email (lower case) or the opportunity id")
    verdict: Verdict
    problems: list[FieldProblem] = Field(default_factory=list, description="why rejected")
    changes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="for updated items: field or attribute -> {old, new}"
    )


class RecordsAnswer(BaseModel):
    created: int
    updated: int
    unchanged: int
    rejected: int
    results: list[RecordAnswer]


def _body_schema(kind: Kind, batch: bool) -> dict[str, Any]:
    item = {
        "type": "object",
        "additionalProperties": True,
        "description": f"the {SINGULAR[kind]}'s fields by name (docs/data.md); other keys go to its attributes",
    }
    if not batch:
        return {"required": True, "content": {"application/json": {"schema": item}}}
    wrapped = {
        "type": "object",
        "required": [kind],
        "additionalProperties": False,
        "properties": {kind: {"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": item}},
    }
    return {"required": True, "content": {"application/json": {"schema": wrapped}}}


def _answer(result: ItemResult) -> RecordAnswer:
    return RecordAnswer(
        index=result.index,
        key=result.key,
        verdict=result.verdict,
        problems=[FieldProblem(field=problem.column, message=problem.message) for problem in result.problems],
        changes=result.changes,
    )


def _batch(kind: Kind, data: Any) -> list[Any]:
    """The items of a POST body: `{"<kind>": [...]}`."""
    if not isinstance(data, dict) or set(data) != {kind}:
        raise ingest.ProblemError(422, "invalid_body", f'expected {{"{kind}": [...]}} with 1 to {MAX_BATCH:,} items')
    items = data[kind]
    if not isinstance(items, list) or not items:
        raise ingest.ProblemError(422, "invalid_body", f"'{kind}' must be a non-empty list", kind)
    if len(items) > MAX_BATCH:
        raise ingest.ProblemError(
            422,
            "invalid_body",
            f"a batch holds at most {MAX_BATCH:,} items, this one {len(items):,}: send it in several requests",
            kind,
        )
    return items


def _refused_values(items: list[Any]) -> dict[int, ItemResult]:
    """Items holding what no database can store (too deep, NaN, NUL, lone surrogates): rejected before any check."""
    refused = {}
    for index, item in enumerate(items):
        if problem := value_problem(item):
            where, why = problem
            field = ".".join(str(part) for part in where) or None
            refused[index] = ItemResult(index, None, "rejected", (ItemProblem(index, why, field),))
    return refused


def router(engine: Engine, caller: Callable[..., Awaitable[auth.Caller]], changed: Callable[[], None]) -> APIRouter:
    """`changed` is called after a write that recorded change events (it wakes the relay)."""
    records = APIRouter(tags=["records"])

    async def upsert(kind: Kind, items: list[Any], dry_run: bool) -> list[ItemResult]:
        refused = _refused_values(items)
        if len(refused) == len(items):
            return [refused[index] for index in range(len(items))]
        kept = [item for index, item in enumerate(items) if index not in refused]
        try:
            judged = await asyncio.to_thread(upsert_items, engine, kind, kept, dry_run=dry_run)
        except WriteRefusedError as error:
            raise ingest.ProblemError(503, "conflict", f"{error}; nothing was stored: send the request again") from None
        positions = [index for index in range(len(items)) if index not in refused]
        results = dict(refused)
        for position, result in zip(positions, judged, strict=True):
            results[position] = ItemResult(position, result.key, result.verdict, result.problems, result.changes)
        if not dry_run and any(result.verdict == "updated" for result in judged):
            changed()
        return [results[index] for index in range(len(items))]

    def add(kind: Kind, key_description: str) -> None:
        one, key = SINGULAR[kind], KEY[kind]

        @records.post(
            f"/v1/{kind}",
            response_model=RecordsAnswer,
            responses=_REFUSALS,
            openapi_extra={"requestBody": _body_schema(kind, batch=True)},
            summary=f"Create or update up to {MAX_BATCH:,} {kind}",
            name=f"post_{kind}",
        )
        async def post(
            request: Request,
            dry_run: bool = Query(False, description="check and compare, store nothing"),
            _caller: auth.Caller = Depends(caller),
        ) -> RecordsAnswer:
            results = await upsert(kind, _batch(kind, ingest.read_json(await request.body())), dry_run)
            counts = {verdict: sum(result.verdict == verdict for result in results) for verdict in get_args(Verdict)}
            return RecordsAnswer(**counts, results=[_answer(result) for result in results])

        @records.put(
            f"/v1/{kind}/{{{key}}}",
            response_model=RecordAnswer,
            responses={**_REFUSALS, 201: {"model": RecordAnswer, "description": f"the {one} was created"}},
            openapi_extra={"requestBody": _body_schema(kind, batch=False)},
            summary=f"Create or update one {one}",
            name=f"put_{one}",
        )
        async def put(
            request: Request,
            response: Response,
            key_value: str = Path(alias=key, min_length=1, max_length=320, description=key_description),
            dry_run: bool = Query(False, description="check and compare, store nothing"),
            _caller: auth.Caller = Depends(caller),
        ) -> RecordAnswer:
            item = ingest.read_json(await request.body())
            if not isinstance(item, dict):
                raise ingest.ProblemError(422, "invalid_body", f"expected the {one} as a JSON object")
            given = item.get(key)
            if given is not None and str(given).strip().lower() != key_value.strip().lower():
                raise ingest.ProblemError(
                    422, "invalid_body", f"'{key}' in the body ({given!r}) is not the one in the path", key
                )
            [result] = await upsert(kind, [{**item, key: key_value}], dry_run)
            if result.verdict == "rejected":
                first = result.problems[0]
                detail = "; ".join(
                    f"{problem.column}: {problem.message}" if problem.column else problem.message
                    for problem in result.problems
                )
                raise ingest.ProblemError(422, "rejected", f"nothing stored: {detail}", first.column)
            if result.verdict == "created":
                response.status_code = 201
            return _answer(result)

    add("accounts", "the account id, e.g. 'acme-corp'")
    add("people", "the person's email address, in any case")
    add("opportunities", "the opportunity id, e.g. the CRM's")
    return records
