"""A worker that dies the moment an email batch has been delivered, before Temporal hears of it.

Run by tests/test_crash.py as a separate process: `send_email` does its real work (SMTP delivery, outbox
rows marked sent), then the process kills itself with SIGKILL — the window in which a retry could send
every email a second time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from temporalio import activity
from temporalio.worker import Worker

from activities.accounts import AccountActivities
from activities.delivery import SmtpDelivery
from activities.email import EmailActivities
from engine.db import make_engine
from engine.runtime import temporal
from engine.runtime.workers import WORKFLOWS
from engine.workflow.contracts import SendEmailRequest, SendEmailResult


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--smtp-url", required=True)
    parser.add_argument("--marker", type=Path, required=True)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    email = EmailActivities(engine, SmtpDelivery(args.smtp_url))
    accounts = AccountActivities(engine)

    @activity.defn(name="send_email")
    async def send_then_die(request: SendEmailRequest) -> SendEmailResult:
        result = await email.send_email(request)
        args.marker.write_text(f"{result.sent}\n")
        os.kill(os.getpid(), signal.SIGKILL)  # after the effect, before the completion reaches Temporal
        return result

    client = await temporal.connect(args.address)
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=WORKFLOWS,
        activities=[accounts.load_account, accounts.update_account, accounts.record_step, send_then_die],
        workflow_runner=temporal.sandbox_runner(),
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
