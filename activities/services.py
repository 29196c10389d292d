"""The `call_service` activity behind `external_action`: one HTTP call to a service in services.yaml.

Every failure becomes an `ApplicationError` whose `type` tells the workflow what happened: ServiceTimeout and
ServiceUnavailable are retried, ServiceRejected and ServiceMisconfigured are not. No secret reaches a message.
An answer is outside data: at most MAX_RESPONSE_BYTES are read, and its JSON is kept only within the depth and
size limits below (the result lives in the workflow's history and `on_response` conditions read it).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.keepalive import heartbeating
from engine.workflow.contracts import ServiceCallRequest, ServiceCallResult

try:
    USER_AGENT = f"temporal-journeys/{version('temporal-journeys')}"
except PackageNotFoundError:  # running from a checkout that was never installed
    USER_AGENT = "temporal-journeys/unknown"

BODY_KEPT = 2_000  # bytes of JSON, or characters of text, kept when the node does not read the answer
MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of any answer; the JSON a node reads may be this large
MAX_JSON_DEPTH = 20
MAX_JSON_VALUES = 5_000
TEXT_KEPT = 2_000  # characters of a body that is not JSON
MAX_HEADERS = 50
HEADER_VALUE_KEPT = 500
_HEADERS_NOT_KEPT = frozenset({"set-cookie"})  # a session cookie has no business in a workflow's history
# A service asking for hours of patience still gets retried within the journey's own back-off.
MAX_RETRY_AFTER = timedelta(minutes=5)
EXCERPT_KEPT = 200
_RETRY_AFTER_STATUSES = frozenset({429, 503})

log = structlog.get_logger(__name__)


class ServiceActivities:
    """Holds one connection pool for all calls; the worker closes it with `aclose()` on shutdown."""

    def __init__(self) -> None:
        # Redirects are not followed: a custom auth header would travel to whatever host the service names.
        self._client = httpx.AsyncClient(follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    @activity.defn(name="call_service")
    @heartbeating
    async def call_service(self, request: ServiceCallRequest) -> ServiceCallResult:
        service = request.service
        where = (
            f"service '{request.service_name}' (journey '{request.journey_id}', "
            f"account '{request.account_id}', node '{request.node_id}')"
        )
        url = httpx.URL(service.url)
        fields: dict[str, Any] = {
            "service": request.service_name,
            "journey": request.journey_id,
            "account": request.account_id,
            "node": request.node_id,
            "method": service.method,
            "url": str(url.copy_with(query=None, fragment=None, userinfo=b"")),
            "attempt": activity.info().attempt,
        }
        headers = {"Idempotency-Key": request.key, "User-Agent": USER_AGENT}
        secret = None
        if service.auth is not None:
            secret = _secret(service.auth.env, where, fields)
            headers[service.auth.header] = f"{service.auth.scheme} {secret}" if service.auth.scheme else secret

        def fail(
            message: str, kind: str, status: int | None = None, delay: timedelta | None = None
        ) -> ApplicationError:
            if secret:
                message = message.replace(secret, "[secret]")
            fields.update(status=status, outcome=kind, elapsed_ms=round((time.monotonic() - started) * 1000))
            log.warning("service_call", **fields)
            retryable = kind in ("ServiceTimeout", "ServiceUnavailable")
            return ApplicationError(
                f"{where}: {message}", type=kind, non_retryable=not retryable, next_retry_delay=delay
            )

        body: dict[str, Any] | None = None
        if service.method in ("POST", "PUT", "PATCH"):
            body = {
                "journey": request.journey_id,
                "account_id": request.account_id,
                "account": request.account,
                "node": request.node_id,
                "idempotency_key": request.key,
            }
        else:  # httpx's `params=` would replace a query already in the URL; merging keeps it
            url = url.copy_merge_params(
                {"journey": request.journey_id, "account_id": request.account_id, "node": request.node_id}
            )
        seconds = service.timeout.total_seconds()
        started = time.monotonic()
        try:
            # httpx's timeout bounds each phase (connect, each read...); asyncio.timeout bounds the whole call.
            async with (
                asyncio.timeout(seconds),
                self._client.stream(
                    service.method, url, headers=headers, json=body, timeout=httpx.Timeout(seconds)
                ) as response,
            ):
                content = await _read_capped(response)
        except (TimeoutError, httpx.TimeoutException):
            raise fail(f"no answer within {seconds:g}s", "ServiceTimeout") from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise fail(f"cannot reach {fields['url']}: {reason}", "ServiceUnavailable") from None

        status = response.status_code
        if 200 <= status < 300:
            fields.update(status=status, outcome="ok", elapsed_ms=round((time.monotonic() - started) * 1000))
            kept, note = _body(response, content, request.reads_response)
            if note is not None:
                fields.update(body_note=note)
            log.info("service_call", **fields)
            return ServiceCallResult(
                status_code=status,
                body=kept,
                headers=_headers(response) if request.reads_response else {},
                body_note=note,
            )
        answer = f"answered {status} {response.reason_phrase}: {_excerpt(_text(response, content))!r}"
        if status >= 500 or status == 429:
            delay = _retry_after(response) if status in _RETRY_AFTER_STATUSES else None
            raise fail(answer, "ServiceUnavailable", status, delay)
        if 300 <= status < 400:
            answer += f" (redirect to '{response.headers.get('location', '')}': point services.yaml at the final URL)"
        raise fail(answer, "ServiceRejected", status)


def _secret(env: str, where: str, fields: dict[str, Any]) -> str:
    """The secret, read at call time so a rotated token is picked up without restarting the worker."""
    # Surrounding whitespace (a trailing newline from a mounted secret file) is never part of a token.
    secret = os.environ.get(env, "").strip()
    problem = None
    if not secret:
        problem = f"environment variable '{env}' is not set or is empty; set it to the service's token"
    elif not (secret.isascii() and secret.isprintable()):
        # httpx would raise with the header value, secret included, in its message.
        problem = f"environment variable '{env}' holds characters an HTTP header cannot carry"
    if problem is None:
        return secret
    log.warning("service_call", **fields, status=None, outcome="ServiceMisconfigured", elapsed_ms=0)
    raise ApplicationError(f"{where}: {problem}", type="ServiceMisconfigured", non_retryable=True)


async def _read_capped(response: httpx.Response) -> bytes:
    """The body, decoded (gzip...), cut at MAX_RESPONSE_BYTES + 1: one byte more says it was longer."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > MAX_RESPONSE_BYTES:
            break
    return bytes(content[: MAX_RESPONSE_BYTES + 1])


