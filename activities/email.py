"""The send_email activity: render a journey's email for each recipient and deliver it at most once per key.

Exactly-once rests on the outbox table: each (node visit, person) has an idempotency key, unique in the
table, and a message is delivered only while its row is not 'sent'. The remaining window — delivered, then
the worker dies before the row says 'sent' — delivers again on retry with the same Message-ID, which lets
mail systems drop the duplicate.
"""

from __future__ import annotations

import asyncio
import base64
import html as html_escape
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import Policy
from email.utils import formatdate, parseaddr
from html.parser import HTMLParser
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from jinja2 import TemplateError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.delivery import Delivery, RecipientRefusedError
from activities.send_limits import SUPPRESSED, reserve
from engine.context import account_data, full_name, person_data
from engine.db import Account, OutboxMessage, Person, suppressed_emails, utcnow
from engine.language import templates
from engine.language.conditions import Scope, compile_condition
from engine.language.errors import ExpressionError
from engine.tracking import Tokens
from engine.workflow.contracts import SendEmailRequest, SendEmailResult

log = structlog.get_logger()

DEFAULT_SENDER = "Journeys <journeys@localhost>"
KEEPALIVE_SECONDS = 5.0
_T = TypeVar("_T")
RECIPIENT_SCOPE = Scope({"person": None, "account": None, "buying_group": None}, "recipient conditions")
# RFC 5322 2.1.1: no line longer than 998 octets; RFC 5321 4.5.3.1.3: a path is at most 256 octets with <>.
MAX_LINE = 998
MAX_ADDRESS = 254
# atext (RFC 5322 3.2.3) without '=' and '?', so a plain word can never read as an encoded word; at most 76
# characters, so one always fits on a folded line.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]{1,76}")
_ENCODED_WORD_BYTES = 45  # 60 base64 characters: '=?utf-8?b?' + 60 + '?=' is 72, within RFC 2047's 75


class _BadAddressError(Exception):
    """The stored address cannot be written in a To header: no server would take it, now or later."""


@dataclass(frozen=True)
class _Recipient:
    """A person as plain data, so nothing tied to a database session crosses threads."""

    id: int
    email: str
    name: str
    data: dict[str, Any]


