"""`journey import` at scale: generate accounts and people CSVs, import them into a fresh database through the
code path of the command (engine.data.importer.import_files), then import the same files again (all unchanged).

    .venv/bin/python bench/import.py --accounts 100000 --people 500000
    .venv/bin/python bench/import.py --accounts 100000 --people 500000 --postgres

Target (issue 15): all 600,000 rows in under 60 s on SQLite, the re-import under 30 s. `--postgres` runs the
same on a throw-away PostgreSQL 15 started from the machine's binaries by the test suite's helper
(tests/conftest.py: postgres_server).
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from conftest import postgres_server  # noqa: E402  (the test suite's throwaway PostgreSQL)

from engine.data.importer import ImportFile, ImportReport, import_files  # noqa: E402
from engine.db import init_db, make_engine  # noqa: E402

INDUSTRIES = ("Agriculture", "Biotech", "Software", "Retail", "Energy", "Logistics", "Healthcare")
ZONES = ("Europe/Berlin", "America/Chicago", "Asia/Tokyo", "Europe/London", "America/Sao_Paulo", "UTC")
COUNTRIES = ("DE", "US", "JP", "GB", "BR", "FR")
TITLES = ("CTO", "VP Engineering", "Data Engineer", "Procurement Manager", "CFO", "Agronomist", "IT Manager")


def generate(folder: Path, accounts: int, people: int) -> tuple[Path, Path]:
    """Deterministic files: every account gets people/accounts people (the rest go to the first ones)."""
    rng = random.Random(15)
    account_file, people_file = folder / "accounts.csv", folder / "people.csv"
    with account_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "domain", "industry", "employees", "country", "timezone", "segment"])
        for n in range(accounts):
            employees = rng.randrange(10, 50_000)
            writer.writerow(
                [
                    f"acct-{n:07d}",
                    f"Account {n}",
                    f"acct-{n:07d}.example",
                    rng.choice(INDUSTRIES),
                    employees,
                    rng.choice(COUNTRIES),
                    rng.choice(ZONES),
                    "enterprise" if employees >= 1000 else "smb",
                ]
            )
    with people_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "account_id", "first_name", "last_name", "job_title", "unsubscribed", "source"])
        for n in range(people):
            account = n % accounts
            writer.writerow(
                [
                    f"person.{n}@acct-{account:07d}.example",
                    f"acct-{account:07d}",
                    f"First{n % 997}",
                    f"Last{n % 1009}",
                    rng.choice(TITLES),
                    "true" if rng.random() < 0.03 else "false",
                    rng.choice(("webinar", "trade show", "inbound")),
                ]
            )
    return account_file, people_file


def run(url: str, files: list[ImportFile], label: str) -> ImportReport:
    engine = make_engine(url)
    init_db(engine)
    started, cpu = time.perf_counter(), time.process_time()
    report = import_files(engine, files)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    rows = sum(r.created + r.updated + r.unchanged for r in report.files)
    counts = "; ".join(
        f"{r.file.kind}: created {r.created}, updated {r.updated}, unchanged {r.unchanged}" for r in report.files
    )
    problems = report.problems
    print(
        f"{label}: {rows:,} rows in {seconds:.1f} s = {rows / seconds:,.0f} rows/s ({cpu:.1f} s of CPU in this "
        f"process; {counts}; problems {problems})"
    )
    if problems:
        for file in report.files:
            print("\n".join(file.lines()[:10]), file=sys.stderr)
        raise SystemExit(1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=500_000)
    parser.add_argument("--postgres", action="store_true", help="import into a throw-away PostgreSQL instead")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="journey-bench-import-"))
    try:
        started = time.perf_counter()
        account_file, people_file = generate(folder, args.accounts, args.people)
        size = (account_file.stat().st_size + people_file.stat().st_size) / 1e6
        print(
            f"generated {args.accounts:,} accounts and {args.people:,} people ({size:.0f} MB of CSV) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        files = [ImportFile("accounts", account_file), ImportFile("people", people_file)]
        with postgres_server() if args.postgres else _sqlite(folder) as url:
            print(f"database: {'PostgreSQL 15 (fsync off)' if args.postgres else 'SQLite (WAL)'}")
            run(url, files, "first import")
            run(url, files, "re-import (unchanged)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _sqlite(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'journey.db'}"


if __name__ == "__main__":
    main()
