"""A local stand-in for the outside services of journeys/services.yaml (LinkedIn, CRM, Slack), for
`journey dev`: it answers every call with 200 and a JSON receipt, and appends each call to a log file, so
`external_action` nodes take their success path locally. The CRM's lead router answers as a real one would
(see `lead_route`), so journeys branching on its answer take each path. Production points services.yaml at
the real APIs.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STANDIN_PORT = 8790
LEAD_ROUTER_PATH = "/crm/lead-routing"


def lead_route(request_body: bytes) -> tuple[int, dict[str, Any]]:
    """The lead router's answer for the account in an `external_action` call: 1,000 employees or more go to sales
    with an enterprise owner, 200 or more to nurture (201 Created, both); smaller accounts are queued for a person
    to review (202 Accepted)."""
    try:
        account = json.loads(request_body or b"{}").get("account") or {}
    except (ValueError, AttributeError):
        account = {}
    account_id = str(account.get("id") or "unknown")
    lead_id = "L-" + hashlib.sha256(account_id.encode()).hexdigest()[:8].upper()
    size = account.get("employees")
    employees = size if isinstance(size, int) else 0
    if employees < 200:
        return 202, {"lead_id": lead_id, "status": "queued"}
    if employees < 1000:
        return 201, {"lead_id": lead_id, "route": "nurture", "owner": None}
    country = str(account.get("country") or "global").lower()
    return 201, {"lead_id": lead_id, "route": "sales", "owner": {"email": f"enterprise.{country}@sales.example"}}


def _handler(log_file: Path) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            entry: dict[str, Any] = {
                "at": datetime.now(UTC).isoformat(),
                "method": self.command,
                "path": self.path,
                "idempotency_key": self.headers.get("Idempotency-Key"),
                "authorized": bool(self.headers.get("Authorization")),
                "body": body.decode("utf-8", "replace"),
            }
            with lock, log_file.open("a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
            status, reply = 200, {"ok": True, "received": entry["idempotency_key"]}
            if self.path.split("?")[0] == LEAD_ROUTER_PATH:
                status, reply = lead_route(body)
            answer = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *_: Any) -> None:
            pass  # the log file is the record

    return Handler


@contextmanager
def standin_services(log_file: Path, port: int = STANDIN_PORT) -> Iterator[str]:
    """Serve on 127.0.0.1:`port` until the block ends; yields the base URL."""
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(log_file))
    except OSError as error:
        raise RuntimeError(
            f"cannot serve the stand-in services on port {port} ({error.strerror}): is another `journey dev` running?"
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="standin-services", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
