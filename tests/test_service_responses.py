"""`external_action` branching on its service's answer (`on_response`) and keeping parts of it (`store`): the bounded
answer `call_service` returns, the compiled Plan, and the workflow on the time-skipping server against a real HTTP
server on loopback."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, free_port, start, steps, write_journey
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.accounts import AccountActivities
from activities.services import MAX_JSON_DEPTH, MAX_JSON_VALUES, MAX_RESPONSE_BYTES, ServiceActivities
from engine.db import Account, ActivityEvent
from engine.dev.standin import standin_services
from engine.language import responses
from engine.language.compiler import compile_file
from engine.language.model import Service, ServiceAuth
from engine.language.render import node_summary
from engine.workflow import answers, details
from engine.workflow.contracts import ServiceCallRequest, ServiceCallResult, StoreResponseRequest

REPO = Path(__file__).resolve().parent.parent
TOKEN = "response-test-token"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Router(ThreadingHTTPServer):
    """Answers each path with its queue of replies (the last one repeats) and counts the calls."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.replies: dict[str, list[Reply]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) breaks the pipe: that is the point


class _Handler(BaseHTTPRequestHandler):
    server: Router

    def _answer(self) -> None:
        sent = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.calls.append((self.path, json.loads(sent) if sent else {}))
        queue = self.server.replies.get(self.path, [Reply()])
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        self.server.release.wait(reply.delay)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def router(monkeypatch: pytest.MonkeyPatch) -> Iterator[Router]:
    monkeypatch.setenv("ROUTER_TOKEN", TOKEN)
    server = Router()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def reply(status: int = 201, **body: Any) -> Reply:
    return Reply(status, json.dumps(body).encode())


def request(url: str, reads_response: bool = True) -> ServiceCallRequest:
    return ServiceCallRequest(
        key="journey-x/run/route/1",
        service_name="router",
        service=Service(url=url, timeout=timedelta(seconds=2), auth=ServiceAuth(env="ROUTER_TOKEN")),
        journey_id="lead-test",
        account_id="acme-corp",
        node_id="route",
        reads_response=reads_response,
    )


async def call(service_request: ServiceCallRequest) -> ServiceCallResult:
    activities = ServiceActivities()
    try:
        return await ActivityEnvironment().run(activities.call_service, service_request)
    finally:
        await activities.aclose()


class TestBoundedAnswer:
    """`call_service` returns a 2xx answer bounded in size, depth and values; old results still load."""

    async def test_json_and_headers(self, router: Router) -> None:
        """JSON comes back parsed, headers lowercased, without set-cookie, values cut to 500 characters."""
        router.replies["/route"] = [
            Reply(
                202,
                b'{"lead": {"id": "L-1"}}',
                headers={"X-Lead-Status": "queued", "Set-Cookie": "session=abc", "X-Long": "v" * 900},
            )
        ]
        result = await call(request(router.url("/route")))
        assert (result.status_code, result.body, result.body_note) == (202, {"lead": {"id": "L-1"}}, None)
        assert result.headers["x-lead-status"] == "queued"
        assert result.headers["x-long"] == "v" * 500
        assert "set-cookie" not in result.headers

    @pytest.mark.parametrize(
        ("body", "note"),
        [
            (b'{"pad": "' + b"x" * MAX_RESPONSE_BYTES + b'"}', f"larger than {MAX_RESPONSE_BYTES:,} bytes"),
            (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), f"nested deeper than {MAX_JSON_DEPTH} levels"),
            (json.dumps(list(range(MAX_JSON_VALUES + 1))).encode(), f"more than {MAX_JSON_VALUES:,} values"),
            (b"[" * 5_000 + b"]" * 5_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        ],
        ids=["too-large", "too-deep", "too-many-values", "deeper-than-the-parser"],
    )
    async def test_json_beyond_the_limits_is_null(self, router: Router, body: bytes, note: str) -> None:
        """JSON beyond a limit comes back as a null body, with the reason."""
        router.replies["/route"] = [Reply(200, body)]
        result = await call(request(router.url("/route")))
        assert (result.status_code, result.body, result.body_note) == (200, None, note)

    async def test_huge_answer_is_not_read_whole(self, router: Router) -> None:
        """A 20 MB answer is read only up to the limit (the call returns promptly, body null)."""
        router.replies["/route"] = [Reply(200, b" " * 20_000_000)]
        result = await call(request(router.url("/route")))
        assert result.body is None
        assert result.body_note == f"larger than {MAX_RESPONSE_BYTES:,} bytes"

    async def test_text_and_not_json(self, router: Router) -> None:
        """Text is kept up to 2,000 characters; NaN is not JSON (the text is kept instead)."""
        router.replies["/text"] = [Reply(200, b"y" * 3_000, content_type="text/plain")]
        router.replies["/nan"] = [Reply(200, b'{"score": NaN}')]
        text = await call(request(router.url("/text")))
        assert (text.body, text.body_note) == ("y" * 2_000, "text cut to 2,000 characters")
        nan = await call(request(router.url("/nan")))
        assert (nan.body, nan.body_note) == ('{"score": NaN}', "not valid JSON")

    async def test_unread_answer_as_before(self, router: Router) -> None:
        """A node that does not read the answer gets what it always got: no headers, JSON over 2,000 bytes as text."""
        router.replies["/route"] = [Reply(200, json.dumps({"pad": "z" * 3_000}).encode(), headers={"X-A": "1"})]
        result = await call(request(router.url("/route"), reads_response=False))
        assert result.headers == {}
        assert result.body == json.dumps({"pad": "z" * 3_000})[:2_000]
        assert result.body_note is None

    def test_payloads_recorded_before_still_load(self) -> None:
        """A request that does not read the answer serialises as before; old results load, None too."""
        dumped = request("http://127.0.0.1/x", reads_response=False).model_dump(mode="json")
        assert "reads_response" not in dumped
        assert ServiceCallRequest.model_validate(dumped).reads_response is False
        old = ServiceCallResult.model_validate({"status_code": 200, "body": {"ok": True}})
        assert (old.headers, old.body_note) == ({}, None)
        assert answers.response_of({"status_code": 201, "body": None}) == {"status": 201, "body": None, "headers": {}}
        assert answers.response_of(None) == {"status": 0, "body": None, "headers": {}}


