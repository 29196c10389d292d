"""The `call_service` activity behind `external_action`: one HTTP call to a service in services.yaml.

Every failure becomes an `ApplicationError` whose `type` tells the workflow what happened: ServiceTimeout and
ServiceUnavailable are retried, ServiceRejected and ServiceMisconfigured are not. No secret reaches a message.
"""

from __future__ import annotations

import asyncio
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

BODY_KEPT = 2_000
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
            async with asyncio.timeout(seconds):
                response = await self._client.request(
                    service.method, url, headers=headers, json=body, timeout=httpx.Timeout(seconds)
                )
        except (TimeoutError, httpx.TimeoutException):
            raise fail(f"no answer within {seconds:g}s", "ServiceTimeout") from None
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise fail(f"cannot reach {fields['url']}: {reason}", "ServiceUnavailable") from None

        status = response.status_code
        if 200 <= status < 300:
            fields.update(status=status, outcome="ok", elapsed_ms=round((time.monotonic() - started) * 1000))
            log.info("service_call", **fields)
            return ServiceCallResult(status_code=status, body=_body(response))
        answer = f"answered {status} {response.reason_phrase}: {_excerpt(response.text)!r}"
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


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    # A large JSON answer is kept as truncated text: results live in the workflow's history.
    if is_json and len(response.content) <= BODY_KEPT:
        try:
            return response.json()
        except ValueError:
            pass  # a service that labels text as JSON still gets its text kept
    return response.text[:BODY_KEPT]


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
