"""Events in over HTTP: ingest rate and latency of `journey serve`, and how fast a journey reacts to a form fill.

    python bench/events.py --events 20000

Everything is started here and thrown away at the end: Temporal's dev server (engine.dev.stack.dev_server: WAL
SQLite, free ports, a temporary home), a SQLite database, `journey serve` and `python worker.py` as their own
processes, as operators run them, all on this machine's cores with the load generator.

Phases:
1. batches: N web visits in batches of 100, from 8 concurrent clients (httpx over loopback, API key);
   events/s over the phase and each request's latency.
2. singles: N/4 (at most 5,000) one-event requests from 32 concurrent clients; requests/s and latency.
   Events of phases 1-2 go to accounts in no journey, so the relay's signals are answered "not found". The
   relay runs inside `serve` during each phase (sharing its process and the two cores); each phase waits
   for it to catch up before the next, and its rate is printed too.
3. reaction: once the relay has caught up, 200 accounts waiting at a `wait_for_event form_fill` node each
   get a form fill, 20 a second; reaction = from sending the request to the journey's record of entering
   the next node (the workflow's own clock, same machine).
The last line: `events: X/s ingest, reaction p99 Y ms` (X from phase 1). `--separate-relay` runs
`journey serve --no-relay` and `journey relay` as two processes instead of one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, col, select

from engine.db import Account, ActivityEvent, init_db, make_engine
from engine.dev.stack import dev_server
from engine.language.compiler import compile_file
from engine.runtime import publish, temporal
from engine.service import auth
from engine.service.relay import undelivered_count
from engine.service.serve import free_port

REPO = Path(__file__).resolve().parent.parent
JOURNEY = """\
journey: bench-events
name: Bench events
audience:
  accounts: "account.employees >= 100"
start: wait_demo
nodes:
  - id: wait_demo
    type: wait_for_event
    event: form_fill
    where: "event.form == 'demo'"
    timeout: 1h
    on_event: converted
    on_timeout: timed_out
  - id: converted
    type: end
  - id: timed_out
    type: end
"""
IN_JOURNEY, ELSEWHERE = 200, 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def load(url: str, key: str, bodies: list[dict[str, Any]], clients: int) -> tuple[float, list[float]]:
    """Send every body from `clients` concurrent connections; (elapsed seconds, per-request latencies)."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    headers = {"authorization": f"Bearer {key}"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            while not queue.empty():
                body = queue.get_nowait()
                began = time.perf_counter()
                answer = await http.post("/v1/events", json=body)
                latencies.append(time.perf_counter() - began)
                if answer.status_code != 200 or answer.json()["accepted"] != len(body.get("events", [body])):
                    raise RuntimeError(f"not all accepted: {answer.status_code} {answer.text[:300]}")

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began, latencies


def visit(n: int, run: str) -> dict[str, Any]:
    return {"type": "web_visit", "event_id": f"{run}-{n}", "account": {"id": f"other-{n % ELSEWHERE}"}}


