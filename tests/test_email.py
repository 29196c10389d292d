"""The send_email activity against a real SMTP server on loopback and a real SQLite file."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy.engine import Engine
from sqlmodel import Session as DbSession
from sqlmodel import col, select
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.delivery import OutboxFileDelivery, SmtpDelivery, delivery_from_env
from activities.email import EmailActivities, html_to_text
from engine.db import Account, OutboxMessage, Person, init_db, make_engine
from engine.language.model import Recipients
from engine.workflow.contracts import SendEmailRequest, SendEmailResult

PREFIX = "journey/re-engage/acme/0f8fad5b-d9cb-469f-a165-70867728950e/checkin/1"
SENDER = "Northfield Journeys <journeys@northfield.example>"
HTML = (
    "<html><head><title>ignored</title></head><body>"
    "<p>Hi {{ person.first_name or 'there' }},</p>"
    "<p>News for <b>{{ account.name }}</b>: <a href='https://example.com/x?a=1&amp;b=2'>read more</a></p>"
    "<p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p></body></html>"
)
USER, PASSWORD = "journeys", "s3cret-pass"


@dataclass
class Received:
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


@dataclass
class Handler:
    """Keeps what the server accepted; refuses the addresses in `refuse` with a permanent 550."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
        with self.lock:
            self.received.append(Received(list(envelope.rcpt_tos), message, tls, bool(session.authenticated)))
        return "250 OK"

    def recipients(self) -> list[str]:
        with self.lock:
            return [address for item in self.received for address in item.rcpt_tos]


def _authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok)


class SmtpServer:
    """aiosmtpd on a fixed loopback port, so it can be stopped and started again at the same address."""

    def __init__(self, **options: Any) -> None:
        self.handler = Handler()
        self.options = options
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **self.options
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    smtp = SmtpServer().start()
    yield smtp
    smtp.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, made with the machine's openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    command += ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"]
    command += ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """Acme (a name that needs escaping) with five people, one unsubscribed and one without email; and Globex."""
    engine = make_engine(f"sqlite:///{tmp_path / 'journey.db'}")
    init_db(engine)
    with DbSession(engine) as session:
        session.add(Account(id="acme", name="Acme <b> & Sons", domain="acme.example", industry="Agriculture"))
        session.add(Account(id="globex", name="Globex", domain="globex.example"))
        session.commit()
        for first, last, address, department, unsubscribed in [
            ("Ann", "Lee", "ann@acme.example", "Research", False),
            ("Bob", "Stone", "bob@acme.example", "Finance", False),
            ("Cy", "Young", "cy@acme.example", "Research", True),
            ("Dee", "Park", None, None, False),
            ("Eve", "Moss", "eve@acme.example", "Research", False),
        ]:
            session.add(
                Person(
                    account_id="acme",
                    first_name=first,
                    last_name=last,
                    email=address,
                    department=department,
                    unsubscribed=unsubscribed,
                )
            )
        session.add(Person(account_id="globex", first_name="Gil", email="gil@globex.example"))
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JOURNEY_SMTP_URL", "JOURNEY_SMTP_USERNAME", "JOURNEY_SMTP_PASSWORD", "JOURNEY_UNSUBSCRIBE_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOURNEY_EMAIL_FROM", SENDER)


def request(**changes: Any) -> SendEmailRequest:
    values: dict[str, Any] = {
        "key_prefix": PREFIX,
        "journey_id": "re-engage",
        "journey_name": "Re-engagement",
        "version": "v1",
        "account_id": "acme",
        "node_id": "checkin",
        "to": Recipients(all=True),
        "subject": "{{ account.name }}: {{ journey.name }}",
        "html_template": HTML,
    }
    return SendEmailRequest(**(values | changes))


def run(
    activities: EmailActivities, req: SendEmailRequest, on_heartbeat: Callable[..., None] | None = None
) -> SendEmailResult:
    environment = ActivityEnvironment()
    if on_heartbeat is not None:
        environment.on_heartbeat = on_heartbeat
    return asyncio.run(environment.run(activities.send_email, req))


def smtp_activities(engine: Engine, server: SmtpServer) -> EmailActivities:
    return EmailActivities(engine, SmtpDelivery(f"smtp://127.0.0.1:{server.port}?timeout=5"))


def rows(engine: Engine) -> list[OutboxMessage]:
    with DbSession(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.person_id))).all())