class EmailActivities:
    def __init__(
        self,
        engine: Engine,
        delivery: Delivery,
        sender: str | None = None,
        unsubscribe_address: str | None = None,
        tokens: Tokens | None = None,
    ) -> None:
        self._engine = engine
        self._delivery = delivery
        # Open pixel, tracked links and the one-click unsubscribe link need JOURNEY_PUBLIC_URL (see engine/tracking).
        self._tokens = tokens if tokens is not None else Tokens.from_env()
        self.sender = sender or os.environ.get("JOURNEY_EMAIL_FROM") or DEFAULT_SENDER
        sender_address = parseaddr(self.sender)[1]
        self.unsubscribe_address = unsubscribe_address or os.environ.get("JOURNEY_UNSUBSCRIBE_EMAIL") or sender_address
        self._domain = sender_address.rpartition("@")[2] or "localhost"

    @activity.defn(name="send_email")
    async def send_email(self, request: SendEmailRequest) -> SendEmailResult:
        """Sends the node's email to each recipient once; heartbeats after each, so retries see progress."""
        if (request.to.roles or request.to.missing_roles) and request.buying_group is None:
            raise _permanent(request, "recipients by role need the buying group's data", "NotSupported")
        progress: dict[str, Any] = {}
        account, recipients, counts = await _in_thread(progress, self._recipients, request)
        for recipient in recipients:
            # Cancelled while a thread delivers: that one message still completes and is recorded as sent.
            counts[await _in_thread(progress, self._send_one, request, account, recipient)] += 1
            progress.update(person=recipient.id, **counts)
            activity.heartbeat(dict(progress))
        return SendEmailResult(**{name: counts[name] for name in SendEmailResult.model_fields})

    def _recipients(self, request: SendEmailRequest) -> tuple[dict[str, Any], list[_Recipient], Counter[str]]:
        counts: Counter[str] = Counter()
        with Session(self._engine) as session:
            account_row = session.get(Account, request.account_id)
            if account_row is None:
                raise _permanent(request, "account not found", "AccountNotFound")
            account = account_data(account_row)
            query = select(Person).where(Person.account_id == request.account_id).order_by(col(Person.id))
            people = session.exec(query).all()
            # Erased (`journey forget`): a person re-created since, or set mailable by hand, is still never mailed.
            erased = suppressed_emails(session, [person.email for person in people if person.email])
        logger = _logger(request)
        now = datetime.now(UTC)
        recipients: list[_Recipient] = []
        try:
            condition = compile_condition(request.to.where, RECIPIENT_SCOPE) if request.to.where else None
            snapshot = request.buying_group
            group = snapshot.as_data() if snapshot is not None else None
            roles = {member.person_id: member.role for member in snapshot.members} if snapshot is not None else {}
            chosen = _chosen_by_role(request, people, roles)
            if request.people is not None:  # a people_split path's email: its people only
                chosen = set(request.people) if chosen is None else chosen & set(request.people)
            for person in people:
                assert person.id is not None  # rows read from the database have their key
                data = person_data(person, roles.get(person.id))
                if chosen is not None and person.id not in chosen:
                    counts["not_matching"] += 1
                    continue
                if condition and not condition.evaluate(person=data, account=account, buying_group=group, now=now):
                    counts["not_matching"] += 1
                    continue
                reason = _skip_reason(person, erased)
                if reason is not None:
                    counts[f"skipped_{reason}"] += 1
                    logger.info("email.skipped", person=person.id, reason=reason)
                    continue
                name = full_name(person)
                recipients.append(_Recipient(person.id, person.email or "", name, data))
        except ExpressionError as error:
            raise _permanent(request, f"to.where: {error}", "ExpressionError") from None
        return account, recipients, counts

    def _send_one(self, request: SendEmailRequest, account: dict[str, Any], recipient: _Recipient) -> str:
        """Delivers one message unless its row says 'sent' or 'suppressed'; returns 'sent', 'already_sent',
        'refused' or 'suppressed' (a limits.yaml cap was reached when the message was first reserved)."""
        key = f"{request.key_prefix}/{recipient.id}"
        with Session(self._engine) as session:
            row = _outbox_row(session, key)
            if row is not None and row.status == "sent":
                return "already_sent"
            if row is not None and row.status == SUPPRESSED:
                return "suppressed"  # decided once, when reserved: a retry neither sends nor counts it again
            if suppressed_emails(session, [recipient.email]):  # erased while this batch was being sent
                _logger(request).info("email.skipped", person=recipient.id, reason="erased")
                return "skipped_erased"
            subject, html, text = self._render(request, account, recipient, key)
            html = self._tracked(html, request, recipient, key)
            if row is None:
                row = OutboxMessage(
                    idempotency_key=key,
                    journey_id=request.journey_id,
                    account_id=request.account_id,
                    person_id=recipient.id,
                    node_id=request.node_id,
                    to_address=recipient.email,
                    subject=subject,
                    html=html,
                    text=text,
                    transactional=request.transactional or None,
                )
                try:
                    suppressed_by = reserve(session, row, request.limits)
                except IntegrityError:  # another attempt inserted the key first
                    session.rollback()
                    row = _outbox_row(session, key)
                    assert row is not None
                    if row.status == "sent":
                        return "already_sent"
                    suppressed_by = row.suppressed_by if row.status == SUPPRESSED else None
                if suppressed_by is not None:
                    _logger(request).info("email.suppressed", person=recipient.id, reason=suppressed_by)
                    return "suppressed"
            # The row records what this attempt sends: templates are pinned, but the person may have changed.
            row.to_address, row.subject, row.html, row.text = recipient.email, subject, html, text
            row.status, row.error = "pending", None
            session.commit()
            try:
                message = self._message(request, recipient, key, subject, html, text)
                self._delivery.deliver(message, key)
            except (RecipientRefusedError, _BadAddressError) as error:
                # Recorded, not final: a retry of the whole batch asks once more, which never duplicates a message.
                _mark_failed(session, row, f"{type(error).__name__}: {error}")
                _logger(request).warning("email.refused", person=recipient.id, reason=str(error))
                return "refused"
            except Exception as error:
                _mark_failed(session, row, f"{type(error).__name__}: {error}")
                raise ApplicationError(
                    f"{_where(request)}: sending to person {recipient.id} failed, will retry: {error}",
                    type="EmailDeliveryError",
                ) from error
            row.status, row.sent_at = "sent", utcnow()
            session.commit()
        return "sent"

    def _render(
        self, request: SendEmailRequest, account: dict[str, Any], recipient: _Recipient, key: str
    ) -> tuple[str, str, str]:
        context = {
            "account": account,
            "person": recipient.data,
            "journey": {"id": request.journey_id, "name": request.journey_name, "version": request.version},
            "buying_group": request.buying_group.as_data() if request.buying_group is not None else None,
            "unsubscribe_url": self.unsubscribe_url(recipient.email, recipient.id, _sent_by(request, key)),
        }
        try:
            return render_message(request.subject, request.html_template, request.text_template, context)
        except RENDER_ERRORS as error:
            # Same templates, same data: a retry would fail the same way.
            raise _permanent(request, f"template failed for person {recipient.id}: {error}", "TemplateError") from None

    def unsubscribe_url(self, email: str, person_id: int | None = None, sent_by: dict[str, str] | None = None) -> str:
        """The signed one-click link (`/u/<token>`) when JOURNEY_PUBLIC_URL is set, else a mailto: link
        (RFC 6068) that asks the unsubscribe mailbox to drop `email`. `sent_by` names the message, journey and
        node the link goes out in, so the email report can attribute the unsubscribe to them."""
        if self._public() is not None and person_id is not None:
            return self._public_tokens().url("u", {**(sent_by or {}), "p": person_id, "e": email})
        return self.mailto_unsubscribe(email)

    def mailto_unsubscribe(self, email: str) -> str:
        return f"mailto:{self.unsubscribe_address}?subject={quote(f'unsubscribe {email}', safe='')}"

    def _public(self) -> str | None:
        return self._tokens.public_url if self._tokens is not None else None

    def _public_tokens(self) -> Tokens:
        assert self._tokens is not None
        return self._tokens

    def _tracked(self, html: str, request: SendEmailRequest, recipient: _Recipient, key: str) -> str:
        """Links rewritten through the click redirect and an open pixel added, when tracking is on."""
        public = self._public()
        if public is None:
            return html
        tokens = self._public_tokens()
        base = {**_sent_by(request, key), "a": request.account_id}
        person = {"p": recipient.id, "e": recipient.email}
        links = 0

        def rewrite(match: re.Match[str]) -> str:
            nonlocal links
            url = html_escape.unescape(match.group(3))
            if not url.lower().startswith(("http://", "https://")) or url.startswith(public):
                return match.group(0)  # mailto:, anchors and our own unsubscribe link stay as they are
            links += 1
            tracked = tokens.url("c", {**base, **person, "u": url, "l": links})
            return f"{match.group(1)}{match.group(2)}{tracked}{match.group(2)}"

        html = _LINK.sub(rewrite, html)
        pixel = f'<img src="{tokens.url("o", {**base, **person})}" width="1" height="1" alt="" style="display:none">'
        at = html.lower().rfind("</body>")
        return html[:at] + pixel + html[at:] if at >= 0 else html + pixel

    def _message(
        self, request: SendEmailRequest, recipient: _Recipient, key: str, subject: str, html: str, text: str
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to_header(recipient.name, recipient.email)
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{message_id_left(key)}@{self._domain}>"
        message["X-Journey"] = request.journey_id
        message["X-Journey-Node"] = request.node_id
        mailto = self.mailto_unsubscribe(recipient.email)
        if self._public() is not None:
            # RFC 8058 one-click: mail clients POST `List-Unsubscribe=One-Click` to the https link.
            one_click = self.unsubscribe_url(recipient.email, recipient.id, _sent_by(request, key))
            message["List-Unsubscribe"] = WireHeader("List-Unsubscribe", [f"<{one_click}>,", f"<{mailto}>"])
            message["List-Unsubscribe-Post"] = WireHeader("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"])
        else:
            message["List-Unsubscribe"] = WireHeader("List-Unsubscribe", [f"<{mailto}>"])
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message


