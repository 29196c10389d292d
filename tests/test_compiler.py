"""Compiling journeys into Plans: the examples, versions, serialisation, and graph checks on big journeys."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.language import catalog
from engine.language.compiler import compile_file
from engine.language.errors import JourneyInvalidError
from engine.language.plan import Plan

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(catalog.journey_files(REPO / "journeys"))


@pytest.fixture
def journeys_copy(tmp_path: Path) -> Path:
    """A private copy of journeys/, safe to edit."""
    shutil.copytree(REPO / "journeys", tmp_path / "journeys")
    return tmp_path / "journeys"


class TestExamples:
    """Every journey shipped in journeys/ compiles into a complete Plan."""

    def test_there_are_examples(self) -> None:
        """At least the three journeys the project promises exist."""
        names = {path.stem for path in EXAMPLES}
        assert {"ai_seed_abm", "webinar_follow_up", "re_engagement"} <= names

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_compiles(self, path: Path) -> None:
        """The Plan carries every node, every edge target and every template the nodes use."""
        plan = compile_file(path)
        assert plan.version == plan.content_hash()
        assert plan.start in plan.nodes
        for edges in plan.edges.values():
            assert all(edge.target in plan.nodes for edge in edges)
        used = {node.template for node in plan.nodes.values() if node.type == "send_email"}  # type: ignore[attr-defined]
        assert used <= set(plan.templates)

    def test_brief_journey(self) -> None:
        """The brief's AI-seeds journey keeps its ids, types and buying-group settings."""
        plan = compile_file(REPO / "journeys" / "ai_seed_abm.yaml")
        assert plan.journey == "ai-seed-abm"
        assert plan.solution_interest is not None and plan.solution_interest.id == "ai-seeds"
        assert plan.role_template is not None and plan.role_template.id == "enterprise-software"
        assert [(edge.label, edge.target) for edge in plan.edges["size_split"]] == [
            ("when account.annual_revenue >= 50000000", "linkedin"),
            ("when buying_group.completeness < 50", "fill_roles"),
            ("otherwise", "reminder"),
        ]
        assert set(plan.services) == {"linkedin_matched_audience"}


class TestVersion:
    """A version names the content: same content, same version; any change, a new one."""

    def test_stable_across_processes(self) -> None:
        """Two separate processes compute the same version for the same file."""
        path = REPO / "journeys" / "ai_seed_abm.yaml"
        code = (
            "import pathlib; from engine.language.compiler import compile_file; "
            f"print(compile_file(pathlib.Path({str(path)!r})).version)"
        )
        runs = {
            subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)
        }
        assert runs == {compile_file(path).version + "\n"}

    def test_template_change_changes_version(self, journeys_copy: Path) -> None:
        """Editing an email template gives the journey a new version (running accounts keep the old one)."""
        before = compile_file(journeys_copy / "ai_seed_abm.yaml").version
        template = journeys_copy / "emails" / "intro.html.j2"
        template.write_text(template.read_text() + "<p>P.S. New footer.</p>\n")
        assert compile_file(journeys_copy / "ai_seed_abm.yaml").version != before

    def test_comment_does_not_change_version(self, journeys_copy: Path) -> None:
        """Comments and formatting are not content."""
        path = journeys_copy / "ai_seed_abm.yaml"
        before = compile_file(path).version
        path.write_text("# reviewed by marketing ops\n" + path.read_text())
        assert compile_file(path).version == before


class TestSerialisation:
    """The Plan travels to workflows as JSON and comes back identical."""

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_round_trip(self, path: Path) -> None:
        """JSON out and back gives an equal Plan with the same version."""
        plan = compile_file(path)
        again = Plan.model_validate_json(plan.model_dump_json())
        assert again == plan
        assert again.content_hash() == plan.version


class TestGraph:
    """Graph checks scale to large journeys and report loops precisely."""

    def test_long_chain(self, tmp_path: Path) -> None:
        """A 3,000-node chain compiles (no recursion limit in the graph checks)."""
        lines = [
            "journey: chain",
            "name: Chain",
            "audience:",
            '  accounts: "account.employees > 1"',
            "start: n0",
            "nodes:",
        ]
        for i in range(3000):
            lines += [f"  - id: n{i}", "    type: update_account", "    add: {touches: 1}", f"    next: n{i + 1}"]
        lines += ["  - id: n3000", "    type: end"]
        (tmp_path / "chain.yaml").write_text("\n".join(lines) + "\n")
        plan = compile_file(tmp_path / "chain.yaml")
        assert len(plan.nodes) == 3001

    def test_loop_without_wait(self, tmp_path: Path) -> None:
        """A loop with no wait is reported once, at its first node, with the way round it."""
        (tmp_path / "loop.yaml").write_text(
            'journey: loop\nname: Loop\naudience:\n  accounts: "account.employees > 1"\nstart: a\nnodes:\n'
            "  - id: a\n    type: update_account\n    add: {n: 1}\n    next: b\n"
            '  - id: b\n    type: split\n    paths:\n      - when: "account.n > 3"\n        next: done\n'
            "    otherwise: a\n"
            "  - id: done\n    type: end\n"
        )
        with pytest.raises(JourneyInvalidError) as raised:
            compile_file(tmp_path / "loop.yaml")
        assert [issue.render() for issue in raised.value.issues] == [
            f"{tmp_path / 'loop.yaml'}:7:5: node 'a': loop 'a' -> 'b' -> 'a' has no wait: an account would go round"
            " it forever; add a wait, wait_for_event or wait_for_completeness"
        ]