def _text(response: httpx.Response, content: bytes) -> str:
    try:
        return content.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _body(response: httpx.Response, content: bytes, reads: bool) -> tuple[Any, str | None]:
    """(what the result keeps of the body, why it is not the parsed JSON when the service sent JSON). A node that
    reads the answer gets JSON up to MAX_RESPONSE_BYTES within the depth and value limits, else null; the others
    keep BODY_KEPT, as text when the JSON is larger."""
    if not content:
        return None, None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    text = _text(response, content)
    if not is_json:
        return text[:TEXT_KEPT], (f"text cut to {TEXT_KEPT:,} characters" if reads and len(text) > TEXT_KEPT else None)
    limit = MAX_RESPONSE_BYTES if reads else BODY_KEPT
    if len(content) > limit:
        # Results live in the workflow's history: a large answer is not kept whole.
        return (None, f"larger than {limit:,} bytes") if reads else (text[:BODY_KEPT], None)
    try:
        value = json.loads(content, parse_constant=_no_constant)
    except ValueError:
        # A service that labels text as JSON still gets its text kept.
        return text[:TEXT_KEPT], ("not valid JSON" if reads else None)
    except RecursionError:  # nested deeper than Python's parser goes: far beyond the limit
        value = None
        problem: str | None = f"nested deeper than {MAX_JSON_DEPTH} levels"
    else:
        problem = _json_problem(value)
    if problem is not None:
        return (None, problem) if reads else (text[:BODY_KEPT], None)
    return value, None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json reads NaN and Infinity; no other JSON reader does


def _json_problem(value: Any) -> str | None:
    """Why the parsed JSON is beyond the limits (depth, values), or None; walked without recursion."""
    stack, count = [(value, 1)], 0
    while stack:
        current, depth = stack.pop()
        count += 1
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if count > MAX_JSON_VALUES:
            return f"more than {MAX_JSON_VALUES:,} values"
        if isinstance(current, dict):
            stack.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, list):
            stack.extend((item, depth + 1) for item in current)
    return None


def _headers(response: httpx.Response) -> dict[str, str]:
    """The answer's headers for `response.headers`: names lowercased, values and count capped."""
    kept: dict[str, str] = {}
    for name, value in response.headers.items():
        lowered = name.lower()
        if lowered in _HEADERS_NOT_KEPT or lowered in kept:
            continue
        if len(kept) >= MAX_HEADERS:
            break
        kept[lowered] = value[:HEADER_VALUE_KEPT]
    return kept


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_KEPT else text[:EXCERPT_KEPT] + "..."


def _retry_after(response: httpx.Response) -> timedelta | None:
    """Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER) if int(value) > 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = when - datetime.now(UTC)
    return min(delay, MAX_RETRY_AFTER) if delay > timedelta(0) else None
