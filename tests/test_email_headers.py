"""send_email's headers as the SMTP server receives them: raw bytes from a real aiosmtpd server."""

from __future__ import annotations

import email
import email.policy
import email.utils
import re
from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import SmtpInbox, add_account, add_person
from temporalio.testing import ActivityEnvironment

from activities.delivery import SmtpDelivery
from activities.email import MAX_LINE, EmailActivities, WireHeader
from engine.db import OutboxMessage
from engine.language.model import Recipients
from engine.tracking import Tokens
from engine.workflow.contracts import SendEmailRequest

SENDER = "Northfield Journeys <journeys@northfield.example>"
OPT_OUT = "optout@northfield.example"
PUBLIC_URL = "https://journeys.northfield.example"
SECRET = b"a-long-random-tracking-secret-for-the-tests"


def request() -> SendEmailRequest:
    return SendEmailRequest(
        key_prefix="journey/re-engage/acme/run/checkin/1",
        journey_id="re-engage",
        journey_name="Re-engagement",
        version="v1",
        account_id="acme",
        node_id="checkin",
        to=Recipients(all=True),
        subject="News for {{ account.name }}",
        html_template="<p>Hi {{ person.first_name }}</p><p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>",
    )


def activities(smtp: tuple[str, SmtpInbox], db: Engine, public_url: str | None = PUBLIC_URL) -> EmailActivities:
    tokens = Tokens(SECRET, public_url)
    return EmailActivities(db, SmtpDelivery(smtp[0]), sender=SENDER, unsubscribe_address=OPT_OUT, tokens=tokens)


async def send(sender: EmailActivities) -> None:
    await ActivityEnvironment().run(sender.send_email, request())


def sent_by(person: int) -> dict[str, str]:
    """What the tokens of the message `send` mails to `person` say about it."""
    return {"m": f"{request().key_prefix}/{person}", "j": "re-engage", "n": "checkin"}


