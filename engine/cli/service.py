"""The `journey serve` and `journey api-key` commands: the events service and who may call it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from engine.cli.common import data_table, database, group, out

api_key_app = group("API keys for `journey serve` (stored as hashes; a key is shown once).")


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="the address to listen on"),
    port: int = typer.Option(8000, "--port", help="the port to listen on"),
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="where events.yaml declares custom events"),
    relay: bool = typer.Option(True, "--relay/--no-relay", help="deliver stored events to Temporal from here"),
) -> None:
    """Take events in over HTTP (POST /v1/events, /v1/forms/{form}, email links) and relay them to journeys."""
    import uvicorn

    from engine import logs
    from engine.service.serve import build_app

    logs.configure()
    try:
        app, engine = build_app(journeys, relay)
    except ValueError as error:
        print(f"journey serve: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    print(f"journey serve: http://{host}:{port} (OpenAPI at /openapi.json, docs at /docs)", file=sys.stderr)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        engine.dispose()


def relay_command(
    journeys: Path = typer.Option(Path("journeys"), "--journeys", help="where events.yaml declares custom events"),
    poll: float = typer.Option(0.05, "--poll", help="seconds between looks for new events"),
) -> None:
    """Deliver stored events to journeys, apart from `journey serve --no-relay` (run one per database)."""
    import asyncio
    import signal

    from engine import logs
    from engine.service.serve import run_relay

    logs.configure()

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run_relay(journeys, poll, stop)

    try:
        asyncio.run(main())
    except ValueError as error:
        print(f"journey relay: {error}", file=sys.stderr)
        raise typer.Exit(1) from None


@api_key_app.command("create")
def create(
    name: str = typer.Argument(..., help="who will use it, e.g. website or typeform"),
    expires_in: str | None = typer.Option(None, "--expires-in", help="e.g. 90d; default: never"),
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from engine.language.durations import parse_duration
    from engine.service import auth

    try:
        lifetime = parse_duration(expires_in) if expires_in else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--expires-in") from None
    with database() as engine:
        created = auth.create_key(engine, name, lifetime)
    until = f", expires {created.expires_at:%Y-%m-%d %H:%M} UTC" if created.expires_at else ""
    print(f"API key '{created.id}' for {name}{until}. Store it now, it is not shown again:", file=sys.stderr)
    print(created.key)


@api_key_app.command("list")
def list_() -> None:
    """Every key: id, name, when created, when it expires, whether revoked (never the key itself)."""
    from engine.service import auth

    with database() as engine:
        rows = auth.list_keys(engine)
    table = data_table("id", "name", "created (UTC)", "expires", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else "never",
            f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
        )
    out().print(table)


@api_key_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="the key's id, e.g. jk_3f9a1c2b")) -> None:
    """Revoke a key at once: requests with it get 403 from then on."""
    from engine.service import auth

    with database() as engine:
        if not auth.revoke_key(engine, key_id):
            print(f"journey api-key revoke: no key '{key_id}' (see `journey api-key list`)", file=sys.stderr)
            raise typer.Exit(1)
    print(f"revoked {key_id}")


def parked_command(
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    limit: int = typer.Option(100, "--limit", min=1, help="at most this many, newest first"),
) -> None:
    """Events the relay set aside because they cannot be delivered, newest first, each with its reason."""
    from engine.service.relay import parked_events

    with database() as engine:
        rows = parked_events(engine, limit)
    if as_json:
        listing = [
            {
                "event_id": row.key,
                "type": row.type,
                "account": row.account_id,
                "occurred_at": row.occurred_at.isoformat(),
                "reason": row.reason,
            }
            for row in rows
        ]
        print(json.dumps(listing, indent=2))
        return
    if not rows:
        print("no parked events: the relay has delivered or is delivering everything")
        return
    table = data_table("event id", "type", "account", "occurred (UTC)", "reason", title=f"{len(rows)} parked")
    for row in rows:
        table.add_row(row.key, row.type, row.account_id or "", f"{row.occurred_at:%Y-%m-%d %H:%M}", row.reason or "")
    out().print(table)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.command("relay")(relay_command)
    app.command("parked")(parked_command)
    app.add_typer(api_key_app, name="api-key")
