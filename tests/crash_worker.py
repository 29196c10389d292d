"""A worker that dies mid-activity, run by tests/test_crash.py as a separate process.

`--die-in send_email` (the default): `send_email` does its real work (SMTP delivery, outbox rows marked
sent), then the process kills itself with SIGKILL — the window in which a retry could send every email a
second time. `--die-in sales_handoff`: the process kills itself as the handoff starts, so the test can time
how long Temporal takes to notice and give the handoff to another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path

from temporalio import activity
from temporalio.worker import Worker

from activities.accounts import AccountActivities
from activities.buying_groups import BuyingGroupActivities
from activities.delivery import SmtpDelivery
from activities.email import EmailActivities
from engine.db import make_engine
from engine.runtime import temporal
from engine.runtime.workers import WORKFLOWS
from engine.workflow.contracts import BuyingGroupRequest, HandoffResult, SendEmailRequest, SendEmailResult


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--smtp-url", required=True)
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("--die-in", choices=["send_email", "sales_handoff"], default="send_email")
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    email = EmailActivities(engine, SmtpDelivery(args.smtp_url))
    accounts = AccountActivities(engine)
    groups = BuyingGroupActivities(engine, SmtpDelivery(args.smtp_url))

    @activity.defn(name="send_email")
    async def send_then_die(request: SendEmailRequest) -> SendEmailResult:
        result = await email.send_email(request)
        args.marker.write_text(f"{result.sent}\n")
        os.kill(os.getpid(), signal.SIGKILL)  # after the effect, before the completion reaches Temporal
        return result

    @activity.defn(name="sales_handoff")
    async def die_handing_off(request: BuyingGroupRequest) -> HandoffResult:
        args.marker.write_text(f"{time.time()}\n")
        os.kill(os.getpid(), signal.SIGKILL)  # as a worker dies mid-handoff: the attempt is never completed
        raise AssertionError("unreachable")

    dying = [die_handing_off, email.send_email] if args.die_in == "sales_handoff" else [send_then_die]
    client = await temporal.connect(args.address)
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=WORKFLOWS,
        activities=[
            accounts.load_account,
            accounts.update_account,
            accounts.record_step,
            accounts.record_steps,
            accounts.log_steps,
            groups.assign,
            groups.load,
            *dying,
        ],
        workflow_runner=temporal.sandbox_runner(),
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