JOURNEY = """
- id: route
  type: external_action
  service: router
  on_response:
    - when: "response.body.route == 'sales'"
      next: sales
    - when: "response.status == 202 or response.headers['x-lead-status'] == 'queued'"
      next: queued
  store:
    crm_lead_id: response.body.lead_id
    owner_email: response.body.owner.email
    employees: response.body.size
  on_success: nurture
  on_error: failed
  on_timeout: slow
- id: sales
  type: end
- id: queued
  type: end
- id: nurture
  type: end
- id: failed
  type: end
- id: slow
  type: end
"""
SALES = "when response.body.route == 'sales'"
QUEUED = "when response.status == 202 or response.headers['x-lead-status'] == 'queued'"


def router_journey(folder: Path, router: Router, body: str = JOURNEY, retries: int = 2) -> Any:
    return write_journey(
        folder,
        body,
        start="route",
        services=f"""
            services:
              router:
                url: {router.url("/route")}
                timeout: 1s
                retries: {retries}
                auth: {{env: ROUTER_TOKEN}}
        """,
    )


def account_events(db: Engine) -> list[dict[str, Any]]:
    with Session(db) as session:
        rows = session.exec(select(ActivityEvent).where(ActivityEvent.type == "account_updated")).all()
        return [row.payload for row in rows]


def account(db: Engine) -> Account:
    with Session(db) as session:
        found = session.get(Account, "acme-corp")
        assert found is not None
        return found


