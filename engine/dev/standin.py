"""A local stand-in for the outside services of journeys/services.yaml (LinkedIn, CRM, Slack), for
`journey dev`: it answers every call with 200 and a JSON receipt, and appends each call to a log file, so
`external_action` nodes take their success path locally. Production points services.yaml at the real APIs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STANDIN_PORT = 8790


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
            answer = json.dumps({"ok": True, "received": entry["idempotency_key"]}).encode()
            self.send_response(200)
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
