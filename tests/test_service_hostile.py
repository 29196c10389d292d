"""The events service against requests made to abuse it, over real HTTP: signed requests replayed to other
paths, methods and queries; bodies, headers and dates made to break a parser; pages opened in a browser;
secrets too short to sign with. Every answer is a JSON refusal that says what to do, never a 500."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from analytics_support import loaded_database
from browser import dump_dom
from fastapi import FastAPI
from service_support import SECRET, log_row, signed, stored
from sqlalchemy.engine import Engine
from support import add_account
from typer.testing import CliRunner

from engine.analytics import web as analytics_web
from engine.cli import app as cli
from engine.service import auth
from engine.service.app import SECURITY_HEADERS, SecurityHeaders, ServiceConfig, create_app
from engine.service.serve import serving
from engine.tracking import Tokens

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events.md"
TOKENS = Tokens(b"tracking-secret-for-hostile-tests-0123456789", "http://links.example")
MAKE_SECRET = '`python -c "import secrets; print(secrets.token_urlsafe(32))"`'
TIMELINE = "/analytics/timeline?account=acme&format=json"


@dataclass
class Service:
    http: httpx.AsyncClient
    db: Engine
    url: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The analytics data set (so the reports have rows) plus the account acme-corp (so forms match)."""
    with loaded_database("sqlite", tmp_path_factory.mktemp("hostile"), None) as engine:
        add_account(engine)
        yield engine


@pytest.fixture
async def service(data: Engine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Service]:
    monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", SECRET)
    key = auth.create_key(data, "hostile").key
    app = create_app(ServiceConfig(data, tokens=TOKENS, max_body=64 * 1024))
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as http:
        yield Service(http, data, url, key)


def _form(email: str = "ana@acme-corp.example") -> dict[str, str]:
    return {"email": email, "event_id": f"form-{uuid.uuid4().hex[:8]}"}


def _code_block(after: str, language: str) -> str:
    """The first ```language block of docs/events.md after the line holding `after`."""
    text = DOCS.read_text()
    start = text.index(f"```{language}\n", text.index(after)) + len(language) + 4
    return text[start : text.index("```", start)]