class TestPaths:
    """The first on_response condition that holds picks the branch; none falls back to on_success; failures are
    unchanged."""

    @pytest.mark.parametrize(
        ("answer", "ended", "branch"),
        [
            (reply(201, route="sales", lead_id="L-9"), "sales", SALES),
            (reply(202, lead_id="L-9"), "queued", QUEUED),
            (Reply(200, b"{}", headers={"X-Lead-Status": "queued"}), "queued", QUEUED),
            (reply(200, route="nurture"), "nurture", "on_success"),
            (Reply(204), "nurture", "on_success"),
            (Reply(200, b"<html>routed</html>", content_type="text/html"), "nurture", "on_success"),
        ],
        ids=["first-path", "second-path-status", "second-path-header", "fallback", "no-body", "text-body"],
    )
    async def test_each_path(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        router: Router,
        answer: Reply,
        ended: str,
        branch: str,
    ) -> None:
        """Each answer takes its path; the node_left row names the branch."""
        router.replies["/route"] = [answer]
        add_account(db)
        result = await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert result.ended_at == ended
        assert ("node_left", "route", branch) in steps(db)

    @pytest.mark.parametrize(
        ("answer", "ended", "calls"),
        [(Reply(500), "failed", 3), (Reply(409, b"{}"), "failed", 1), (Reply(delay=5), "slow", 3)],
        ids=["server-error", "rejected", "timeout"],
    )
    async def test_failures_unchanged(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        router: Router,
        answer: Reply,
        ended: str,
        calls: int,
    ) -> None:
        """Errors and timeouts take on_error / on_timeout after the retries, and store nothing."""
        router.replies["/route"] = [answer]
        add_account(db)
        result = await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert result.ended_at == ended
        assert len(router.calls) == calls
        assert account_events(db) == []

    async def test_body_beyond_limits_falls_back(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, router: Router
    ) -> None:
        """An answer too large to keep reads as a null body: no condition holds, nothing is stored."""
        big = {"route": "sales", "lead_id": "L-1", "pad": "p" * MAX_RESPONSE_BYTES}
        router.replies["/route"] = [Reply(200, json.dumps(big).encode())]
        add_account(db)
        result = await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert result.ended_at == "nurture"
        assert account_events(db) == []