class WireHeader(str):
    """A header written exactly as built: printable ASCII elements, folded only between them.

    The email library folds a value it finds too long into RFC 2047 encoded words, which turns the
    one-click URL of `List-Unsubscribe` into text no mail provider reads as a URL (RFC 2369 allows folding
    between the bracketed URIs only), and it decodes encoded words out of a display name, then folds the
    result without its quotes. A value with a `name` is kept as a header object, and `fold` writes it.
    """

    name: str
    elements: tuple[str, ...]

    def __new__(cls, name: str, elements: Sequence[str]) -> WireHeader:
        if not elements:
            raise ValueError(f"{name} header: no value")
        for element in elements:
            if not element or not element.isascii() or not element.isprintable():
                raise ValueError(f"{name} header: {element!r} is not printable ASCII")
        header = super().__new__(cls, " ".join(elements))
        header.name, header.elements = name, tuple(elements)
        return header

    def fold(self, *, policy: Policy[Any]) -> str:
        """Elements joined by spaces, a line break before one that would pass the policy's line length.

        No line passes RFC 5322's 998 octets: an element too long for any line is cut, which only a URI
        could be (none is in practice), and RFC 2369 ignores whitespace inside its angle brackets.
        """
        limit = min(policy.max_line_length or MAX_LINE, MAX_LINE)
        size = MAX_LINE - len(self.name) - 2  # a piece fits on any line, the first included
        pieces = [element[at : at + size] for element in self.elements for at in range(0, len(element), size)]
        lines = [f"{self.name}: {pieces[0]}"]
        for piece in pieces[1:]:
            if len(lines[-1]) + 1 + len(piece) > limit:
                lines.append("")
            lines[-1] += f" {piece}"
        return policy.linesep.join(lines) + policy.linesep