def header_fields(raw: bytes) -> dict[str, bytes]:
    """Each header field as it came over the wire, folding kept (CRLF + space), by lower-case name."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    fields = re.split(rb"\r\n(?=[^ \t])", head)
    return {field.split(b":", 1)[0].decode().lower(): field for field in fields}


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


@pytest.fixture
def acme(db: Engine) -> Engine:
    add_account(db, "acme")
    return db


class TestListUnsubscribe:
    """List-Unsubscribe reaches the server as plain ASCII, each URI whole, folded only between them."""

    async def test_one_click(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """The signed https link and the mailto: link, exactly, on lines of their own; the RFC 8058 header."""
        person = add_person(acme, "acme", "ann@acme.example", first_name="Ann", last_name="Lee")
        sender = activities(smtp, acme)
        await send(sender)
        [(_, raw)] = smtp[1].messages
        one_click = sender.unsubscribe_url("ann@acme.example", person, sent_by(person))
        assert len(one_click) > 100  # long enough that the email library used to encode it
        mailto = f"mailto:{OPT_OUT}?subject=unsubscribe%20ann%40acme.example"
        fields = header_fields(raw)
        expected = f"List-Unsubscribe: <{one_click}>,\r\n <{mailto}>"
        assert fields["list-unsubscribe"] == expected.encode()
        assert fields["list-unsubscribe-post"] == b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
        # The token names the message it came in, so the email report can attribute the unsubscribe.
        assert Tokens(SECRET).read("u", one_click.rpartition("/")[2]) == {
            "p": person,
            "e": "ann@acme.example",
            "m": f"{request().key_prefix}/{person}",
            "j": "re-engage",
            "n": "checkin",
        }

    async def test_mailto_only(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """Without a public URL: the mailto: link alone, and no List-Unsubscribe-Post."""
        add_person(acme, "acme", "ann@acme.example", first_name="Ann")
        await send(activities(smtp, acme, public_url=None))
        fields = header_fields(smtp[1].messages[0][1])
        assert (
            fields["list-unsubscribe"]
            == f"List-Unsubscribe: <mailto:{OPT_OUT}?subject=unsubscribe%20ann%40acme.example>".encode()
        )
        assert "list-unsubscribe-post" not in fields

    async def test_long_address(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """A 250-character address makes URIs of hundreds of characters: still whole, unencoded, within 998."""
        address = f"{'a' * 64}@{'.'.join(['b' * 59] * 3)}.example"
        assert len(address) == 252
        person = add_person(acme, "acme", address, first_name="Ann")
        sender = activities(smtp, acme)
        await send(sender)
        raw = smtp[1].messages[0][1]
        field = header_fields(raw)["list-unsubscribe"]
        one_click = sender.unsubscribe_url(address, person, sent_by(person))
        assert field.split(b"\r\n") == [
            f"List-Unsubscribe: <{one_click}>,".encode(),
            f" <{sender.mailto_unsubscribe(address)}>".encode(),
        ]
        assert b"=?" not in field
        assert max(len(line) for line in raw.split(b"\r\n")) <= MAX_LINE

    def test_uri_longer_than_a_line(self) -> None:
        """A URI that cannot fit in 998 octets is cut inside its brackets, where RFC 2369 ignores whitespace."""
        uri = "<https://journeys.example/u/" + "x" * 2500 + ">"
        folded = WireHeader("List-Unsubscribe", [uri]).fold(policy=email.policy.SMTP)
        lines = folded.split("\r\n")
        assert lines[-1] == ""
        assert max(len(line) for line in lines) == MAX_LINE
        assert all(line.startswith(" ") for line in lines[1:-1])
        assert "".join(folded.removeprefix("List-Unsubscribe:").split()) == uri


HOSTILE_NAMES = [
    ("=?utf-8?q?evil=40attacker.example=2C?=", "Lee"),
    ("=?utf-8?q?x=40evil.example=3E=2C_=3Cy?=", "=?utf-8?b?PHpAZXZpbC5leGFtcGxlPg==?="),
    ("Ann", "<x@evil.example>"),
    ('Ann "x@evil.example",', "Lee"),
    ("Lee, Ann x@evil.example, other@evil.example,", "and a name long enough that it has to be folded"),
    ("Zoë, Ann <x@evil.example>;", "Undisclosed:;"),
    ("Ann\r\nBcc: x@evil.example", "Lee"),
]


class TestTo:
    """To carries exactly one address, the person's; the name is only ever a display name."""

    @pytest.mark.parametrize(("first", "last"), HOSTILE_NAMES)
    async def test_hostile_name(self, smtp: tuple[str, SmtpInbox], acme: Engine, first: str, last: str) -> None:
        """Commas, brackets, quotes and encoded-word look-alikes: one recipient, the name shown as typed."""
        add_person(acme, "acme", "ann@acme.example", first_name=first, last_name=last)
        await send(activities(smtp, acme))
        [(recipients, raw)] = smtp[1].messages
        assert recipients == ["ann@acme.example"]
        field = header_fields(raw)["to"]
        assert field.isascii()
        assert field.count(b"@") == 1 and field.endswith(b" <ann@acme.example>")
        # Read without decoding (as smtplib reads To for the envelope), the field holds one address.
        assert [pair[1] for pair in email.utils.getaddresses([field.decode()[3:]])] == ["ann@acme.example"]
        to = parsed(raw)["To"]
        assert isinstance(to, AddressHeader)
        [address] = to.addresses
        # Python's decoder keeps the folding space between encoded words (RFC 2047 drops it).
        shown = Address(display_name=" ".join(address.display_name.split()), addr_spec=address.addr_spec)
        assert shown == Address(display_name=" ".join(f"{first} {last}".split()), addr_spec="ann@acme.example")
        assert [pair[1] for pair in email.utils.getaddresses([str(to)])] == ["ann@acme.example"]

    async def test_plain_name(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """Names made of plain words go out as typed; a person without a name gets the bare address."""
        add_person(acme, "acme", "ann@acme.example", first_name="Mary-Ann", last_name="O'Brien")
        add_person(acme, "acme", "bob@acme.example")
        await send(activities(smtp, acme))
        fields = [header_fields(raw)["to"] for _, raw in smtp[1].messages]
        assert fields == [b"To: Mary-Ann O'Brien <ann@acme.example>", b"To: bob@acme.example"]

    async def test_unicode_domain(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """A domain in Unicode goes out in its IDNA form, in the header and the envelope alike."""
        add_person(acme, "acme", "zoe@acmé.example", first_name="Zoë")
        await send(activities(smtp, acme))
        [(recipients, raw)] = smtp[1].messages
        assert recipients == ["zoe@xn--acm-dma.example"]
        assert header_fields(raw)["to"] == b"To: =?utf-8?b?Wm/Dqw==?= <zoe@xn--acm-dma.example>"

    async def test_address_too_long(self, smtp: tuple[str, SmtpInbox], acme: Engine) -> None:
        """An address longer than SMTP allows fails its row for good; nothing is sent."""
        address = f"{'a' * 64}@{'.'.join(['b' * 63] * 3)}.example"
        add_person(acme, "acme", address, first_name="Ann")
        await send(activities(smtp, acme))
        assert smtp[1].messages == []
        with Session(acme) as session:
            row: Any = session.exec(select(OutboxMessage)).one()
        assert (row.status, row.error) == (
            "failed",
            f"_BadAddressError: '{address}' is not an email address: longer than 254 characters",
        )