class TestStore:
    """`store` saves the chosen fields once, as an account_updated event, whatever is retried."""

    async def test_stores_fields_once(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, router: Router
    ) -> None:
        """Attributes and fields are saved; a missing value changes nothing; a later split reads the attribute."""
        body = JOURNEY.replace("  on_success: nurture", "  on_success: check").replace(
            "- id: sales\n",
            "- id: check\n  type: split\n  paths:\n    - when: \"account.crm_lead_id == 'L-7'\"\n"
            "      next: sales\n  otherwise: nurture\n- id: sales\n",
        )
        router.replies["/route"] = [reply(200, lead_id="L-7", owner={"email": "Owner@Sales.example"}, size="1200")]
        add_account(db, owner_email="old@sales.example")
        result = await (await start(time_env.client, router_journey(tmp_path, router, body), worker)).result()
        assert result.ended_at == "sales"
        stored = account(db)
        assert (stored.owner_email, stored.employees) == ("owner@sales.example", 1200)
        assert stored.attributes["crm_lead_id"] == "L-7"
        [event] = account_events(db)
        assert event["set"] == {"crm_lead_id": "L-7", "owner_email": "owner@sales.example", "employees": 1200}
        assert event["changes"]["owner_email"] == {"old": "old@sales.example", "new": "owner@sales.example"}
        assert event["service"] == "router"

    async def test_refused_value_is_left_out(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, router: Router
    ) -> None:
        """A value a field cannot take is not written; the event names it and says why."""
        router.replies["/route"] = [reply(200, lead_id="L-8", size="many")]
        add_account(db)
        await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert account(db).employees == 250
        [event] = account_events(db)
        assert event["set"] == {"crm_lead_id": "L-8"}
        assert event["refused"] == {"employees": "expected a whole number of at least 0, got 'many'"}

    async def test_call_retried_stores_once(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path, router: Router
    ) -> None:
        """A 503 then a 201: the call is retried with the same key, the answer is stored once."""
        router.replies["/route"] = [Reply(503), reply(201, route="sales", lead_id="L-2")]
        add_account(db)
        result = await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert result.ended_at == "sales"
        assert len(router.calls) == 2
        assert len(account_events(db)) == 1

    async def test_store_activity_retried_writes_once(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        router: Router,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The store's first attempt commits, then fails (a lost answer): the retry finds its key and writes nothing."""
        store = AccountActivities._store
        attempts: list[int] = []

        def lost_answer(self: AccountActivities, store_request: StoreResponseRequest) -> dict[str, Any]:
            data = store(self, store_request)
            attempts.append(1)
            if len(attempts) == 1:
                raise ApplicationError("the answer was lost on the way back")
            return data

        monkeypatch.setattr(AccountActivities, "_store", lost_answer)
        router.replies["/route"] = [reply(201, route="sales", lead_id="L-3")]
        add_account(db)
        result = await (await start(time_env.client, router_journey(tmp_path, router), worker)).result()
        assert result.ended_at == "sales"
        assert len(attempts) == 2
        [event] = account_events(db)
        assert event["set"] == {"crm_lead_id": "L-3"}

    async def test_store_activity_directly_twice(self, db: Engine) -> None:
        """Two runs of the same store request: one write, one event."""
        add_account(db)
        store_request = StoreResponseRequest(
            key="k/route/1/store",
            journey_id="j",
            account_id="acme-corp",
            node_id="route",
            service_name="router",
            values={"crm_lead_id": "L-4", "timezone": "europe/berlin"},
            occurred_at=datetime.now(UTC),
        )
        activities = AccountActivities(db)
        first = await ActivityEnvironment().run(activities.store_response, store_request)
        second = await ActivityEnvironment().run(activities.store_response, store_request)
        assert first == second
        assert (first["crm_lead_id"], first["timezone"]) == ("L-4", "Europe/Berlin")
        assert len(account_events(db)) == 1


class TestPlan:
    """The compiled Plan, `journey show` and the operator's details name the response paths and the store."""

    def test_edges_summary_and_details(self, tmp_path: Path, router: Router) -> None:
        """on_response paths become `when ...` edges after on_success / on_error; stored names are attributes."""
        plan = router_journey(tmp_path, router)
        labels = [edge.label for edge in plan.edges["route"]]
        assert labels == ["on_success", "on_error", "on_timeout", SALES, QUEUED]
        assert "crm_lead_id" in plan.custom_account_attributes
        node = plan.nodes["route"]
        assert node_summary(node) == "call router (2 response paths; store crm_lead_id, owner_email, employees)"
        text = details.current_details(plan, node, datetime(2026, 1, 1, tzinfo=UTC), waiting="working")
        assert "On a 2xx answer, the first that holds: `response.body.route == 'sales'` → sales" in text
        assert "none: on_success → nurture" in text
        assert "Stores on the account: crm_lead_id ← `response.body.lead_id`" in text

    def test_plain_node_unchanged(self, tmp_path: Path, router: Router) -> None:
        """A node without on_response or store serialises, summarises and versions as before these keys."""
        body = "- id: route\n  type: external_action\n  service: router\n  on_success: done\n  on_error: done\n"
        plan = router_journey(tmp_path, router, body + "- id: done\n  type: end\n")
        assert node_summary(plan.nodes["route"]) == "call router"
        assert set(plan.nodes["route"].model_dump()) == {
            "id",
            "type",
            "description",
            "service",
            "on_success",
            "on_error",
            "on_timeout",
        }

    def test_store_values_evaluate(self) -> None:
        """Expressions over the answer give plain values; missing and null give nothing to store."""
        answer = responses.data(200, {"lead": {"id": "L-5"}, "score": "42", "none": None}, {"x-id": "abc"})
        assert responses.compile_value("response.body.lead.id").evaluate(answer) == "L-5"
        assert responses.compile_value("response.body.score | int").evaluate(answer) == 42
        assert responses.compile_value("response.headers['x-id']").evaluate(answer) == "abc"
        assert responses.compile_value("response.body.missing.deeper").evaluate(answer) is responses.MISSING
        assert responses.compile_value("response.body.none").evaluate(answer) is responses.MISSING


class TestExample:
    """journeys/lead_routing.yaml against the stand-in lead router that `journey dev` runs."""

    @pytest.mark.parametrize(
        ("employees", "ended_via", "stage", "owner"),
        [
            (5_000, SALES, "sales", "enterprise.de@sales.example"),
            (500, "on_success", "nurture", "old@sales.example"),
            (50, "when response.status == 202", "review", "old@sales.example"),
        ],
        ids=["sales", "nurture", "queued"],
    )
    async def test_lead_routing(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        employees: int,
        ended_via: str,
        stage: str,
        owner: str,
    ) -> None:
        """Each size of account takes its path, with the lead id, route and owner the router gave stored."""
        port = free_port()
        shutil.copytree(REPO / "journeys", tmp_path / "journeys")
        services = tmp_path / "journeys" / "services.yaml"
        services.write_text(services.read_text().replace("127.0.0.1:8790", f"127.0.0.1:{port}"))
        monkeypatch.setenv("CRM_API_TOKEN", TOKEN)
        plan = compile_file(tmp_path / "journeys" / "lead_routing.yaml")
        add_account(db, employees=employees, country="DE", owner_email="old@sales.example")
        with standin_services(tmp_path / "services.log", port):
            result = await (await start(time_env.client, plan, worker)).result()
        assert result.ended_at == "done"
        assert ("node_left", "route", ended_via) in steps(db)
        stored = account(db)
        assert stored.attributes["lead_stage"] == stage
        assert stored.attributes["crm_lead_id"].startswith("L-")
        assert stored.owner_email == owner