async def main(events: int, separate_relay: bool) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-events-"))
    database = f"sqlite:///{home / 'journey.db'}"
    engine = make_engine(database)
    init_db(engine)
    with Session(engine) as session:
        for n in range(IN_JOURNEY):
            session.add(Account(id=f"acct-{n}", name=f"Account {n}", domain=f"acct-{n}.example", employees=250))
        for n in range(ELSEWHERE):
            session.add(Account(id=f"other-{n}", name=f"Other {n}", domain=f"other-{n}.example", employees=10))
        session.commit()
    key = auth.create_key(engine, "bench").key
    (home / "journeys").mkdir()
    (home / "journeys" / "bench.yaml").write_text(JOURNEY)
    plan = compile_file(home / "journeys" / "bench.yaml")
    port, ui_port, http_port = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http_port}"
    async with dev_server(home / "temporal", port, ui_port) as address:
        env = {**os.environ, "TEMPORAL_ADDRESS": address, "JOURNEY_DATABASE_URL": database, "JOURNEY_HOME": str(home)}
        env["JOURNEY_LOG_LEVEL"] = "WARNING"
        serve_command = [sys.executable, "-m", "engine.cli", "serve", "--port", str(http_port)]
        serve_command += ["--journeys", str(home / "journeys")]
        processes = [subprocess.Popen([sys.executable, "worker.py"], cwd=REPO, env=env)]
        if separate_relay:
            serve_command.append("--no-relay")
            relay_command = [sys.executable, "-m", "engine.cli", "relay", "--journeys", str(home / "journeys")]
            processes.append(subprocess.Popen(relay_command, cwd=REPO, env=env))
        processes.append(subprocess.Popen(serve_command, cwd=REPO, env=env))
        try:
            client = await temporal.connect(address)
            await publish.publish(client, engine, plan)
            async with httpx.AsyncClient(base_url=url) as http:
                for _ in range(300):
                    try:
                        if (await http.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            run = uuid.uuid4().hex[:6]
            types = ["web_visit", "form_fill"]

            batches = [
                {"events": [visit(n, run) for n in range(i, min(i + 100, events))]} for i in range(0, events, 100)
            ]
            began = time.perf_counter()
            elapsed, latencies = await load(url, key, batches, clients=8)
            ingest_rate = events / elapsed
            print(
                f"batches: {events:,} events in {len(batches)} requests of 100 from 8 clients: {elapsed:.1f} s, "
                f"{ingest_rate:,.0f} events/s; request p50 {ms(percentile(latencies, 0.5))}, "
                f"p99 {ms(percentile(latencies, 0.99))}"
            )
            await drained(engine, types, events, began)
            singles = min(events // 4, 5000)
            bodies = [visit(events + n, run) for n in range(singles)]
            began = time.perf_counter()
            elapsed, latencies = await load(url, key, bodies, clients=32)
            print(
                f"singles: {singles:,} one-event requests from 32 clients: {elapsed:.1f} s, "
                f"{singles / elapsed:,.0f} requests/s; p50 {ms(percentile(latencies, 0.5))}, "
                f"p99 {ms(percentile(latencies, 0.99))}"
            )
            await drained(engine, types, singles, began)

            sent: dict[str, float] = {}
            async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}) as http:
                for n in range(IN_JOURNEY):
                    account = f"acct-{n}"
                    body = {"type": "form_fill", "event_id": f"{run}-fill-{n}", "account": {"id": account}}
                    body["payload"] = {"form": "demo"}
                    sent[account] = datetime.now(UTC).timestamp()
                    answer = await http.post("/v1/events", json=body)
                    if answer.json()["accepted"] != 1:
                        raise RuntimeError(answer.text)
                    await asyncio.sleep(0.05)
            reactions = await reaction_times(engine, sent)
            print(
                f"reaction: form fill -> next node for {len(reactions)} accounts, 20/s: p50 "
                f"{ms(percentile(reactions, 0.5))}, p99 {ms(percentile(reactions, 0.99))}, "
                f"max {ms(max(reactions))}, mean {ms(statistics.mean(reactions))}"
            )
            relayed = delivery_times(engine, run, sent)
            print(
                f"  of which request -> signalled by the relay: p50 {ms(percentile(relayed, 0.5))}, "
                f"p99 {ms(percentile(relayed, 0.99))}"
            )
            print(f"events: {ingest_rate:,.0f}/s ingest, reaction p99 {percentile(reactions, 0.99) * 1000:.0f} ms")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
    engine.dispose()


async def drained(engine: Any, types: list[str], count: int, began: float) -> None:
    """Wait for the relay to deliver the phase's events (to accounts in no journey: "not found" answers)."""
    while undelivered_count(engine, types) > 0:
        await asyncio.sleep(0.1)
    took = time.perf_counter() - began
    print(f"relay: {count:,} events delivered {took:.1f} s after the phase began, {count / took:,.0f} events/s")


def delivery_times(engine: Any, run: str, sent: dict[str, float]) -> list[float]:
    with Session(engine) as session:
        keys = [f"{run}-fill-{n}" for n in range(IN_JOURNEY)]
        rows = session.exec(select(ActivityEvent).where(col(ActivityEvent.key).in_(keys))).all()
    return [_aware(row.delivered_at).timestamp() - sent[row.account_id or ""] for row in rows if row.delivered_at]


async def reaction_times(engine: Any, sent: dict[str, float]) -> list[float]:
    for _ in range(600):
        with Session(engine) as session:
            rows = session.exec(
                select(ActivityEvent).where(
                    ActivityEvent.type == "node_entered",
                    ActivityEvent.node_id == "converted",
                    col(ActivityEvent.account_id).in_(list(sent)),
                )
            ).all()
        if len(rows) == len(sent):
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError(f"only {len(rows)} of {len(sent)} journeys moved on")
    return [_aware(row.occurred_at).timestamp() - sent[row.account_id or ""] for row in rows]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events in the batch phase")
    parser.add_argument(
        "--separate-relay", action="store_true", help="serve --no-relay, and the relay as its own process"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.separate_relay))
