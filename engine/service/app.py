"""The ASGI app of `journey serve`: events and form webhooks in, tracking links, health and metrics.

Every event is committed before the answer goes out; the relay (engine/service/relay.py) running in the
same process delivers it to the account's journeys. A refused request stores nothing, and every error
answer, whoever raised it (a route, the router, the body parser), is a JSON Problem. Every answer carries
the browser security headers of SecurityHeaders.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.analytics import web as analytics_web
from engine.language.event_types import EventTypes
from engine.runtime import temporal
from engine.service import auth, codec, email_links, ingest, privacy, records
from engine.service.limits import DEFAULT_MAX_BODY, BodyLimit
from engine.service.metrics import CONTENT_TYPE, Metrics
from engine.service.relay import MAX_BACKOFF, Relay, TemporalLink, parked_count, undelivered_count
from engine.service.schemas import EventAnswer, EventBatch, EventIn, EventsAnswer, Health, Problem
from engine.service.writer import Writer
from engine.tracking import Tokens

log = structlog.get_logger("serve")


CODEC_ORIGINS_ENV = "JOURNEY_CODEC_CORS_ORIGINS"  # e.g. the Temporal UI's origin, http://localhost:8233


@dataclass
class ServiceConfig:
    engine: Engine
    types: EventTypes = field(default_factory=EventTypes)
    tokens: Tokens | None = None
    temporal: TemporalLink | None = None
    relay: bool = True
    max_body: int = DEFAULT_MAX_BODY
    relay_max_backoff: float = MAX_BACKOFF


# Declared for the OpenAPI spec (and its clients); the checks themselves read the raw headers.
_bearer = HTTPBearer(auto_error=False, description="an API key from `journey api-key create NAME`")
_signature = APIKeyHeader(
    name="X-Journey-Signature",
    auto_error=False,
    scheme_name="signature",
    description=f"sha256=<hex HMAC-SHA256 of '{auth.SIGNED}'> under JOURNEY_WEBHOOK_SECRET, with the "
    "X-Journey-Timestamp header (unix seconds); METHOD in capitals, the path as sent, '?query' when there is one",
)
_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong credentials; nothing stored"},
    403: {"model": Problem, "description": "revoked or expired API key; nothing stored"},
    413: {"model": Problem, "description": "body larger than the limit; nothing stored"},
    415: {"model": Problem, "description": "a body type the endpoint does not read; nothing stored"},
    422: {"model": Problem, "description": "unreadable body; nothing stored"},
}
_ANALYTICS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the report: a self-contained page (format=html) or its numbers (format=json)",
        "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}},
    },
    400: {
        "model": Problem,
        "description": "a selector, filter or date the report cannot use; the detail says what to change",
    },
    401: _REFUSALS[401],
    403: _REFUSALS[403],
    422: {"model": Problem, "description": "a query parameter of the wrong kind"},
}
_EVENTS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [{"$ref": "#/components/schemas/EventIn"}, {"$ref": "#/components/schemas/EventBatch"}]}
        }
    },
}
_FORM_FIELDS = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "description": "the person who filled the form"},
        "account_id": {"type": "string"},
        "event_id": {"type": "string", "description": "idempotency key (or the Idempotency-Key header)"},
    },
    "required": ["email"],
    "additionalProperties": True,
}
# Every answer may be opened by a browser: it may not be framed, sniffed into another type, or send the
# URL (which holds tracking and unsubscribe tokens) on as a referrer. The default policy lets a page do
# nothing but post its own form (the unsubscribe button); pages that need more set their own policy.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
# Swagger UI comes from its CDN, as FastAPI serves it, and starts from one inline script (allowed by hash).
_DOCS_POLICY = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net {scripts}; style-src https://cdn.jsdelivr.net "
    "'unsafe-inline'; img-src 'self' data: https:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_FORM_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": _FORM_FIELDS},
        "application/x-www-form-urlencoded": {"schema": _FORM_FIELDS},
    },
}


def create_app(config: ServiceConfig) -> FastAPI:
    """The app; ValueError when the configuration is unsafe to start with (a short webhook secret)."""
    webhook_keys = auth.webhook_secrets()
    metrics = Metrics()
    relay = None
    if config.temporal is not None:
        relay = Relay(config.engine, config.temporal, config.types.names, metrics, config.relay_max_backoff)
    metrics.watch_undelivered(lambda: undelivered_count(config.engine, config.types.names))
    writer = Writer(config.engine, config.types)
    keys = auth.KeyCache()

    relay_task: list[asyncio.Task[None]] = []  # the running relay, for /healthz

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop)) if relay is not None and config.relay else None
        if task is not None:
            relay_task.append(task)
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await writer.close()

    app = FastAPI(
        title="Journey events",
        version="1",
        description="Events in for B2B account journeys: authenticated, stored before answering, relayed to "
        "Temporal exactly once per journey.",
        lifespan=lifespan,
        docs_url=None,  # served below, with a policy that lets Swagger UI load
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=config.max_body, refused=lambda: metrics.refused.labels("size").inc())
    app.add_middleware(SecurityHeaders)  # added last, so outermost: the 413 of BodyLimit gets them too

    @app.exception_handler(ingest.ProblemError)
    async def _problem(_: Request, error: ingest.ProblemError) -> JSONResponse:
        metrics.refused.labels("body").inc()
        body = Problem(error=error.error, detail=error.detail, path=error.path)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status)

    @app.exception_handler(auth.AuthError)
    async def _refused(request: Request, error: auth.AuthError) -> JSONResponse:
        metrics.refused.labels("auth").inc()
        log.info("request refused", path=request.url.path, status=error.status, reason=error.reason)
        kind = "unauthorized" if error.status == 401 else "forbidden"
        return JSONResponse(Problem(error=kind, detail=error.reason).model_dump(exclude_none=True), error.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
        """The router's 404 and 405, the analytics' 400s: the Problem shape like every other refusal."""
        problem = Problem(error=_error_name(error.status_code), detail=_http_detail(request, error))
        return JSONResponse(problem.model_dump(exclude_none=True), error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def _failed(_: Request, error: Exception) -> JSONResponse:
        # Starlette re-raises the error after this answer, so the server still logs its traceback; the
        # answer is sent from outside the middleware, hence the headers here.
        detail = (
            "the service failed on this request (its log says why): send it again later; an event_id makes that safe"
        )
        problem = Problem(error="internal_error", detail=detail)
        return JSONResponse(problem.model_dump(exclude_none=True), 500, headers=SECURITY_HEADERS)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
        problem = Problem(error="invalid_body", detail=str(first["msg"]), path=".".join(map(str, first["loc"])))
        return JSONResponse(problem.model_dump(exclude_none=True), 422)

    async def caller(
        request: Request, _bearer_token: Any = Depends(_bearer), _signed: Any = Depends(_signature)
    ) -> auth.Caller:
        """An API key, or else a body signature; the body is read (and kept) here so it can be checked."""
        body = await request.body()
        authorization = request.headers.get("authorization")
        if authorization:
            if keys.get(_key_id(authorization)) is not None:  # read within the last second: no thread needed
                return auth.check_bearer(config.engine, authorization, keys)
            return await asyncio.to_thread(auth.check_bearer, config.engine, authorization, keys)
        signature = request.headers.get("x-journey-signature")
        if signature:
            timestamp = request.headers.get("x-journey-timestamp")
            return auth.check_signature(webhook_keys, signature, timestamp, request.method, _target(request), body)
        raise auth.AuthError("no credentials: send 'Authorization: Bearer <api key>' or a signed body")

    def answered(answer: EventsAnswer) -> EventsAnswer:
        for status in ("accepted", "duplicate", "unmatched", "rejected"):
            metrics.events.labels(status).inc(getattr(answer, status))
        if relay is not None and answer.accepted:
            relay.wake.set()
        return answer

    @app.post(
        "/v1/events",
        response_model=EventsAnswer,
        responses=_REFUSALS,
        openapi_extra={"requestBody": _EVENTS_BODY},
        summary="Send one event, or a batch of up to 1,000",
    )
    async def post_events(request: Request, _caller: auth.Caller = Depends(caller)) -> EventsAnswer:
        """Each event gets its own verdict: accepted, duplicate (event id seen before), unmatched (stored;
        no known account or person) or rejected (not stored; `path` names the field). The answer is 200
        whenever the body could be read, even if every event was rejected."""
        batch, single = ingest.split_batch(ingest.read_json(await request.body()))
        judged = [ingest.judge(raw, index, single, config.types) for index, raw in enumerate(batch)]
        answer = await writer.store(judged)
        return answered(answer)

    @app.post(
        "/v1/forms/{form}",
        response_model=EventAnswer,
        responses=_REFUSALS,
        openapi_extra={"requestBody": _FORM_BODY},
        summary="A form tool's webhook: the submission becomes a form_fill",
    )
    async def post_form(form: str, request: Request, _caller: auth.Caller = Depends(caller)) -> EventAnswer:
        """JSON or form-encoded fields; `email` is required. A new email on a known account's domain
        creates the person."""
        body = await request.body()
        fields = await _form_fields(request, body)
        event = ingest.form_event(form, fields, request.headers.get("idempotency-key"), body)
        answer = await writer.store([event])
        return answered(answer).results[0]

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}}, summary="Database and Temporal")
    async def healthz() -> JSONResponse:
        database = await asyncio.to_thread(_database_ok, config.engine)
        temporal = await _temporal_ok(config.temporal)
        relay_state = _relay_state(relay_task[0] if relay_task else None)
        parked = await asyncio.to_thread(parked_count, config.engine) if database == "ok" else 0
        healthy = database == "ok" and temporal in ("ok", "not used") and relay_state in ("running", "not run here")
        body = Health(
            status="ok" if healthy else "unavailable",
            database=database,
            temporal=temporal,
            relay=relay_state,
            parked_events=parked,
        )
        return JSONResponse(body.model_dump(), 200 if healthy else 503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
        summary="Prometheus metrics",
    )
    async def get_metrics() -> Response:
        content = await asyncio.to_thread(metrics.render)
        return Response(content, media_type=CONTENT_TYPE)

    app.include_router(email_links.router(config.engine, config.tokens, config.types, metrics, answered))
    app.include_router(privacy.router(config.engine, caller))  # erasure, with the credentials of events
    app.include_router(records.router(config.engine, caller, lambda: relay.wake.set() if relay else None))
    # Account analytics pages (issue 8) read the same database and need the same credentials as events.
    app.dependency_overrides[analytics_web.analytics_engine] = lambda: config.engine
    app.include_router(analytics_web.router, dependencies=[Depends(caller)], responses=_ANALYTICS_ANSWERS)
    # The codec endpoint for Temporal's UI and CLI: present when payloads are stored by reference or encrypted.
    if (payload_codec := temporal.payload_codec(config.engine)) is not None:
        app.include_router(codec.router(payload_codec), dependencies=[Depends(caller)], responses=_REFUSALS)
        if origins := [o.strip() for o in os.environ.get(CODEC_ORIGINS_ENV, "").split(",") if o.strip()]:
            app.add_middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["POST"],
                allow_headers=["authorization", "content-type", "x-namespace"],
                allow_credentials=True,
            )

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=f"{app.title} - Swagger UI")
        html = bytes(page.body).decode()
        policy = _DOCS_POLICY.format(scripts=analytics_web.inline_scripts(html))
        return HTMLResponse(html, headers={"content-security-policy": policy})

    _register_models(app)
    return app


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer; one the answer already has (a page's own policy) is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error_name(status: int) -> str:
    """'not_found', 'method_not_allowed', ...: the status's own phrase, as the other refusals name theirs."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _http_detail(request: Request, error: HTTPException) -> str:
    try:
        generic = error.detail == HTTPStatus(error.status_code).phrase
    except ValueError:
        generic = False
    if generic and error.status_code == 404:
        return "nothing is served at this path: the endpoints are listed at /docs and in /openapi.json"
    if generic and error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on this path: use {allowed or 'another method'}"
    return str(error.detail)