class TestSignedRequests:
    """A signature holds for one method, path and query; replayed anywhere else, or in the old body-only
    form, it is refused with what to sign, and nothing is stored."""

    async def _refused(self, service: Service, method: str, target: str, body: bytes, headers: dict[str, str]) -> str:
        before = stored(service.db)
        answer = await service.http.request(method, target, content=body, headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized"), answer.text
        assert stored(service.db) == before
        return str(answer.json()["detail"])

    async def test_a_form_signature_is_refused_on_another_form(self, service: Service) -> None:
        body, headers = signed(_form(), target="/v1/forms/newsletter")
        detail = await self._refused(service, "POST", "/v1/forms/demo-request", body, headers)
        assert detail == (
            "X-Journey-Signature does not match this request: sign '<timestamp>.<METHOD>.<path?query>.<raw body>', "
            f"here '{headers['x-journey-timestamp']}.POST./v1/forms/demo-request.' followed by the raw body"
        )
        genuine = await service.http.post("/v1/forms/newsletter", content=body, headers=headers)
        assert genuine.json()["status"] == "accepted"

    async def test_a_form_signature_does_not_read_the_analytics(self, service: Service) -> None:
        body, headers = signed(_form(), target="/v1/forms/newsletter")
        await self._refused(service, "GET", "/analytics/timeline?account=acme", b"", headers)
        await self._refused(service, "GET", "/analytics/timeline?account=acme", body, headers)

    async def test_the_method_is_signed(self, service: Service) -> None:
        body, headers = signed(_form(), method="PUT", target="/v1/forms/newsletter")
        await self._refused(service, "POST", "/v1/forms/newsletter", body, headers)

    async def test_the_query_is_signed(self, service: Service) -> None:
        _, headers = signed(b"", method="GET", target=TIMELINE)
        answer = await service.http.get(TIMELINE, headers=headers)
        assert answer.status_code == 200 and answer.json()["report"] == "timeline"
        await self._refused(service, "GET", TIMELINE.replace("acme", "globex"), b"", headers)
        await self._refused(service, "GET", TIMELINE.split("?")[0], b"", headers)
        await self._refused(service, "GET", TIMELINE + "&since=2026-01-01", b"", headers)

    async def test_the_path_is_signed_as_sent(self, service: Service) -> None:
        """Percent-encoding is signed as it is on the request line, not decoded."""
        fields = _form()
        body, headers = signed(fields, target="/v1/forms/webinar%20signup")
        answer = await service.http.post("/v1/forms/webinar%20signup", content=body, headers=headers)
        assert answer.json()["status"] == "accepted"
        row = log_row(service.db, fields["event_id"])
        assert row is not None and row.payload["form"] == "webinar signup"

    async def test_the_old_form_is_refused_with_what_to_sign(self, service: Service) -> None:
        body = json.dumps(_form()).encode()
        timestamp = str(int(time.time()))
        old = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "x-journey-timestamp": timestamp,
            "x-journey-signature": f"sha256={old}",
        }
        detail = await self._refused(service, "POST", "/v1/forms/demo-request", body, headers)
        assert detail == (
            "X-Journey-Signature signs '<timestamp>.<raw body>', the old form, which held for any method and path: "
            "sign '<timestamp>.<METHOD>.<path?query>.<raw body>' instead, "
            f"here '{timestamp}.POST./v1/forms/demo-request.' followed by the raw body"
        )

    def test_the_worked_example_of_the_docs(self) -> None:
        body = b'{"email":"ana@acme-corp.example"}'
        text = auth.signed_text(1767225600, "POST", "/v1/forms/demo-request", body)
        signature = auth.sign(
            b"an-example-secret-of-at-least-32-bytes", 1767225600, "POST", "/v1/forms/demo-request", body
        )
        assert text.decode() in _code_block("Worked example", "")
        assert f"`X-Journey-Signature: {signature}`" in DOCS.read_text()

    async def test_the_shell_example_of_the_docs(self, service: Service) -> None:
        script = _code_block("With openssl and curl", "sh").replace("localhost:8000", service.url)
        process = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
            env={**os.environ, "JOURNEY_WEBHOOK_SECRET": SECRET},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        assert json.loads(out)["status"] in ("accepted", "duplicate"), out.decode()

    async def test_the_python_example_of_the_docs(self, service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", SECRET)
        code = _code_block("In Python", "python").replace("http://localhost:8000", service.url)
        scope: dict[str, object] = {}
        await asyncio.to_thread(exec, code, scope)  # its httpx call must not block the server's loop
        answer = scope["answer"]
        assert isinstance(answer, httpx.Response)
        assert (answer.status_code, answer.json()["report"]) == (200, "timeline")


class TestHostileInput:
    """Bodies, headers and dates made to break a parser: each a JSON 4xx naming the fault, never a 500."""

    @pytest.mark.parametrize("path", ["/v1/forms/demo", "/v1/events"])
    @pytest.mark.parametrize("depth", [1_000, 30_000])  # 30,000: as deep as the 64 KiB limit allows
    async def test_deep_json(self, service: Service, path: str, depth: int) -> None:
        body = b'{"email": "ana@acme-corp.example", "x": ' + b"[" * depth + b"]" * depth + b"}"
        before = stored(service.db)
        answer = await service.http.post(
            path, content=body, headers={**service.auth, "content-type": "application/json"}
        )
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_body")
        assert answer.json()["detail"] == "the body nests too deep (events allow 16 levels)"
        assert stored(service.db) == before

    async def test_huge_integer_in_a_form(self, service: Service) -> None:
        body = b'{"email": "ana@acme-corp.example", "employees": ' + b"9" * 4_301 + b"}"
        answer = await service.http.post(
            "/v1/forms/demo", content=body, headers={**service.auth, "content-type": "application/json"}
        )
        assert (answer.status_code, answer.json()["error"]) == (422, "invalid_body")
        assert answer.json()["detail"].startswith("the body holds a number too large to read: ")

    @pytest.mark.parametrize("field", ["event_id", "account_id", "company"])
    async def test_lone_surrogate_in_a_form(self, service: Service, field: str) -> None:
        body = b'{"email": "ana@acme-corp.example", "%s": "\\ud800"}' % field.encode()
        answer = await service.http.post(
            "/v1/forms/demo", content=body, headers={**service.auth, "content-type": "application/json"}
        )
        assert answer.status_code == 422
        assert answer.json() == {
            "error": "invalid_body",
            "detail": "is not valid Unicode (a lone surrogate)",
            "path": "account.id" if field == "account_id" else field,
        }

    @pytest.mark.parametrize(
        "timestamp", [b"\xb2", "١٧٦٧٢٢٥٦٠٠".encode(), b"9" * 400, b"1767225600.5", b"-1", b""], ids=repr
    )
    async def test_unreadable_timestamp(self, service: Service, timestamp: bytes) -> None:
        headers = {"x-journey-signature": b"sha256=00", "x-journey-timestamp": timestamp}
        answer = await service.http.post("/v1/events", content=b"{}", headers=headers)
        assert (answer.status_code, answer.json()["error"]) == (401, "unauthorized")
        assert re.fullmatch(
            r"a signed request needs X-Journey-Timestamp: the unix time in seconds it was signed at, in ASCII "
            r"digits \(e\.g\. \d+\)",
            answer.json()["detail"],
        )

    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("timeline", {"account": "acme"}),
            ("nodes", {"journey": "ai-seed-abm"}),
            ("canvas", {"step": "form_fill"}),
            ("cohort", {"include": "form_fill", "return": "web_visit"}),
            ("flow", {"starts_with": "form_fill"}),
        ],
    )
    @pytest.mark.parametrize(
        ("option", "moment"), [("since", "0001-01-01T00:00:00+14:00"), ("until", "9999-12-31T23:59:59-14:00")]
    )
    async def test_a_date_utc_cannot_hold(
        self, service: Service, path: str, params: dict[str, str], option: str, moment: str
    ) -> None:
        answer = await service.http.get(f"/analytics/{path}", params={**params, option: moment}, headers=service.auth)
        assert answer.status_code == 400
        assert answer.json() == {
            "error": "bad_request",
            "detail": f"{option} '{moment}' is out of range: use a date between 0001-01-02 and 9999-12-30",
        }

    @pytest.mark.parametrize(
        ("content_type", "detail"),
        [
            ("multipart/form-data; boundary=zz", "Invalid multipart data."),
            ("multipart/form-data", "Missing boundary in multipart."),
        ],
    )
    async def test_unreadable_multipart(self, service: Service, content_type: str, detail: str) -> None:
        headers = {**service.auth, "content-type": content_type}
        answer = await service.http.post("/v1/forms/demo", content=b"garbage", headers=headers)
        assert answer.status_code == 422
        assert answer.json() == {"error": "invalid_body", "detail": f"the multipart body cannot be read: {detail}"}

    async def test_multipart_form(self, service: Service) -> None:
        fields = _form()
        answer = await service.http.post("/v1/forms/demo", files={"cv": b"..."}, data=fields, headers=service.auth)
        assert (answer.status_code, answer.json()["event_id"]) == (200, fields["event_id"])

    async def test_not_found(self, service: Service) -> None:
        answer = await service.http.get("/v1/nothing-here")
        assert answer.status_code == 404
        assert answer.json() == {
            "error": "not_found",
            "detail": "nothing is served at this path: the endpoints are listed at /docs and in /openapi.json",
        }

    async def test_method_not_allowed(self, service: Service) -> None:
        answer = await service.http.get("/v1/events", headers=service.auth)
        assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
        assert answer.json() == {
            "error": "method_not_allowed",
            "detail": "GET is not allowed on this path: use POST",
        }


