"""The Temporal UI, as an operator uses it: headless Chromium (Debian's package, driven by Playwright) opens
the dev server's UI, runs a search-attribute query, and the table lists exactly the stuck accounts with
their names, node and what they wait for; a workflow's page shows its summary and current details. The
screenshots are taken every run; with JOURNEY_UPDATE_SCREENSHOTS=1 they replace docs/temporal-ui-*.png (the
README's), so an ordinary test run leaves the working tree clean."""

from __future__ import annotations

import asyncio
import os
import urllib.parse
import uuid
from pathlib import Path

from browser import FLAGS, chromium
from playwright.async_api import Page, async_playwright
from sqlalchemy.engine import Engine
from support import add_account, free_port, write_journey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.delivery import OutboxFileDelivery
from engine.runtime import operators, publish, temporal
from engine.runtime.workers import running_worker
from engine.workflow import visibility

DOCS = Path(__file__).resolve().parent.parent / "docs"
NODES = """
- id: route
  type: split
  paths:
    - when: "account.industry == 'Agriculture'"
      next: wait_demo
  otherwise: cool_off
- id: wait_demo
  type: wait_for_event
  event: form_fill
  where: "event.form == 'demo-request'"
  timeout: 14d
  on_event: done
  on_timeout: cool_off
- id: cool_off
  type: wait
  duration: 30d
  next: done
- id: done
  type: end
"""
ACCOUNTS = {  # id: (name, industry)
    "acme-corp": ("Acme Corp", "Agriculture"),
    "greenfield-agritech": ("Greenfield Agritech", "Agriculture"),
    "sunbrook-seeds": ("Sunbrook Seeds", "Agriculture"),
    "harbor-genomics": ("Harbor Genomics", "Biotech"),
}
STUCK = ["acme-corp", "greenfield-agritech", "sunbrook-seeds"]
COLUMNS_OUT = ("Run ID", "Type", "Start", "End")
COLUMNS_IN = ("AccountName", "JourneyNode", "JourneyWaitingFor", "JourneyNodeSince")


async def _configure_columns(page: Page) -> None:
    """The journey's search attributes as columns, as an operator would set the table up once."""
    await page.get_by_role("button", name="Configure Columns").click()
    for name in COLUMNS_OUT:
        await page.get_by_role("button", name=f"Remove {name} column").click()
    for name in COLUMNS_IN:
        await page.get_by_role("button", name=f"Add {name} column").click()
    await page.get_by_role("button", name="Close").filter(visible=True).click()
    await page.get_by_text("Configure Workflows Table").wait_for(state="hidden")


def _shots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("JOURNEY_UPDATE_SCREENSHOTS") == "1" else tmp_path


async def test_ui_lists_stuck_accounts(db: Engine, tmp_path: Path) -> None:
    browser_path = chromium()
    ui_port = free_port()
    plan = write_journey(tmp_path, NODES, start="route", journey=f"demo-follow-up-{uuid.uuid4().hex[:4]}")
    plan = plan.model_copy(update={"name": "Demo request follow-up"})
    for account_id, (name, industry) in ACCOUNTS.items():
        add_account(db, account_id, name=name, industry=industry)
    async with (
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal.dev_server_path(),
            data_converter=pydantic_data_converter,
            dev_server_extra_args=["--log-level", "error"],
            search_attributes=visibility.KEYS,
            ui=True,
            ui_port=ui_port,
        ) as env,
        running_worker(env.client, db, OutboxFileDelivery(tmp_path / "outbox"), "ui-test"),
    ):
        await publish.publish(env.client, db, plan, task_queue="ui-test")
        query = operators.stuck_query(plan.journey, node="wait_demo")
        for _ in range(100):
            if len(await operators.find(env.client, query)) == len(STUCK):
                break
            await asyncio.sleep(0.1)
        ui_query = f'JourneyNode = "wait_demo" AND JourneyId = "{plan.journey}" AND ExecutionStatus = "Running"'
        url = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows?query={urllib.parse.quote(ui_query)}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(browser_path), args=FLAGS)
            page = await browser.new_page(viewport={"width": 1600, "height": 560})
            await page.goto(url)
            await page.get_by_text(f"journey/{plan.journey}/acme-corp").wait_for(timeout=30_000)
            await _configure_columns(page)
            await page.get_by_role("columnheader", name="JourneyWaitingFor").wait_for(timeout=10_000)
            rows = page.locator("tbody tr")
            texts = await rows.all_inner_texts()
            listed = sorted(
                account for account in ACCOUNTS if any(f"journey/{plan.journey}/{account}" in t for t in texts)
            )
            assert listed == STUCK, texts
            for account_id in STUCK:
                [row] = [t for t in texts if f"/{account_id}" in t]
                assert ACCOUNTS[account_id][0] in row and "wait_demo" in row and "event form_fill" in row
            await page.screenshot(path=str(_shots(tmp_path) / "temporal-ui-stuck.png"))

            workflow = urllib.parse.quote(temporal.workflow_id(plan.journey, "acme-corp"), safe="")
            description = await env.client.get_workflow_handle(
                temporal.workflow_id(plan.journey, "acme-corp")
            ).describe()
            await page.goto(
                f"http://127.0.0.1:{ui_port}/namespaces/default/workflows/{workflow}/{description.run_id}/history"
            )
            await page.get_by_text("User Metadata").first.click()
            # The UI renders summaries and details (markdown) in sandboxed frames.
            shown = ""
            for _ in range(100):
                shown = "\n".join([await frame.inner_text("body") for frame in page.frames[1:]])
                if "Acme Corp" in shown and "Moves on" in shown:
                    break
                await page.wait_for_timeout(200)
            assert "Demo request follow-up · Acme Corp" in shown
            assert "wait_demo (wait_for_event) since" in shown
            assert "Moves on: on_event → done · on_timeout (" in shown
            await page.set_viewport_size({"width": 1300, "height": 760})
            await page.screenshot(path=str(_shots(tmp_path) / "temporal-ui-details.png"))
            await browser.close()
        for parked in await operators.find(env.client, operators.stuck_query(plan.journey)):
            await env.client.get_workflow_handle(parked.workflow_id).terminate("test over")