def parts(message: EmailMessage) -> dict[str, str]:
    """Content type -> decoded body, line ends as in Python (SMTP carries CRLF)."""
    return {part.get_content_type(): part.get_content().replace("\r\n", "\n") for part in message.iter_parts()}


class TestSmtp:
    """Each subscribed person with an address gets one rendered, escaped, well-formed message."""

    def test_recipients(self, engine: Engine, server: SmtpServer) -> None:
        """Everyone in the account except the unsubscribed and the address-less, in person-id order."""
        result = run(smtp_activities(engine, server), request())
        assert result == SendEmailResult(sent=3, skipped_unsubscribed=1, skipped_no_address=1)
        assert server.handler.recipients() == ["ann@acme.example", "bob@acme.example", "eve@acme.example"]

    def test_where(self, engine: Engine, server: SmtpServer) -> None:
        """`to.where` narrows the recipients; the unsubscribed stay out even when they match."""
        to = Recipients(where="person.department == 'Research'")
        result = run(smtp_activities(engine, server), request(to=to))
        assert result == SendEmailResult(sent=2, skipped_unsubscribed=1, not_matching=2)
        assert server.handler.recipients() == ["ann@acme.example", "eve@acme.example"]

    def test_content(self, engine: Engine, server: SmtpServer) -> None:
        """Subject rendered; values escaped in HTML, literal in the derived text, links kept as 'text (url)'."""
        run(smtp_activities(engine, server), request())
        message = server.handler.received[0].message
        assert message["Subject"] == "Acme <b> & Sons: Re-engagement"
        body = parts(message)
        assert "<p>News for <b>Acme &lt;b&gt; &amp; Sons</b>:" in body["text/html"]
        assert (
            "Hi Ann,\n\nNews for Acme <b> & Sons: read more (https://example.com/x?a=1&b=2)\n\n" in body["text/plain"]
        )
        assert "ignored" not in body["text/plain"]

    def test_text_template(self, engine: Engine, server: SmtpServer) -> None:
        """A text template, when given, is the text part (rendered without escaping)."""
        run(smtp_activities(engine, server), request(text_template="Hi {{ person.first_name }} at {{ account.name }}"))
        assert parts(server.handler.received[0].message)["text/plain"] == "Hi Ann at Acme <b> & Sons\n"

    def test_headers(self, engine: Engine, server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
        """Message-ID is the idempotency key; List-Unsubscribe, X-Journey headers; multipart/alternative."""
        monkeypatch.setenv("JOURNEY_UNSUBSCRIBE_EMAIL", "optout@northfield.example")
        run(smtp_activities(engine, server), request())
        message = server.handler.received[0].message
        ann = rows(engine)[0]
        assert ann.idempotency_key == f"{PREFIX}/{ann.person_id}"
        assert message["Message-ID"] == f"<{PREFIX}/{ann.person_id}@northfield.example>"
        assert message["From"] == SENDER
        assert message["To"] == "Ann Lee <ann@acme.example>"
        unsubscribe = "mailto:optout@northfield.example?subject=unsubscribe%20ann%40acme.example"
        assert message["List-Unsubscribe"].strip() == f"<{unsubscribe}>"  # folded onto its own line
        assert f"href='{unsubscribe}'" in parts(message)["text/html"]
        assert (message["X-Journey"], message["X-Journey-Node"]) == ("re-engage", "checkin")
        assert message["Date"] is not None
        assert message.get_content_type() == "multipart/alternative"
        assert list(parts(message)) == ["text/plain", "text/html"]

    def test_unsubscribe_defaults_to_sender(self, engine: Engine, server: SmtpServer) -> None:
        """Without JOURNEY_UNSUBSCRIBE_EMAIL, unsubscribe requests go to the From address."""
        run(smtp_activities(engine, server), request())
        expected = "<mailto:journeys@northfield.example?subject=unsubscribe%20ann%40acme.example>"
        assert server.handler.received[0].message["List-Unsubscribe"].strip() == expected

    def test_outbox_rows(self, engine: Engine, server: SmtpServer) -> None:
        """The outbox table records each message as sent, with its address, subject and both bodies."""
        run(smtp_activities(engine, server), request())
        recorded = rows(engine)
        assert [(row.to_address, row.status) for row in recorded] == [
            ("ann@acme.example", "sent"),
            ("bob@acme.example", "sent"),
            ("eve@acme.example", "sent"),
        ]
        assert all(row.sent_at is not None and row.subject == "Acme <b> & Sons: Re-engagement" for row in recorded)
        assert "Acme &lt;b&gt;" in recorded[0].html
        assert "Hi Ann," in recorded[0].text

    def test_skips_logged(self, engine: Engine, server: SmtpServer) -> None:
        """Each skipped person is logged with journey, account, node, person and reason."""
        with capture_logs() as logs:
            run(smtp_activities(engine, server), request())
        skipped = [(entry["person"], entry["reason"]) for entry in logs if entry["event"] == "email.skipped"]
        assert skipped == [(3, "unsubscribed"), (4, "no_address")]
        assert all((e["journey"], e["account"], e["node"]) == ("re-engage", "acme", "checkin") for e in logs)

    def test_permanent_refusal(self, engine: Engine, server: SmtpServer) -> None:
        """A 5xx refusal of one address marks its row failed and the batch goes on without raising."""
        server.handler.refuse.add("bob@acme.example")
        result = run(smtp_activities(engine, server), request())
        assert result.sent == 2
        assert server.handler.recipients() == ["ann@acme.example", "eve@acme.example"]
        bob = rows(engine)[1]
        assert (bob.status, bob.sent_at) == ("failed", None)
        assert "550" in (bob.error or "")

    def test_malformed_address(self, engine: Engine, server: SmtpServer) -> None:
        """A stored address that is not an address fails its row and the batch goes on."""
        with DbSession(engine) as session:
            bob = session.get(Person, 2)
            assert bob is not None
            bob.email = "bob at acme"
            session.commit()
        assert run(smtp_activities(engine, server), request()).sent == 2
        assert server.handler.recipients() == ["ann@acme.example", "eve@acme.example"]
        assert rows(engine)[1].status == "failed"
        assert "'bob at acme' is not an email address" in (rows(engine)[1].error or "")

    def test_roles_not_supported(self, engine: Engine, server: SmtpServer) -> None:
        """Buying-group recipients are refused for good, before anything is sent."""
        with pytest.raises(ApplicationError) as raised:
            run(smtp_activities(engine, server), request(to=Recipients(roles=["champion"])))
        assert (raised.value.type, raised.value.non_retryable) == ("NotSupported", True)
        assert server.handler.received == []

    @pytest.mark.parametrize(
        ("changes", "kind"),
        [
            ({"to": Recipients(where="person.department ==")}, "ExpressionError"),
            ({"html_template": "{{ account.nurture_stage }}"}, "TemplateError"),
        ],
    )
    def test_broken_journey_fails_for_good(
        self, engine: Engine, server: SmtpServer, changes: dict[str, Any], kind: str
    ) -> None:
        """An expression or template that cannot work is a non-retryable error; nothing is sent."""
        with pytest.raises(ApplicationError) as raised:
            run(smtp_activities(engine, server), request(**changes))
        assert (raised.value.type, raised.value.non_retryable) == (kind, True)
        assert raised.value.message.startswith("journey 're-engage' account 'acme' node 'checkin': ")
        assert server.handler.received == []

    def test_unknown_account(self, engine: Engine, server: SmtpServer) -> None:
        """An account that is gone fails the node for good, naming journey, account and node."""
        with pytest.raises(ApplicationError) as raised:
            run(smtp_activities(engine, server), request(account_id="initech"))
        assert (raised.value.type, raised.value.non_retryable) == ("AccountNotFound", True)
        assert raised.value.message == "journey 're-engage' account 'initech' node 'checkin': account not found"


class TestExactlyOnce:
    """The outbox key makes a retried or repeated batch deliver each message once."""

    def test_second_run_sends_nothing(self, engine: Engine, server: SmtpServer) -> None:
        """Running the same request again finds every message sent and delivers none."""
        activities = smtp_activities(engine, server)
        assert run(activities, request()).sent == 3
        again = run(activities, request())
        assert (again.sent, again.already_sent) == (0, 3)
        assert len(server.handler.received) == 3

    def test_transient_failure_then_retry(self, engine: Engine, server: SmtpServer) -> None:
        """Server gone mid-batch: a retryable error, only delivered rows sent; the retry sends the rest."""
        activities = smtp_activities(engine, server)
        heartbeats: list[Any] = []

        def stop_after_first(*details: Any) -> None:
            heartbeats.append(details)
            if len(heartbeats) == 1:
                server.stop()  # the next connection is refused

        with pytest.raises(ApplicationError) as raised:
            run(activities, request(), on_heartbeat=stop_after_first)
        assert (raised.value.type, raised.value.non_retryable) == ("EmailDeliveryError", False)
        assert heartbeats == [({"person": 1, "skipped_unsubscribed": 1, "skipped_no_address": 1, "sent": 1},)]
        assert [(row.person_id, row.status) for row in rows(engine)] == [(1, "sent"), (2, "failed")]
        assert "ConnectionRefusedError" in (rows(engine)[1].error or "")

        server.start()
        retry = run(activities, request())
        assert (retry.sent, retry.already_sent) == (2, 1)
        assert server.handler.recipients() == ["ann@acme.example", "bob@acme.example", "eve@acme.example"]
        assert [row.status for row in rows(engine)] == ["sent", "sent", "sent"]

    def test_heartbeats_while_delivering(self, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A slow delivery keeps heartbeating with the progress so far, so it is not taken for a dead worker."""
        monkeypatch.setattr("activities.email.KEEPALIVE_SECONDS", 0.02)
        files = OutboxFileDelivery(tmp_path / "outbox")

        class Slow:
            def deliver(self, message: EmailMessage, key: str) -> None:
                time.sleep(0.2)
                files.deliver(message, key)

        heartbeats: list[Any] = []
        assert run(EmailActivities(engine, Slow()), request(), on_heartbeat=heartbeats.append).sent == 3
        assert len(heartbeats) > 6
        assert heartbeats[0] == {}
        assert heartbeats[-1] == {"person": 5, "sent": 3, "skipped_unsubscribed": 1, "skipped_no_address": 1}
        assert {"person": 1, "sent": 1, "skipped_unsubscribed": 1, "skipped_no_address": 1} in heartbeats

    def test_pending_row_is_delivered(self, engine: Engine, server: SmtpServer) -> None:
        """A row left 'pending' by an attempt that died before delivering is delivered by the next."""
        with DbSession(engine) as session:
            session.add(
                OutboxMessage(
                    idempotency_key=f"{PREFIX}/1",
                    journey_id="re-engage",
                    account_id="acme",
                    person_id=1,
                    node_id="checkin",
                    to_address="ann@acme.example",
                    subject="",
                    html="",
                    text="",
                )
            )
            session.commit()
        result = run(smtp_activities(engine, server), request())
        assert (result.sent, result.already_sent) == (3, 0)
        assert rows(engine)[0].subject == "Acme <b> & Sons: Re-engagement"


class TestTlsAndAuth:
    """TLS as the URL asks, certificates verified, credentials from the environment."""

    @pytest.mark.parametrize("scheme", ["smtp", "smtp+starttls"])
    def test_starttls_auth(
        self, engine: Engine, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, scheme: str
    ) -> None:
        """STARTTLS (offered, or required) then AUTH with JOURNEY_SMTP_USERNAME / _PASSWORD."""
        tls = _server_tls(certificate)
        server = SmtpServer(tls_context=tls, require_starttls=True, authenticator=_authenticate, auth_required=True)
        server.start()
        try:
            monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test certificate
            monkeypatch.setenv("JOURNEY_SMTP_URL", f"{scheme}://someone:wrong@localhost:{server.port}")
            monkeypatch.setenv("JOURNEY_SMTP_USERNAME", USER)
            monkeypatch.setenv("JOURNEY_SMTP_PASSWORD", PASSWORD)
            delivery = delivery_from_env()
            assert PASSWORD not in repr(delivery)
            assert run(EmailActivities(engine, delivery), request()).sent == 3
            assert [(item.tls, item.authenticated) for item in server.handler.received] == [(True, True)] * 3
        finally:
            server.stop()

    def test_implicit_tls(
        self, engine: Engine, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """smtps:// speaks TLS from the first byte; userinfo in the URL is used when the env has none."""
        server = SmtpServer(ssl_context=_server_tls(certificate), authenticator=_authenticate, auth_require_tls=False)
        server.start()
        try:
            monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
            monkeypatch.setenv("JOURNEY_SMTP_URL", f"smtps://{USER}:{PASSWORD}@localhost:{server.port}")
            assert run(EmailActivities(engine, delivery_from_env()), request()).sent == 3
            assert [(item.tls, item.authenticated) for item in server.handler.received] == [(True, True)] * 3
        finally:
            server.stop()

    def test_starttls_never(self, engine: Engine, certificate: tuple[Path, Path]) -> None:
        """`?starttls=never` stays in plain text even when the server offers STARTTLS."""
        server = SmtpServer(tls_context=_server_tls(certificate))
        server.start()
        try:
            delivery = SmtpDelivery(f"smtp://127.0.0.1:{server.port}?starttls=never&timeout=5")
            assert run(EmailActivities(engine, delivery), request()).sent == 3
            assert {item.tls for item in server.handler.received} == {False}
        finally:
            server.stop()

    def test_no_password_in_clear_text(self, engine: Engine, server: SmtpServer) -> None:
        """With credentials, `smtp://` to a server without STARTTLS refuses to log in (retryable)."""
        delivery = SmtpDelivery(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{server.port}?timeout=5")
        with pytest.raises(ApplicationError) as raised:
            run(EmailActivities(engine, delivery), request())
        assert raised.value.non_retryable is False
        assert "does not offer STARTTLS: the password is not sent in clear text" in raised.value.message
        assert server.handler.received == []

    def test_untrusted_certificate(self, engine: Engine, certificate: tuple[Path, Path]) -> None:
        """A certificate nobody vouches for stops delivery (retryable) instead of falling back to plain text."""
        server = SmtpServer(tls_context=_server_tls(certificate))
        server.start()
        try:
            with pytest.raises(ApplicationError) as raised:
                run(EmailActivities(engine, SmtpDelivery(f"smtp://localhost:{server.port}")), request())
            assert raised.value.non_retryable is False
            assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
            assert server.handler.received == []
        finally:
            server.stop()

    def test_url(self) -> None:
        """Ports default by scheme; options and userinfo are read; mistakes are named."""
        smtp = SmtpDelivery("smtp+starttls://me%40corp:p%2Fw@mail.example?timeout=7")
        assert (smtp.port, smtp.starttls, smtp.timeout, smtp.username) == (587, "required", 7.0, "me@corp")
        assert (SmtpDelivery("smtps://mail.example").port, SmtpDelivery("smtp://mail.example").starttls) == (
            465,
            "auto",
        )
        for url, message in [
            ("http://mail.example", "unknown scheme 'http'"),
            ("smtp://mail.example?tls=1", "unknown option 'tls'"),
            ("smtps://mail.example?starttls=never", "starttls=never contradicts 'smtps://'"),
            ("smtp://mail.example?timeout=soon", "timeout must be a number of seconds, not 'soon'"),
        ]:
            with pytest.raises(ValueError, match=message):
                SmtpDelivery(url)


class TestOutboxFiles:
    """Without JOURNEY_SMTP_URL, messages become .eml files under JOURNEY_HOME/outbox."""

    def test_eml_files(self, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """One parseable .eml per message, named by its key's hash; rows sent; a rerun writes nothing new."""
        monkeypatch.setenv("JOURNEY_HOME", str(tmp_path / "home"))
        delivery = delivery_from_env()
        assert isinstance(delivery, OutboxFileDelivery)
        activities = EmailActivities(engine, delivery)
        assert run(activities, request()).sent == 3
        outbox = tmp_path / "home" / "outbox"
        names = {f"{hashlib.sha256(f'{PREFIX}/{person}'.encode()).hexdigest()[:24]}.eml" for person in (1, 2, 5)}
        assert {path.name for path in outbox.iterdir()} == names
        message = email.message_from_bytes(delivery.path(f"{PREFIX}/1").read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        assert (message["To"], message["Message-ID"]) == (
            "Ann Lee <ann@acme.example>",
            f"<{PREFIX}/1@northfield.example>",
        )
        assert message["List-Unsubscribe"].strip().startswith("<mailto:journeys@northfield.example?subject=unsubscribe")
        assert list(parts(message)) == ["text/plain", "text/html"]
        assert [row.status for row in rows(engine)] == ["sent"] * 3
        assert run(activities, request()).already_sent == 3
        assert len(list(outbox.iterdir())) == 3


def test_html_to_text() -> None:
    """Head dropped, paragraphs and line breaks kept, links as 'text (url)', whitespace collapsed."""
    html = (
        "<head><style>p {}</style></head><h1>Title</h1><p>one\n   two<br>three</p>"
        "<ul><li>a</li><li>b</li></ul><p><a href='https://x.example'>site</a> <a href='#top'>top</a></p>"
    )
    assert html_to_text(html) == "Title\n\none two\nthree\n\n- a\n- b\n\nsite (https://x.example) top\n"