def _target(request: Request) -> str:
    """The path as the request line sent it, percent-encoding untouched, then '?query' when there is one:
    what a webhook signature covers."""
    path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string", b"")
    return (path + b"?" + query if query else path).decode("latin-1")


def _register_models(app: FastAPI) -> None:
    """Put EventIn and EventBatch into components, since the events body is read by hand (to check the
    signature over the raw bytes first) and FastAPI therefore does not see them."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (EventIn, EventBatch):
                document = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(document.pop("$defs", {}))
                components[model.__name__] = document
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _key_id(authorization: str) -> str:
    key = authorization.partition(" ")[2].strip()
    return key[: key.find("_", len(auth.KEY_PREFIX))]


async def _form_fields(request: Request, body: bytes) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise ingest.ProblemError(422, "invalid_body", "the form body is not UTF-8 text") from None
    if kind == "multipart/form-data":
        try:
            async with request.form() as form:  # closes the files' spooled temporary files on the way out
                return {name: value for name, value in form.items() if isinstance(value, str)}
        except (HTTPException, MultiPartException) as error:  # Starlette raises the former inside an app
            reason = error.detail if isinstance(error, HTTPException) else error.message
            raise ingest.ProblemError(422, "invalid_body", f"the multipart body cannot be read: {reason}") from None
    if kind in ("application/json", ""):
        data = ingest.read_json(body)
        if not isinstance(data, dict):
            raise ingest.ProblemError(422, "invalid_body", "expected the form's fields as a JSON object")
        return data
    raise ingest.ProblemError(
        415, "unsupported_media_type", f"'{kind}': send application/json or application/x-www-form-urlencoded"
    )


def _relay_state(task: asyncio.Task[None] | None) -> str:
    if task is None:
        return "not run here"
    if not task.done():
        return "running"
    error = None if task.cancelled() else task.exception()
    return f"stopped: {type(error).__name__}: {error}"[:300] if error is not None else "stopped"


def _database_ok(engine: Engine) -> str:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # any failure is the answer here
        return f"unreachable: {type(error).__name__}: {error}"[:300]


async def _temporal_ok(link: TemporalLink | None) -> str:
    if link is None:
        return "not used"
    try:
        client = await asyncio.wait_for(link.client(), timeout=3)
        healthy = await client.service_client.check_health(timeout=timedelta(seconds=2))
        return "ok" if healthy else "not serving"
    except Exception as error:  # any failure is the answer here
        return f"unreachable: {type(error).__name__}: {error}"[:300]