def to_header(name: str, email: str) -> WireHeader:
    """`To:` with exactly one address, `email`, and `name` as its display name: plain words when it is
    made of them, else RFC 2047 encoded words of the whole name, so no character of a name (commas,
    brackets, quotes, `@`, text that itself looks like an encoded word) can read as address syntax or
    decode into other text."""
    try:
        address = Address(addr_spec=email)
        # A domain in Unicode goes out in its ASCII form (IDNA), which every server takes.
        domain = address.domain if address.domain.isascii() else address.domain.encode("idna").decode("ascii")
        spec = Address(username=address.username, domain=domain).addr_spec
    except (ValueError, HeaderParseError, UnicodeError) as error:
        raise _BadAddressError(f"'{email}' is not an email address: {error}") from error
    if len(spec) > MAX_ADDRESS:
        raise _BadAddressError(f"'{email}' is not an email address: longer than {MAX_ADDRESS} characters")
    words = name.split()
    if all(_PLAIN_WORD.fullmatch(word) for word in words):
        return WireHeader("To", [*words, f"<{spec}>" if words else spec])
    return WireHeader("To", [*encoded_words(" ".join(words)), f"<{spec}>"])


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 base64 encoded words, each within 75 characters and holding whole characters.

    Words of `text` are split only when longer than an encoded word holds: decoders should drop the folding
    space between encoded words, some (Python's among them) keep it, and at a space that does no harm.
    """
    chunks = [b""]
    for word in re.findall(r"\S+ ?| ", text):
        if chunks[-1] and len(chunks[-1]) + len(word.encode()) > _ENCODED_WORD_BYTES:
            chunks.append(b"")
        for character in word:
            data = character.encode()
            if len(chunks[-1]) + len(data) > _ENCODED_WORD_BYTES:
                chunks.append(b"")
            chunks[-1] += data
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


def _sent_by(request: SendEmailRequest, key: str) -> dict[str, str]:
    """What a tracking or unsubscribe token says about the message it came in: its key, journey and node."""
    return {"m": key, "j": request.journey_id, "n": request.node_id}


def _chosen_by_role(request: SendEmailRequest, people: Sequence[Person], roles: dict[int, str]) -> set[int] | None:
    """The people `to.roles` / `to.missing_roles` pick; None when the node picks by other means.

    Missing roles (the seed's tip: target the roles a buying group lacks) reach the people most likely to
    fill them: the account's people holding no role in this group, most engaged first, two per missing role.
    """
    if request.to.roles:
        wanted = set(request.to.roles)
        return {person_id for person_id, role in roles.items() if role in wanted}
    if request.to.missing_roles:
        assert request.buying_group is not None
        open_seats = 2 * len(request.buying_group.missing_roles)
        candidates = [
            person for person in people if person.id not in roles and not person.unsubscribed and person.email
        ]
        candidates.sort(key=lambda person: (-person.engagement_score, person.id or 0))
        return {person.id for person in candidates[:open_seats] if person.id is not None}
    return None


def _skip_reason(person: Person, erased: set[str]) -> str | None:
    """Why `person` gets no email, or None when they may get one."""
    if person.email in erased:
        return "erased"
    if person.unsubscribed:
        return "unsubscribed"
    return None if person.email else "no_address"


RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError)


def render_message(
    subject: str, html_template: str, text_template: str | None, context: dict[str, Any]
) -> tuple[str, str, str]:
    """Subject, HTML and text of a message from its templates (text from the HTML when there is no text template).
    Raises one of RENDER_ERRORS when a template fails on this data."""
    # Whitespace (a newline above all) in a header would end it: a subject is one line.
    rendered_subject = " ".join(templates.render(subject, False, context).split())
    html = templates.render(html_template, True, context)
    text = templates.render(text_template, False, context) if text_template is not None else html_to_text(html)
    return rendered_subject, html, text


def send_once(engine: Engine, delivery: Delivery, row: OutboxMessage, message: EmailMessage) -> bool:
    """Stores `row` in the outbox unless its idempotency key is there, then delivers `message` unless that
    row says 'sent'. True when this call delivered, False when an earlier call had. A delivery error marks
    the row failed and propagates: RecipientRefusedError for good, anything else is worth a retry; an erased
    address (`journey forget`) is refused for good before anything is stored."""
    key = row.idempotency_key
    with Session(engine) as session:
        if suppressed_emails(session, [row.to_address]):
            raise RecipientRefusedError("the address was erased (journey forget) and is never emailed")
        stored = _outbox_row(session, key)
        if stored is None:
            session.add(row)
            try:
                session.commit()
                stored = row
            except IntegrityError:  # another attempt inserted the key first
                session.rollback()
                stored = _outbox_row(session, key)
                assert stored is not None
        if stored.status == "sent":
            return False
        stored.status, stored.error = "pending", None
        session.commit()
        try:
            delivery.deliver(message, key)
        except Exception as error:
            _mark_failed(session, stored, f"{type(error).__name__}: {error}")
            raise
        stored.status, stored.sent_at = "sent", utcnow()
        session.commit()
    return True


def message_id_left(key: str) -> str:
    """The key itself when it is made of RFC 5322 atext (as the workflow's keys are), else percent-encoded."""
    return quote(key, safe="/-_.")


async def _in_thread(progress: dict[str, Any], function: Callable[..., _T], *args: Any) -> _T:
    """Runs blocking work in a thread, heartbeating `progress` while it runs: a slow SMTP server (each
    command may take up to the URL's timeout) must not look like a dead worker and start a second attempt."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    while not (await asyncio.wait({work}, timeout=KEEPALIVE_SECONDS))[0]:
        activity.heartbeat(dict(progress))
    return work.result()


def _where(request: SendEmailRequest) -> str:
    return f"journey '{request.journey_id}' account '{request.account_id}' node '{request.node_id}'"


def _permanent(request: SendEmailRequest, message: str, kind: str) -> ApplicationError:
    return ApplicationError(f"{_where(request)}: {message}", type=kind, non_retryable=True)


def _logger(request: SendEmailRequest) -> Any:
    return log.bind(journey=request.journey_id, account=request.account_id, node=request.node_id)


def _outbox_row(session: Session, key: str) -> OutboxMessage | None:
    return session.exec(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).first()


def _mark_failed(session: Session, row: OutboxMessage, error: str) -> None:
    row.status, row.error = "failed", error[:2000]
    session.commit()


_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_BLOCKS = frozenset(
    {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "ul", "ol", "blockquote", "pre", "hr"}
    | {"section", "article", "header", "footer", "dl", "dt", "dd"}
)
_HIDDEN = frozenset({"head", "title", "style", "script", "template"})


class _TextExtractor(HTMLParser):
    """HTML -> readable text: blocks become paragraphs, `<br>` a line break, links 'text (url)'."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag == "img":
            self.parts.append(dict(attrs).get("alt") or "")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:]).strip()
            if href and not href.startswith("#") and href != label:
                self.parts.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """The text part derived from an HTML body when a journey has no text template."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
