"""The `journey` command: exit codes, graphs, schema and database set-up, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.language import catalog
from engine.language.compiler import compile_file
from engine.language.model import NODE_MODELS, PERSON_STEP_TYPES

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(catalog.journey_files(REPO / "journeys"))
runner = CliRunner()


class TestValidate:
    """`journey validate` exits 0 when clean, 1 on problems, 2 on usage errors."""

    def test_examples_clean(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no argument it validates journeys/ and lists each journey with its version."""
        monkeypatch.chdir(REPO)
        result = runner.invoke(app, ["validate"])
        assert result.exit_code == 0, result.output
        for path in EXAMPLES:
            assert f"ok  journeys/{path.name}  {compile_file(path).journey}" in result.output

    def test_missing_path(self) -> None:
        """A path that does not exist is a usage error, not a journey problem."""
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", "validate", "no/such/file.yaml"],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert result.returncode == 2
        assert result.stderr == "journey: no such file or folder: no/such/file.yaml\n"

    def test_unknown_option(self) -> None:
        """An unknown option exits 2."""
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", "validate", "--frobnicate"], capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 2
        assert "No such option" in result.stderr

    def test_duplicate_journey_ids(self, tmp_path: Path) -> None:
        """Two files claiming one journey id in a folder: the second is reported."""
        source = (REPO / "journeys" / "re_engagement.yaml").read_text()
        shutil.copytree(REPO / "journeys" / "emails", tmp_path / "emails")
        (tmp_path / "services.yaml").symlink_to(REPO / "journeys" / "services.yaml")
        (tmp_path / "a.yaml").write_text(source)
        (tmp_path / "b.yaml").write_text(source)
        result = catalog.validate([tmp_path])
        assert [issue.render() for issue in result.issues] == [
            f"{tmp_path / 'b.yaml'}:1:1: journey id 're-engagement' is already used by {tmp_path / 'a.yaml'}"
        ]


class TestGraph:
    """`journey graph` draws every node and every branch."""

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_mermaid(self, path: Path) -> None:
        """Every node appears once as a box and every edge with its branch name."""
        plan = compile_file(path)
        result = runner.invoke(app, ["graph", str(path), "--format", "mermaid"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == "flowchart TD"
        for node_id in plan.nodes:
            assert (
                sum(
                    line.startswith(f"  n_{node_id.replace('-', '_')}[")
                    or line.startswith(f"  n_{node_id.replace('-', '_')}{{")
                    or line.startswith(f"  n_{node_id.replace('-', '_')}([")
                    for line in lines
                )
                == 1
            )
        edge_lines = [line for line in lines if "-->|" in line]
        assert len(edge_lines) == sum(len(edges) for edges in plan.edges.values())

    @pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
    def test_dot(self, path: Path) -> None:
        """DOT output names every node and edge with its label."""
        plan = compile_file(path)
        result = runner.invoke(app, ["graph", str(path), "--format", "dot"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f'digraph "{plan.journey}" {{')
        for node_id, edges in plan.edges.items():
            assert f'  "{node_id}" [label=' in result.output
            for edge in edges:
                assert f'  "{node_id}" -> "{edge.target}" [label=' in result.output

    def test_broken_file(self) -> None:
        """A broken journey is not drawn; its problems are printed and the exit code is 1."""
        broken = sorted((REPO / "tests" / "broken").glob("*.yaml"))
        journey = next(path for path in broken if path.name not in ("buying_groups.yaml", "services.yaml"))
        result = runner.invoke(app, ["graph", str(journey)])
        assert result.exit_code == 1


class TestSchema:
    """`journey schema` gives editors a JSON Schema covering the whole language."""

    def test_journey_schema(self) -> None:
        """Every node type (and people_split's step types) is in the schema and unknown keys are disallowed."""
        result = runner.invoke(app, ["schema"])
        assert result.exit_code == 0
        schema = json.loads(result.output)
        assert schema["additionalProperties"] is False
        types = {
            definition["properties"]["type"]["const"]
            for definition in schema["$defs"].values()
            if "type" in definition.get("properties", {}) and "const" in definition["properties"]["type"]
        }
        assert types == set(NODE_MODELS) | set(PERSON_STEP_TYPES)

    @pytest.mark.parametrize("kind", ["buying-groups", "services"])
    def test_other_schemas(self, kind: str) -> None:
        """The buying-groups and services files have schemas too."""
        result = runner.invoke(app, ["schema", kind])
        assert result.exit_code == 0
        assert json.loads(result.output)["additionalProperties"] is False


class TestDatabase:
    """`journey db init` is safe to run again."""

    def test_init_twice(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Both runs succeed and name the database they prepared."""
        monkeypatch.delenv("JOURNEY_DATABASE_URL", raising=False)
        monkeypatch.setenv("JOURNEY_HOME", str(tmp_path))
        for _ in range(2):
            result = runner.invoke(app, ["db", "init"])
            assert result.exit_code == 0, result.output
            assert result.output == f"database ready: sqlite:///{tmp_path / 'journey.db'}\n"


# Run the command in a fresh interpreter and print which of the heavy libraries it loaded.
LOADED = """
import sys
from engine.cli.app import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
heavy = ("temporalio.client", "sqlalchemy", "sqlmodel", "fastapi", "plotly", "httpx", "engine.db", "asyncio")
print(",".join(name for name in heavy if name in sys.modules), file=sys.stderr)
"""


class TestStartUp:
    """`journey --help` and `journey validate` load neither Temporal's client, the database, FastAPI nor plotly."""

    @pytest.mark.parametrize(
        "args",
        [["--help"], ["validate", "journeys/ai_seed_abm.yaml"], ["analytics", "--help"], ["graph", "--help"]],
        ids=["help", "validate", "analytics-help", "graph-help"],
    )
    def test_nothing_heavy_is_loaded(self, args: list[str]) -> None:
        result = subprocess.run(
            [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, cwd=REPO, timeout=60
        )
        assert result.stderr.splitlines()[-1] == "", result.stderr

    def test_a_command_that_needs_the_database_loads_it(self, tmp_path: Path) -> None:
        """The check above can fail: `journey db init` does load the database layer."""
        env = {"JOURNEY_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
        result = subprocess.run(
            [sys.executable, "-c", LOADED, "db", "init"], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
        )
        assert "sqlalchemy" in result.stderr.splitlines()[-1].split(","), result.stderr
