"""`journey diff`: the changes between the live version of a journey and its edited file, on copies of the
example journeys, with the live version stored in a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy.engine import Engine

from engine.cli import diff as diff_cli
from engine.language.compiler import compile_file
from engine.language.plan import Plan
from engine.runtime import plan_diff, publish
from engine.runtime.diff_impact import Impact, NodeImpact
from engine.runtime.plan_diff import PlanDiff

REPO = Path(__file__).resolve().parent.parent
WEBINAR = "webinar_follow_up.yaml"


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of journeys/ to edit."""
    return Path(shutil.copytree(REPO / "journeys", tmp_path / "journeys"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path.name}"
    path.write_text(text.replace(old, new))


def remove_node(path: Path, node: str, before: str) -> None:
    """Delete the node `node` (its block runs up to the node `before`)."""
    text = path.read_text()
    start, end = text.index(f"  - id: {node}\n"), text.index(f"  - id: {before}\n")
    path.write_text(text[:start] + text[end:])


async def live_and_new(engine: Engine, original: Plan, file: Path) -> PlanDiff:
    """Store `original` as the live version, then compare the file's compile with it, as `journey diff` does."""
    publish.store_version(engine, original)
    found, impact, problem = await diff_cli.changes_with(None, engine, compile_file(file))
    assert (impact, problem) == (None, None)
    return found


def rendered(found: PlanDiff, impact: Impact | None = None, problem: str | None = None) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for part in diff_cli.summary(found, impact, problem):
        console.print(part)
    return console.export_text()


class TestExampleEdits:
    async def test_every_kind_of_change(self, engine: Engine, examples: Path) -> None:
        """Template text, a wait's timeout, a removed node, a re-pointed branch, an added node, the audience."""
        file = examples / WEBINAR
        original = compile_file(file)
        edit(examples / "emails" / "webinar_recording.txt.j2", "Hi ", "Hello ")
        edit(file, "timeout: 5d", "timeout: 9d")
        edit(file, "on_timeout: next_tuesday", "on_timeout: qualify")
        remove_node(file, "next_tuesday", "qualify")
        edit(file, "    next: mark_nurture\n\n  - id: owner_task", "    next: survey\n\n  - id: owner_task")
        edit(
            file,
            "  - id: owner_task\n",
            "  - id: survey\n    type: wait\n    duration: 1d\n    next: mark_nurture\n\n  - id: owner_task\n",
        )
        edit(file, "reentry: never", "reentry: after 30d")

        found = await live_and_new(engine, original, file)

        assert found.old_version == original.version and found.new_version == compile_file(file).version
        assert [(node.node, node.type) for node in found.added] == [("survey", "wait")]
        assert [(node.node, node.type) for node in found.removed] == [("next_tuesday", "wait")]
        changed = {node.node: node for node in found.changed}
        assert set(changed) == {"recording", "wait_demo_interest", "exec_brief"}

        (template,) = changed["recording"].templates
        assert template.old_path == template.new_path == "emails/webinar_recording.txt.j2"
        assert (template.lines_added, template.lines_removed) == (1, 1)
        assert any(line.startswith("+Hello ") for line in template.diff)
        assert changed["recording"].fields == [] and changed["recording"].edges == []

        wait = changed["wait_demo_interest"]
        assert [(f.field, f.old, f.new) for f in wait.fields] == [("timeout", "5d", "9d")]
        assert [(e.kind, e.label, e.old_target, e.new_target) for e in wait.edges] == [
            ("re-pointed", "on_timeout", "next_tuesday", "qualify")
        ]
        assert [(e.kind, e.label, e.old_target, e.new_target) for e in changed["exec_brief"].edges] == [
            ("re-pointed", "next", "mark_nurture", "survey")
        ]
        assert [(f.field, f.old, f.new) for f in found.settings] == [("audience.reentry", "never", "after 30d")]
        assert found.affected_nodes() == ["next_tuesday", "recording", "wait_demo_interest", "exec_brief"]

        text = rendered(found)
        assert "3 nodes changed, 1 node removed, 1 node added; 2 branches re-pointed; 1 journey setting changed" in text
        assert "branch 'on_timeout' now goes to qualify instead of next_tuesday" in text
        assert "timeout: 5d -> 9d" in text
        assert "+Hello " in text
        assert "a republish does not move them" in text

    async def test_identical_file_has_no_changes(self, engine: Engine, examples: Path) -> None:
        file = examples / "newsletter_ab_test.yaml"
        found = await live_and_new(engine, compile_file(file), file)
        assert found.unchanged and not found.is_new
        assert rendered(found).splitlines()[-1] == "no changes"

    async def test_no_live_version_lists_the_whole_journey(self, engine: Engine, examples: Path) -> None:
        plan = compile_file(examples / "newsletter_ab_test.yaml")
        found, impact, _ = await diff_cli.changes_with(None, engine, plan)
        assert found.is_new and impact is None and not found.unchanged
        assert [node.node for node in found.added] == list(plan.nodes)
        assert "has no live version: all 6 nodes are new" in rendered(found)

    async def test_live_is_the_latest_published(self, engine: Engine, examples: Path) -> None:
        """Two versions stored: the comparison is with the newer one."""
        file = examples / "newsletter_ab_test.yaml"
        first = compile_file(file)
        publish.store_version(engine, first)
        edit(file, "timeout: 14d", "timeout: 21d")
        second = compile_file(file)
        found = await live_and_new(engine, second, file)
        assert found.unchanged and found.old_version == second.version != first.version


class TestBranches:
    def test_variant_arm_and_split_condition(self, examples: Path) -> None:
        """A variant re-pointed keeps its label; a split condition edited is one branch removed and one added."""
        abtest, webinar = examples / "newsletter_ab_test.yaml", examples / WEBINAR
        before_ab, before_webinar = compile_file(abtest), compile_file(webinar)
        edit(abtest, "percent: 45\n        next: data_issue", "percent: 45\n        next: STORY")
        edit(abtest, "percent: 45\n        next: story_issue", "percent: 45\n        next: data_issue")
        edit(abtest, "next: STORY", "next: story_issue")
        edit(webinar, "account.annual_revenue >= 10000000", "account.annual_revenue >= 20000000")

        (variant,) = plan_diff.diff(before_ab, compile_file(abtest)).changed
        assert [(e.kind, e.label, e.old_target, e.new_target) for e in variant.edges] == [
            ("re-pointed", "variant A (45%)", "story_issue", "data_issue"),
            ("re-pointed", "variant B (45%)", "data_issue", "story_issue"),
        ]
        assert variant.fields == []

        (split,) = plan_diff.diff(before_webinar, compile_file(webinar)).changed
        assert [(f.field, f.old, f.new) for f in split.fields] == [
            ("paths[1].when", "account.annual_revenue >= 10000000", "account.annual_revenue >= 20000000")
        ]
        assert {(e.kind, e.label) for e in split.edges} == {
            ("added", "when account.annual_revenue >= 20000000"),
            ("removed", "when account.annual_revenue >= 10000000"),
        }

    def test_template_file_swapped_and_long_diff_bounded(self, examples: Path) -> None:
        """A node pointed at another template shows the field and the text; a long diff is cut, its counts exact."""
        file = examples / WEBINAR
        before = compile_file(file)
        edit(file, "template: emails/webinar_exec_brief.html.j2", "template: emails/brief_v2.html.j2")
        html = (examples / "emails" / "webinar_exec_brief.html.j2").read_text()
        (examples / "emails" / "brief_v2.html.j2").write_text(html)
        lines = "\n".join(f"line {number}" for number in range(300))
        (examples / "emails" / "brief_v2.txt.j2").write_text(lines + "\n")

        (node,) = plan_diff.diff(before, compile_file(file)).changed
        assert [(f.field, f.new) for f in node.fields] == [("template", "emails/brief_v2.html.j2")]
        (text,) = node.templates  # the HTML is the same text under another name: only the text twin differs
        assert (text.old_path, text.new_path) == ("emails/webinar_exec_brief.txt.j2", "emails/brief_v2.txt.j2")
        assert text.lines_added == 300 and text.truncated
        assert len(text.diff) == plan_diff.TEMPLATE_DIFF_LINES


class TestJson:
    async def test_shape(self, engine: Engine, examples: Path) -> None:
        file = examples / WEBINAR
        original = compile_file(file)
        edit(file, "timeout: 2d", "timeout: 3d")
        remove_node(file, "alert_sales", "mark_sales")
        edit(file, "on_error: alert_sales", "on_error: mark_sales")
        found = await live_and_new(engine, original, file)
        impact = Impact([NodeImpact("alert_sales", {original.version: 2, "older": 1})], {original.version: 5}, True)

        data = json.loads(json.dumps(diff_cli.changes_json(found, impact, None)))

        assert set(data) == {
            "journey", "old_version", "new_version", "new_journey", "unchanged", "added", "removed", "changed",
            "edges", "settings", "impact", "impact_error", "pinned",
        }  # fmt: skip
        assert data["removed"] == [{"node": "alert_sales", "type": "external_action"}]
        wait = next(node for node in data["changed"] if node["node"] == "wait_attended")
        assert wait == {
            "node": "wait_attended",
            "type": "wait_for_event",
            "fields": [{"field": "timeout", "old": "2d", "new": "3d"}],
            "templates": [],
            "edges": [],
        }
        assert data["edges"] == [
            {
                "kind": "re-pointed",
                "node": "owner_task",
                "label": "on_error",
                "old_target": "alert_sales",
                "new_target": "mark_sales",
            }
        ]
        assert data["impact"] == {
            "complete": True,
            "running": 5,
            "running_by_version": {original.version: 5},
            "nodes": [{"node": "alert_sales", "total": 3, "by_version": {original.version: 2, "older": 1}}],
        }
        assert data["pinned"] is True and data["impact_error"] is None

        text = rendered(found, impact)
        assert "1 node removed (3 accounts are waiting there now)" in text
        assert (
            f"alert_sales (external_action): 3 accounts are waiting here now (2 on {original.version}, 1 on older)"
            in text
        )
        assert f"5 accounts are in the journey now (5 on {original.version})" in text


class TestCommand:
    def cli(self, *args: str, database: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "JOURNEY_DATABASE_URL": f"sqlite:///{database}", "TEMPORAL_ADDRESS": "127.0.0.1:1"}
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, cwd=REPO, env=env
        )

    def test_broken_file_exits_1_with_located_errors(self, tmp_path: Path) -> None:
        broken = "tests/broken/18_unknown_next.yaml"
        result = self.cli("diff", broken, database=tmp_path / "journey.db")
        assert result.returncode == 1
        assert result.stderr.splitlines()[0].startswith(f"{broken}:20:11: node 'intro': next: unknown node")
        assert result.stdout == ""

    def test_new_journey_without_temporal(self, tmp_path: Path, examples: Path) -> None:
        """No live version: everything is new, and Temporal is not needed to say so."""
        result = self.cli("diff", str(examples / WEBINAR), "--json", database=tmp_path / "journey.db")
        assert result.returncode == 0, result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        assert data["new_journey"] and data["old_version"] is None and len(data["added"]) == 14
        assert data["impact"] is None and data["impact_error"] is None