class _Scripts(HTMLParser):
    """The text of each <script> element, as a browser's parser splits the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._inside = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._inside = self._inside and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.scripts[-1] += data


def _hashes(page: str) -> set[str]:
    parser = _Scripts()
    parser.feed(page)
    return {f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'" for text in parser.scripts}


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


class TestBrowserHeaders:
    """Every answer carries the browser security headers; a page runs its own inline scripts and nothing else."""

    async def test_every_kind_of_answer(self, service: Service) -> None:
        unsubscribe = TOKENS.make("u", {"p": 1, "e": "ana@acme-corp.example"})
        click = TOKENS.make("c", {"m": "m-hostile", "a": "acme-corp", "u": "https://acme.example/", "l": 1})
        answers = {
            "unsubscribe page": await service.http.get(f"/u/{unsubscribe}"),
            "click redirect": await service.http.get(f"/t/c/{click}"),
            "health": await service.http.get("/healthz"),
            "refusal": await service.http.post("/v1/events", json={}),
            "not found": await service.http.get("/nothing"),
            "too large": await service.http.post("/v1/events", content=b"x" * 70_000, headers=service.auth),
            "events": await service.http.post("/v1/events", json={"events": []}, headers=service.auth),
        }
        for name, answer in answers.items():
            headers = {header: answer.headers.get(header) for header in SECURITY_HEADERS}
            assert headers == SECURITY_HEADERS, name
        assert answers["unsubscribe page"].headers["content-type"].startswith("text/html")

    async def test_an_analytics_page_runs_only_its_own_scripts(self, service: Service) -> None:
        answer = await service.http.get("/analytics/nodes", params={"journey": "ai-seed-abm"}, headers=service.auth)
        policy = _directives(answer.headers["content-security-policy"])
        assert set(policy["script-src"]) == _hashes(answer.text)
        assert len(policy["script-src"]) == 3  # plotly's configuration, plotly itself, the chart
        assert policy["default-src"] == policy["frame-ancestors"] == ["'none'"]
        assert (answer.headers["x-frame-options"], answer.headers["referrer-policy"]) == ("DENY", "no-referrer")

    async def test_the_chart_is_drawn_under_the_policy(self, data: Engine) -> None:
        """Headless Chromium opens the page with its policy (the router alone, as the service mounts it
        but without credentials, which Chromium cannot send) and plotly draws the chart."""
        app = FastAPI()
        app.add_middleware(SecurityHeaders)
        app.include_router(analytics_web.router)
        app.dependency_overrides[analytics_web.analytics_engine] = lambda: data
        async with serving(app) as url:
            dom = await asyncio.to_thread(dump_dom, f"{url}/analytics/canvas?step=form_fill&step=opportunity_created")
        assert dom.count('class="main-svg"') >= 1

    async def test_the_api_docs_page(self, service: Service) -> None:
        answer = await service.http.get("/docs")
        policy = _directives(answer.headers["content-security-policy"])
        assert set(policy["script-src"]) == {"https://cdn.jsdelivr.net", *_hashes(answer.text)}
        assert policy["connect-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
        assert (await service.http.get("/redoc")).status_code == 404


class TestSecrets:
    """A signing secret under 32 bytes stops the service at start, with a message saying how to make one."""

    def test_short_tracking_secret(self) -> None:
        with pytest.raises(ValueError) as error:
            Tokens(b"s3cret", "https://links.example")
        assert str(error.value) == (
            "JOURNEY_TRACKING_SECRET is too short to sign with (6 bytes, at least 32 needed): "
            f"make one with {MAKE_SECRET}"
        )

    def test_short_webhook_secret(self, db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", "x")
        with pytest.raises(ValueError) as error:
            create_app(ServiceConfig(db))
        assert str(error.value) == (
            "JOURNEY_WEBHOOK_SECRET is too short to sign with (1 bytes, at least 32 needed): "
            f"make one with {MAKE_SECRET}"
        )

    def test_short_secret_while_rotating(self, db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_WEBHOOK_SECRET", f"{SECRET}, new-one")
        with pytest.raises(ValueError) as error:
            create_app(ServiceConfig(db))
        assert str(error.value).startswith("JOURNEY_WEBHOOK_SECRET (secret 2) is too short to sign with (7 bytes,")

    def test_journey_serve_refuses_to_start(self, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_DATABASE_URL", str(db.url))
        monkeypatch.setenv("JOURNEY_PUBLIC_URL", "https://links.example")
        monkeypatch.setenv("JOURNEY_TRACKING_SECRET", "change-me")
        result = CliRunner().invoke(cli, ["serve", "--journeys", str(tmp_path), "--port", "1"])
        assert result.exit_code == 1
        assert result.stderr == (
            "journey serve: JOURNEY_TRACKING_SECRET is too short to sign with (9 bytes, at least 32 needed): "
            f"make one with {MAKE_SECRET}\n"
        )
