"""`call_service` against a real HTTP server on loopback standing in for the CRM, LinkedIn and Slack."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from urllib.parse import parse_qs, urlsplit

import pytest
from structlog.testing import capture_logs
from support import free_port
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.services import BODY_KEPT, ServiceActivities
from engine.language.model import Service, ServiceAuth
from engine.workflow.contracts import ServiceCallRequest, ServiceCallResult

SECRET = "s3cr3t-token-value"
KEY = "journey-ai-seed-abm-acme/run-1/owner_task/1"
WHERE = ("'crm_task'", "'ai-seed-abm'", "'acme'", "'owner_task'")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    echo_auth: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class StandIn(ThreadingHTTPServer):
    """Answers each path as told and records every request it receives."""

    daemon_threads = False  # server_close() then joins handler threads: none outlives its test

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: dict[str, Reply] = {}
        self.requests: list[Recorded] = []
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append(Recorded(self.command, self.path, headers, body))
        reply = self.server.replies.get(urlsplit(self.path).path, Reply())
        self.server.release.wait(reply.delay)
        content = f"invalid credentials {headers.get('authorization')}".encode() if reply.echo_auth else reply.body
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(content)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)
        except OSError:
            pass  # the client gave up waiting (the timeout test)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    monkeypatch.setenv("CRM_API_TOKEN", SECRET)
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    thread.join()
    server.server_close()


def make_request(url: str, method: str = "POST", timeout: float = 5, **auth: object) -> ServiceCallRequest:
    service = Service(
        url=url,
        method=method,  # type: ignore[arg-type]
        timeout=timedelta(seconds=timeout),
        retries=3,
        auth=ServiceAuth.model_validate({"env": "CRM_API_TOKEN", **auth}),
    )
    return ServiceCallRequest(
        key=KEY,
        service_name="crm_task",
        service=service,
        journey_id="ai-seed-abm",
        account_id="acme",
        node_id="owner_task",
        account={"id": "acme", "name": "Acme Seeds", "employees": 420},
    )


async def call(request: ServiceCallRequest, attempt: int = 1) -> ServiceCallResult:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    activities = ServiceActivities()
    try:
        return await env.run(activities.call_service, request)
    finally:
        await activities.aclose()


async def failure(request: ServiceCallRequest) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await call(request)
    return caught.value


class TestSuccess:
    """A 2xx answer returns its status and body; the request carries the payload, key and secret."""

    async def test_post_payload_headers_and_json_result(self, server: StandIn) -> None:
        """POST sends the JSON payload, Idempotency-Key, User-Agent and Bearer secret; JSON comes back parsed."""
        server.replies["/crm/tasks"] = Reply(201, b'{"task_id": "T-17", "ok": true}')
        result = await call(make_request(server.url("/crm/tasks")))
        assert result == ServiceCallResult(status_code=201, body={"task_id": "T-17", "ok": True})
        [sent] = server.requests
        assert (sent.method, sent.path) == ("POST", "/crm/tasks")
        assert sent.headers["idempotency-key"] == KEY
        assert sent.headers["authorization"] == f"Bearer {SECRET}"
        assert sent.headers["user-agent"] == f"temporal-journeys/{version('temporal-journeys')}"
        assert sent.headers["content-type"] == "application/json"
        assert json.loads(sent.body) == {
            "journey": "ai-seed-abm",
            "account_id": "acme",
            "account": {"id": "acme", "name": "Acme Seeds", "employees": 420},
            "node": "owner_task",
            "idempotency_key": KEY,
        }

    async def test_get_sends_query_params(self, server: StandIn) -> None:
        """GET sends journey, account_id and node as query parameters, keeping those already in the URL."""
        await call(make_request(server.url("/crm/accounts?api-version=2"), method="GET"))
        [sent] = server.requests
        assert sent.method == "GET"
        assert sent.body == b""
        assert parse_qs(urlsplit(sent.path).query) == {
            "api-version": ["2"],
            "journey": ["ai-seed-abm"],
            "account_id": ["acme"],
            "node": ["owner_task"],
        }

    async def test_text_body_truncated(self, server: StandIn) -> None:
        """A body that is not JSON comes back as text cut to 2,000 characters."""
        server.replies["/slack/alert"] = Reply(200, b"x" * 5_000, content_type="text/plain")
        result = await call(make_request(server.url("/slack/alert")))
        assert result.body == "x" * BODY_KEPT

    async def test_empty_body_is_none(self, server: StandIn) -> None:
        """A 204 with no content returns body None."""
        server.replies["/crm/accounts"] = Reply(204)
        result = await call(make_request(server.url("/crm/accounts"), method="PATCH"))
        assert result == ServiceCallResult(status_code=204, body=None)

    async def test_bare_secret_in_custom_header(self, server: StandIn) -> None:
        """scheme: null sends the secret alone, in the header the service names."""
        await call(make_request(server.url("/crm/tasks"), header="X-Api-Key", scheme=None))
        [sent] = server.requests
        assert sent.headers["x-api-key"] == SECRET
        assert "authorization" not in sent.headers


class TestFailures:
    """Each failure raises an ApplicationError whose type and retryability the workflow relies on."""

    async def test_500_is_unavailable_and_retryable(self, server: StandIn) -> None:
        """A 500 raises retryable ServiceUnavailable naming service, journey, account, node and status."""
        server.replies["/crm/tasks"] = Reply(500, b"database is down", content_type="text/plain")
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable, error.next_retry_delay) == ("ServiceUnavailable", False, None)
        assert all(part in error.message for part in WHERE)
        assert "500 Internal Server Error: 'database is down'" in error.message

    async def test_429_retry_after_seconds(self, server: StandIn) -> None:
        """A 429 with Retry-After: 7 asks Temporal to wait 7 s before the next attempt."""
        server.replies["/crm/tasks"] = Reply(429, headers={"Retry-After": "7"})
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable) == ("ServiceUnavailable", False)
        assert error.next_retry_delay == timedelta(seconds=7)

    async def test_503_retry_after_date(self, server: StandIn) -> None:
        """A 503 with Retry-After as an HTTP date waits until that time."""
        server.replies["/crm/tasks"] = Reply(503, headers={"Retry-After": formatdate(time.time() + 60, usegmt=True)})
        error = await failure(make_request(server.url("/crm/tasks")))
        assert error.next_retry_delay is not None
        assert timedelta(seconds=55) < error.next_retry_delay <= timedelta(seconds=60)

    async def test_404_is_rejected_and_final(self, server: StandIn) -> None:
        """A 404 raises non-retryable ServiceRejected with the status and a body excerpt."""
        server.replies["/crm/tasks"] = Reply(404, b'{"error": "no such owner"}')
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable) == ("ServiceRejected", True)
        assert all(part in error.message for part in WHERE)
        assert """404 Not Found: '{"error": "no such owner"}'""" in error.message

    async def test_redirect_not_followed(self, server: StandIn) -> None:
        """A 3xx is not followed (the secret stays home) and is rejected with a hint to fix the URL."""
        server.replies["/crm/tasks"] = Reply(301, headers={"Location": "https://elsewhere.example/tasks"})
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable) == ("ServiceRejected", True)
        assert "redirect to 'https://elsewhere.example/tasks'" in error.message
        assert len(server.requests) == 1

    async def test_slow_server_times_out(self, server: StandIn) -> None:
        """A server slower than the service's timeout raises retryable ServiceTimeout, on time."""
        server.replies["/crm/tasks"] = Reply(delay=10)
        request = make_request(server.url("/crm/tasks"), timeout=0.3)
        started = time.monotonic()
        error = await failure(request)
        assert time.monotonic() - started < 2
        assert (error.type, error.non_retryable) == ("ServiceTimeout", False)
        assert "no answer within 0.3s" in error.message

    async def test_connection_refused_is_unavailable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nothing listening raises retryable ServiceUnavailable."""
        monkeypatch.setenv("CRM_API_TOKEN", SECRET)
        error = await failure(make_request(f"http://127.0.0.1:{free_port()}/crm/tasks"))
        assert (error.type, error.non_retryable) == ("ServiceUnavailable", False)
        assert "cannot reach" in error.message


class TestSecrets:
    """The secret is read from the environment at call time and shows up nowhere but its header."""

    async def test_missing_env_is_misconfigured(self, server: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unset variable raises non-retryable ServiceMisconfigured naming it; nothing is sent."""
        monkeypatch.delenv("CRM_API_TOKEN")
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable) == ("ServiceMisconfigured", True)
        assert "environment variable 'CRM_API_TOKEN' is not set" in error.message
        assert all(part in error.message for part in WHERE)
        assert server.requests == []

    async def test_unsendable_secret_is_misconfigured(self, server: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
        """A secret with a line break inside is refused without quoting it; a trailing newline is trimmed."""
        monkeypatch.setenv("CRM_API_TOKEN", "abc\ndef")
        error = await failure(make_request(server.url("/crm/tasks")))
        assert (error.type, error.non_retryable) == ("ServiceMisconfigured", True)
        assert "abc" not in error.message
        monkeypatch.setenv("CRM_API_TOKEN", SECRET + "\n")
        await call(make_request(server.url("/crm/tasks")))
        assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"

    async def test_echoed_secret_redacted(self, server: StandIn) -> None:
        """A service that echoes the token in its error body does not get it into the failure message."""
        server.replies["/crm/tasks"] = Reply(401, content_type="text/plain", echo_auth=True)
        error = await failure(make_request(server.url("/crm/tasks")))
        assert SECRET not in error.message
        assert "invalid credentials Bearer [secret]" in error.message

    async def test_logs_without_secret(self, server: StandIn) -> None:
        """Each call logs service, method, url without query, status, elapsed ms and attempt; never the secret."""
        server.replies["/crm/accounts"] = Reply(500)
        with capture_logs() as logs:
            await call(make_request(server.url("/crm/tasks?token=abc")), attempt=3)
            with pytest.raises(ApplicationError):
                await call(make_request(server.url("/crm/accounts"), method="GET"))
        assert SECRET not in repr(logs)
        ok, failed = logs
        assert ok.pop("elapsed_ms") >= 0
        assert ok == {
            "event": "service_call",
            "log_level": "info",
            "service": "crm_task",
            "journey": "ai-seed-abm",
            "account": "acme",
            "node": "owner_task",
            "method": "POST",
            "url": server.url("/crm/tasks"),
            "attempt": 3,
            "status": 200,
            "outcome": "ok",
        }
        assert (failed["log_level"], failed["status"], failed["outcome"]) == ("warning", 500, "ServiceUnavailable")
