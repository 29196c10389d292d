"""How a finished email leaves the engine: over SMTP, or into `.eml` files when no SMTP server is configured.

A delivery either returns (the message is handed over), raises RecipientRefusedError (this address will
never take this message: the batch goes on without it), or raises anything else (transient: retry later).
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from engine.db import DEFAULT_HOME

_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


class DeliveryError(Exception):
    """A delivery that failed in a way the caller must tell apart from an ordinary (transient) error."""


class RecipientRefusedError(DeliveryError):
    """The server refused this recipient or this message for good (a 5xx reply): retrying cannot help."""


class Delivery(Protocol):
    def deliver(self, message: EmailMessage, key: str) -> None:
        """Hand `message` over; `key` is its idempotency key (also its Message-ID's left part)."""


class SmtpDelivery:
    """Sends through an SMTP server named by a URL, e.g. `smtp+starttls://user:pass@mail.example.com:587`.

    `smtp://` talks plain SMTP and upgrades with STARTTLS when the server offers it (certificate verified;
    with credentials, a server that does not offer it is refused; `?starttls=never` for a local relay with no
    usable certificate); `smtp+starttls://` refuses to send without STARTTLS; `smtps://` is TLS from the
    first byte. `?timeout=` sets the socket timeout in seconds.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError(f"SMTP URL: unknown scheme '{parts.scheme}' (expected smtp, smtp+starttls or smtps)")
        if not parts.hostname:
            raise ValueError("SMTP URL: no host (expected e.g. smtp://mail.example.com:25)")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"starttls", "timeout"})
        if unknown:
            raise ValueError(f"SMTP URL: unknown option '{unknown[0]}' (expected starttls or timeout)")
        starttls = query.get("starttls", "auto")
        if starttls not in ("auto", "never"):
            raise ValueError(f"SMTP URL: starttls must be 'never' or left out, not '{starttls}'")
        if starttls == "never" and parts.scheme != "smtp":
            raise ValueError(f"SMTP URL: starttls=never contradicts '{parts.scheme}://'")
        try:
            self.timeout = float(query.get("timeout", "30"))
        except ValueError:
            raise ValueError(f"SMTP URL: timeout must be a number of seconds, not '{query['timeout']}'") from None
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self.starttls = {"smtp": starttls, "smtp+starttls": "required", "smtps": "implicit"}[parts.scheme]
        self.username = username if username is not None else (unquote(parts.username) if parts.username else None)
        self._password = password if password is not None else (unquote(parts.password) if parts.password else None)
        self._ssl_context = ssl_context or ssl.create_default_context()

    def __repr__(self) -> str:  # never shows the password
        return f"SmtpDelivery({self.scheme}://{self.host}:{self.port}, user={self.username!r})"

    def deliver(self, message: EmailMessage, key: str) -> None:
        # A connection per message: batches are one account's people (tens), a broken connection never
        # poisons the messages after it, and nothing stays open across the activity's thread hops and
        # heartbeats. A TLS handshake per message is cheap at this volume.
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            code, reply = next(iter(error.recipients.values()))
            if 500 <= code < 600:
                raise RecipientRefusedError(f"recipient refused: {code} {_text(reply)}") from error
            raise
        except smtplib.SMTPDataError as error:
            if 500 <= error.smtp_code < 600:
                raise RecipientRefusedError(f"message refused: {error.smtp_code} {_text(error.smtp_error)}") from error
            raise

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self.starttls == "implicit":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._ssl_context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            offered = smtp.has_extn("starttls")
            if self.starttls == "required" and not offered:
                raise smtplib.SMTPNotSupportedError(f"{self.host}:{self.port} does not offer STARTTLS")
            if self.starttls in ("required", "auto") and offered:
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo()
            elif self.starttls == "auto" and self.username:
                # Stripping STARTTLS from the greeting is the classic way to read a password off the wire.
                raise smtplib.SMTPNotSupportedError(
                    f"{self.host}:{self.port} does not offer STARTTLS: the password is not sent in clear text"
                    " (add ?starttls=never to allow it)"
                )
            if self.username:
                smtp.login(self.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


class OutboxFileDelivery:
    """Writes each message to `<folder>/<sha256(key)[:24]>.eml`: the embedded default, nothing leaves the machine.

    Delivering the same key again replaces the file, so a retried delivery never makes a second message.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.eml"

    def deliver(self, message: EmailMessage, key: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(key)
        # Written beside the target, then renamed over it: a reader never sees half a message.
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".eml.tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(message.as_bytes())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def delivery_from_env() -> Delivery:
    """SMTP when JOURNEY_SMTP_URL is set (credentials from JOURNEY_SMTP_USERNAME / _PASSWORD win over the
    URL's), else `.eml` files in JOURNEY_HOME/outbox."""
    url = os.environ.get("JOURNEY_SMTP_URL")
    if url:
        return SmtpDelivery(
            url,
            username=os.environ.get("JOURNEY_SMTP_USERNAME") or None,
            password=os.environ.get("JOURNEY_SMTP_PASSWORD") or None,
        )
    return OutboxFileDelivery(Path(os.environ.get("JOURNEY_HOME", DEFAULT_HOME)) / "outbox")
