"""The packages' import rules (docs/architecture.md), checked by walking every module's imports with `ast`.

Lazy imports inside functions count: a dependency is a dependency wherever it is written."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What each part may import from the project (docs/architecture.md): the longest matching prefix rules a
# module. Arrows point one way: language <- workflow <- activities <- runtime <- service, analytics, dev <- cli.
PROJECT = ("engine", "activities", "worker")
FOUNDATION = (
    "engine.language",
    "engine.db",
    "engine.context",
    "engine.tracking",
    "engine.buying_groups.scoring",
    "engine.collector",
)
ALLOWED: dict[str, tuple[str, ...]] = {
    "engine.language": ("engine.language", "engine.collector"),
    "engine.collector": (),
    "engine.db": (),
    "engine.logs": (),
    "engine.tracking": (),
    "engine.context": ("engine.language", "engine.db"),
    "engine.buying_groups.scoring": (),
    "engine.workflow": ("engine.language", "engine.workflow"),
    "activities": ("activities", "engine.workflow", *FOUNDATION),
    "engine.buying_groups": ("engine.buying_groups", "engine.workflow.contracts", "activities", *FOUNDATION),
    "engine.runtime": ("engine.runtime", "engine.workflow", "activities", *FOUNDATION),
    "engine.analytics": ("engine.analytics", "engine.runtime.publish", *FOUNDATION),
    "engine.data": ("engine.data", *FOUNDATION),
    "engine.service": (
        "engine.service",
        "engine.data",
        "engine.analytics",
        "engine.runtime",
        "engine.workflow.contracts",
        "engine.logs",
        *FOUNDATION,
    ),
    "engine.dev": (
        "engine.dev",
        "engine.data",
        "engine.service",
        "engine.runtime",
        "engine.buying_groups",
        "engine.workflow",
        "engine.logs",
        "activities",
        *FOUNDATION,
    ),
    "engine.simulate": (
        "engine.simulate",
        "engine.analytics",
        "engine.runtime",
        "engine.workflow.contracts",
        "activities",
        *FOUNDATION,
    ),
    "engine.cli": ("engine", "activities"),
    "engine": (),  # engine/__init__.py
    "worker": ("engine.runtime", "engine.db", "engine.logs", "activities"),
}
# Outside libraries a part must not load: the language runs in `journey validate` and in the workflow
# sandbox, workflows replay deterministically and do no I/O, activities are not a command line.
WEB_AND_DATA = ("sqlmodel", "sqlalchemy", "psycopg", "httpx", "fastapi", "uvicorn", "plotly")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "engine.language": ("temporalio", "typer", "rich", *WEB_AND_DATA),
    "engine.workflow": ("temporalio.client", "temporalio.api", "typer", "rich", *WEB_AND_DATA),
    "engine.buying_groups.scoring": ("temporalio", *WEB_AND_DATA),
    "activities": ("typer", "rich", "fastapi", "uvicorn", "plotly"),
}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = REPO) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            for alias in node.names:
                # `from engine.language import compiler` imports the module engine.language.compiler
                yield node.lineno, f"{base}.{alias.name}" if base in ("engine", *_packages()) else base


def _packages() -> tuple[str, ...]:
    return tuple(module_name(init.parent / "x.py").rsplit(".", 1)[0] for init in REPO.glob("engine/**/__init__.py"))


def rule(module: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    for prefix in sorted(table, key=len, reverse=True):
        # "engine" names engine/__init__.py alone: every other module belongs to a named part
        if module == prefix or (prefix != "engine" and module.startswith(prefix + ".")):
            return table[prefix]
    return None


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def sources() -> list[Path]:
    return sorted([*REPO.glob("engine/**/*.py"), *REPO.glob("activities/**/*.py"), REPO / "worker.py"])


def violations(paths: list[Path], root: Path = REPO) -> list[str]:
    found = []
    for path in paths:
        me = module_name(path, root)
        allowed = rule(me, ALLOWED)
        forbidden = rule(me, FORBIDDEN) or ()
        for line, target in imports(path, root):
            where = f"{path.relative_to(root)}:{line}"
            if within(target, PROJECT) and allowed is not None and not within(target, allowed):
                found.append(f"{where}: {me} may not import {target}")
            if within(target, forbidden):
                found.append(f"{where}: {me} may not load {target}")
        if allowed is None:
            found.append(f"{path.relative_to(root)}: {me} belongs to no package of docs/architecture.md")
    return found


class TestImportRules:
    """Every module imports only what its package may (docs/architecture.md)."""

    def test_the_project_keeps_its_import_rules(self) -> None:
        assert violations(sources()) == []

    def test_a_broken_rule_is_reported(self, tmp_path: Path) -> None:
        """The check can fail: a workflow module reading the database, and a language module loading Temporal."""
        (tmp_path / "engine" / "workflow").mkdir(parents=True)
        (tmp_path / "engine" / "language").mkdir(parents=True)
        rogue = tmp_path / "engine" / "workflow" / "rogue.py"
        rogue.write_text("from engine.db import Account\nimport sqlalchemy\n")
        lazy = tmp_path / "engine" / "language" / "lazy.py"
        lazy.write_text("def f() -> None:\n    from temporalio.client import Client\n")
        assert violations([rogue, lazy], tmp_path) == [
            "engine/workflow/rogue.py:1: engine.workflow.rogue may not import engine.db",
            "engine/workflow/rogue.py:2: engine.workflow.rogue may not load sqlalchemy",
            "engine/language/lazy.py:2: engine.language.lazy may not load temporalio.client",
        ]

    def test_every_module_belongs_to_a_package(self, tmp_path: Path) -> None:
        """A new top-level module must be placed in the rules, not slip past them."""
        (tmp_path / "engine").mkdir()
        stray = tmp_path / "engine" / "stray.py"
        stray.write_text("")
        assert violations([stray], tmp_path) == [
            "engine/stray.py: engine.stray belongs to no package of docs/architecture.md"
        ]
