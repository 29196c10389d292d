"""Hostile journey files (issue 13): whatever a file holds, validation reports located problems
(`path:line:col: message`) and exits 1 in bounded time and memory; never a traceback, a crash or a hang.

The bombs run `journey validate` in a child process under a memory limit, so a regression fails the test
instead of taking the test run down with it. Everything else runs in-process through `catalog.validate`
or `compile_file`, as the CLI does; the property tests at the end throw generated text and structures at
the loader and compiler.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.language import catalog, loader
from engine.language.compiler import compile_file
from engine.language.durations import check_cron, parse_duration
from engine.language.errors import Issue, JourneyInvalidError
from engine.language.model import NODE_MODELS
from engine.language.plan import Plan
from engine.language.workspace import Workspace, load_workspace

REPO = Path(__file__).resolve().parent.parent
JOURNEYS = REPO / "journeys"
BASE = (JOURNEYS / "re_engagement.yaml").read_text(encoding="utf-8")
BASE_ACCOUNTS = 'accounts: "account.attributes.last_engaged_days >= 90 and account.employees >= 50"'
LOCATED = re.compile(r"^[^:\n]+:[1-9]\d*:[1-9]\d*: ")
SUMMARY = "1 problem in 1 journey file(s)"
MEMORY_LIMIT = 1 << 30  # the whole `journey validate` process, Python and pydantic included
# Runs the CLI under an address-space limit: a billion laughs must fail here, not exhaust the machine.
LIMITED_CLI = (
    "import resource, runpy, sys;"
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_LIMIT}, {MEMORY_LIMIT}));"
    "sys.argv = ['journey', *sys.argv[1:]];"
    "runpy.run_module('engine.cli', run_name='__main__')"
)


def _workspace_into(folder: Path) -> Path:
    """`folder` with the example journeys' templates, buying groups and services, copied (not linked)."""
    shutil.copytree(JOURNEYS / "emails", folder / "emails")
    for name in ("buying_groups.yaml", "services.yaml"):
        shutil.copy(JOURNEYS / name, folder / name)
    return folder


def _billion_laughs() -> str:
    """Nine levels of nine aliases: 9**10 values once expanded, from a file of a few hundred bytes."""
    lines, previous = ["lol: &a [x, x, x, x, x, x, x, x, x]"], "a"
    for name in "bcdefghij":
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    return "\n".join(lines) + "\n"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A journey folder as the current directory, so problems name `j.yaml` as the CLI would."""
    monkeypatch.chdir(tmp_path)
    return _workspace_into(tmp_path)


def problems(folder: Path, text: str, name: str = "j.yaml") -> list[str]:
    (folder / name).write_text(text, encoding="utf-8")
    return [issue.render() for issue in catalog.validate([Path(name)]).issues]


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LIMITED_CLI, "validate", *args],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )


class TestYamlBombs:
    """Alias bombs and deep nesting are refused at the event that crosses a limit, in a process that stays
    within its memory limit and exits 1 with one located problem."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param(
                BASE + _billion_laughs(),
                "j.yaml:105:12: alias '*e' makes more than 200,000 values: split the file or use fewer aliases",
                id="billion-laughs",
            ),
            pytest.param(
                BASE + "x: " + "[" * 50_000 + "\n",
                "j.yaml:100:53: nested more than 50 levels deep: a journey needs only a few levels",
                id="50000-flow-brackets",
            ),
            pytest.param(
                BASE + "x: " + "[" * 50_000 + "]" * 50_000 + "\n",
                "j.yaml:100:53: nested more than 50 levels deep: a journey needs only a few levels",
                id="50000-closed-brackets",
            ),
            pytest.param(
                BASE + "x:\n" + "- " * 50_000 + "x\n",
                "j.yaml:101:99: nested more than 50 levels deep: a journey needs only a few levels",
                id="50000-block-dashes",
            ),
        ],
    )
    def test_cli_refuses(self, tmp_path: Path, text: str, expected: str) -> None:
        """`journey validate` prints the one problem and the summary, exits 1, within seconds."""
        folder = _workspace_into(tmp_path)
        (folder / "j.yaml").write_text(text, encoding="utf-8")
        started = time.monotonic()
        result = run_cli(folder, "j.yaml")
        assert (result.returncode, result.stdout, result.stderr.splitlines()) == (1, "", [expected, SUMMARY])
        assert time.monotonic() - started < 20

    def test_recursive_alias(self, folder: Path) -> None:
        """An alias inside the value it names would expand forever: refused where it is used."""
        assert problems(folder, BASE + "loop: &a [1, *a]\n") == [
            "j.yaml:100:14: alias '*a' is used inside the value it names: it would never end"
        ]

    def test_recursive_alias_in_buying_groups(self, folder: Path) -> None:
        """The workspace file beside the journey is loaded the same way; the journey itself is still checked."""
        (folder / "buying_groups.yaml").write_text("role_templates: &a\n  - *a\n", encoding="utf-8")
        assert problems(folder, BASE) == [
            "buying_groups.yaml:2:5: alias '*a' is used inside the value it names: it would never end"
        ]

    def test_alias_nesting_counts(self) -> None:
        """Depth is counted with aliases expanded: forty levels named once and used twenty levels down."""
        text = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 20 + "*a" + "]" * 20 + "\n"
        assert loader.load_text(text, "f") == (
            None,
            [Issue("f", 2, 24, "alias '*a' nests values more than 50 levels deep")],
        )

    def test_aliases_within_limits_still_work(self) -> None:
        """A few aliases for shared values keep working: each use is a copy at its own path."""
        document, issues = loader.load_text("a: &shared {x: 1}\nb: *shared\nc: [*shared]\n", "f")
        assert issues == [] and document is not None
        assert document.data == {"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}]}
        assert document.source.value(("c", 0, "x")) == (1, 16)

    def test_file_size_limit(self, folder: Path) -> None:
        """A file over the size limit is not parsed at all; a device that never ends is read only that far."""
        padding = "# " + "x" * 1000 + "\n"
        text = BASE + padding * (loader.MAX_FILE_SIZE // len(padding) + 1)
        assert problems(folder, text) == [
            "j.yaml:1:1: file is too large (over 2,000,000 bytes): split it into smaller journeys"
        ]
        document, issues = loader.load_file(Path("/dev/zero"), "zero")
        assert document is None and [issue.message[:18] for issue in issues] == ["file is too large "]


class TestUnreadableValues:
    """Values YAML can express but a journey cannot hold are located problems, not tracebacks."""

    def test_nul_character_in_file(self, folder: Path) -> None:
        """A raw NUL (or any character YAML does not allow) is reported at its line and column."""
        text = BASE.replace("name: Re-engage", "name: Re\x00engage")
        assert problems(folder, text) == [
            "j.yaml:5:9: invalid yaml: character U+0000 is not allowed in a YAML file: remove it"
        ]

    def test_escaped_nul_in_text(self, folder: Path) -> None:
        """'\\0' in a double-quoted string makes a NUL no database column accepts."""
        text = BASE.replace("name: Re-engage dormant accounts", 'name: "Re\\0engage"')
        assert problems(folder, text) == ["j.yaml:5:7: text contains a NUL character ('\\0'): remove it"]

    @pytest.mark.parametrize(
        ("extra", "expected"),
        [
            ("1: x\n", "j.yaml:100:1: unknown key '1'"),
            ("true: x\n", "j.yaml:100:1: unknown key 'true'"),
            ("'[a]': b\n", "j.yaml:100:1: unknown key '[a]'"),
            ("[a]: b\n", "j.yaml:100:1: a key must be a name, not a list"),
            ("? {a: b}\n: c\n", "j.yaml:100:3: a key must be a name, not a mapping"),
            (
                "base: &b {x: 1}\nmore:\n  <<: *b\n",
                "j.yaml:102:3: merge keys ('<<') are not supported: write the keys out",
            ),
        ],
        ids=["int", "bool", "quoted-brackets", "list", "mapping", "merge"],
    )
    def test_keys(self, folder: Path, extra: str, expected: str) -> None:
        """A key is a name as written; a list or mapping as a key is refused where it stands."""
        assert problems(folder, BASE + extra) == [expected]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                "!!python/object:os.system echo",
                "j.yaml:5:7: tag '!!python/object:os.system' is not allowed: remove it",
            ),
            (
                "!foo bar",
                "j.yaml:5:7: tag '!foo' is not allowed: remove it",
            ),
            (
                "!!set {a: null}",
                "j.yaml:5:7: tag '!!set' is not allowed: remove it",
            ),
            ("!!int twelve", "j.yaml:5:7: 'twelve' cannot be read as a whole number: remove the tag '!!int'"),
            ("2024-13-45", "j.yaml:5:7: '2024-13-45' cannot be read as a date: put it in quotes if it is text"),
        ],
        ids=["python-object", "local-tag", "set", "int-tag-on-text", "impossible-date"],
    )
    def test_tags(self, folder: Path, value: str, expected: str) -> None:
        """Only plain text, numbers, true/false, null, dates, lists and mappings: no tag builds an object."""
        text = BASE.replace("name: Re-engage dormant accounts", f"name: {value}")
        assert problems(folder, text) == [expected]

    def test_huge_integer(self, folder: Path) -> None:
        """A 5,000-digit number is refused before Python spends time (or its digit limit) converting it."""
        text = BASE.replace("add: {reengagement_attempts: 1}", "add: {reengagement_attempts: " + "9" * 5000 + "}")
        assert problems(folder, text) == [
            "j.yaml:31:34: number '99999999999999999999...99999999' (5,000 characters) is too large: whole "
            "numbers go up to 9,223,372,036,854,775,807"
        ]

    def test_integer_bounds(self) -> None:
        """Whole numbers fit in 64 bits; one past the edge is refused."""
        fits = loader.load_text("a: 9223372036854775807\nb: -9223372036854775808\n", "f")[0]
        assert fits is not None and fits.data == {"a": 2**63 - 1, "b": -(2**63)}
        refused = loader.load_text("a: 9223372036854775808\n", "f")
        assert refused[0] is None and [issue.col for issue in refused[1]] == [4]


class TestDurationsAndCron:
    """A duration or cron that validates must also work at run time."""

    def test_duration_beyond_timedelta(self, folder: Path) -> None:
        """99999999999999999999d overflowed timedelta; durations now stop at 10 years."""
        text = BASE.replace("timeout: 10d", "timeout: 99999999999999999999d")
        assert problems(folder, text) == [
            "j.yaml:24:14: node 'wait_click': timeout: invalid duration '99999999999999999999d': at most 10 years "
            "('3650d')"
        ]

    @pytest.mark.parametrize(("text", "days"), [("3650d", 3650), ("520w", 3640), ("00007d", 7)])
    def test_durations_within_the_limit(self, text: str, days: int) -> None:
        """Up to ten years, leading zeros included, is fine."""
        assert parse_duration(text).days == days

    def test_duration_of_many_digits(self) -> None:
        """Thousands of digits are refused without converting them (a message of one short line)."""
        with pytest.raises(ValueError, match=r"^invalid duration '9{20}\.\.\.9{7}d': at most 10 years"):
            parse_duration("9" * 5000 + "d")

    def test_cron_that_never_matches(self, folder: Path) -> None:
        """February 31st validated, then raised at run time; it is refused at validation now."""
        text = BASE.replace('refresh: "0 7 * * 1"', 'refresh: "0 0 31 2 *"')
        assert problems(folder, text) == [
            "j.yaml:8:12: audience.refresh: invalid cron '0 0 31 2 *': it never matches: no month '2' has a day '31'"
        ]

    @pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 2 1", "0 0 31 */2 *", "* 9-17 * * 1-5"])
    def test_rare_crons_still_match(self, cron: str) -> None:
        """Leap days, and a weekday alternative to an impossible day (croniter ORs them), do match."""
        assert check_cron(cron) == cron


class TestBoundedExpressions:
    """Oversized expressions are refused by the expression checker and located in the journey file."""

    @pytest.mark.parametrize(
        "expression",
        ["(" * 2000 + "1" + ")" * 2000, " and ".join(["true"] * 20_000)],
        ids=["2000-parentheses", "20000-and"],
    )
    def test_refused_at_the_expression(self, folder: Path, expression: str) -> None:
        """One problem, at `audience.accounts`."""
        found = problems(folder, BASE.replace(BASE_ACCOUNTS, f'accounts: "{expression}"'))
        assert len(found) == 1
        assert found[0].startswith("j.yaml:7:13: accounts: invalid expression '")
        assert found[0].endswith("': longer than 2,000 characters")

    def test_template_name_too_long(self, folder: Path) -> None:
        """A template name longer than the file system allows is 'not found', not an OSError."""
        name = "emails/" + "a" * 300 + ".html.j2"
        found = problems(folder, BASE.replace("template: emails/reengage_checkin.html.j2", f"template: {name}"))
        assert found == [f"j.yaml:17:15: node 'checkin': template: '{name}' not found"]


# --- properties: generated text and structures through the real entry points ------------------------

JOURNEY_KEYS = ["journey", "name", "description", "audience", "solution_interest", "send_window", "start", "nodes"]
NODE_KEYS = sorted({name for model in NODE_MODELS.values() for name in model.model_fields} - {"id", "type"})
YAML_PIECES = [
    "journey: x\n", "name: n\n", "audience:\n  accounts: account.employees > 1\n", "start: a\n", "nodes:\n",
    "  - id: a\n", "    type: end\n", "    type: wait\n", "    duration: 99999999999999999999d\n",
    "send_window: '0 0 31 2 *'\n", "[", "]", "{", "}", ", ", ": ", "- ", "? ", "&a ", "*a", "!!int ", "!x ",
    "<<: ", "---\n", "'", '"', "\\0", "# c\n", "\n", "  ", "\t", "|\n", ">-\n", "9" * 30, "%YAML 1.2\n",
]  # fmt: skip
HOSTILE_STRINGS = [
    "7d", "0d", "٣d", "after 99999999999999999999d", "99999999999999999999d", "0 0 31 2 *", "* 9-17 * * 1-5",
    "60 * * * *", "account.employees > 1", "(" * 30 + "1" + ")" * 30, "2 ** 99999", "'a' * 99999999",
    "person.email is matching('(a*)*b')", "{{ account.name", "{% for x in y %}", "end", "a", "all", "emails",
    "emails/", "../secrets.j2", "/etc/passwd", "emails/reengage_checkin.html.j2", "crm_task", "ai-seeds",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(HOSTILE_STRINGS),
)
KEYS = st.sampled_from(NODE_KEYS) | st.text(max_size=8)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
NODES = st.lists(
    st.fixed_dictionaries(
        {"id": st.sampled_from(["a", "b", "done"]) | st.text(max_size=8)},
        optional={"type": st.sampled_from([*NODE_MODELS, "nope"]), **{key: VALUES for key in NODE_KEYS}},
    ),
    max_size=4,
)
JOURNEYS_DATA = st.fixed_dictionaries(
    {}, optional={**{key: VALUES for key in JOURNEY_KEYS if key != "nodes"}, "nodes": NODES}
)
PROPERTY = settings(
    max_examples=40,
    deadline=2000,  # milliseconds per example: validation must stay bounded, whatever the input
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Workspace]:
    folder = _workspace_into(tmp_path_factory.mktemp("hostile"))
    return folder, load_workspace(folder)


def _dump(data: Any) -> str:
    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, stream)
    return stream.getvalue()


def compiles_or_locates(path: Path, workspace: Workspace) -> None:
    """The one outcome allowed: a Plan, or JourneyInvalidError whose every problem is located."""
    try:
        plan = compile_file(path, workspace)
    except JourneyInvalidError as error:
        assert error.issues
        for issue in error.issues:
            assert LOCATED.match(issue.render()), issue.render()
            assert issue.message.strip(), issue
    else:
        assert isinstance(plan, Plan)


def _replaced(data: Any, choices: list[int], value: Any) -> Any:
    """`data` with the value at a path chosen by `choices` replaced by `value`."""
    if not choices or not isinstance(data, dict | list) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[choices[0] % len(keys)]
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[key] = _replaced(data[key], choices[1:], value)  # type: ignore[index]
    return copy


class TestProperties:
    """Generated input never gets past validation as anything but a Plan or located problems."""

    @PROPERTY
    @given(text=st.text(max_size=300) | st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join))
    def test_any_text(self, shared: tuple[Path, Workspace], text: str) -> None:
        folder, workspace = shared
        path = folder / "text.yaml"
        path.write_text(text, encoding="utf-8")
        compiles_or_locates(path, workspace)

    @PROPERTY
    @given(data=JOURNEYS_DATA)
    def test_any_structure(self, shared: tuple[Path, Workspace], data: dict[str, Any]) -> None:
        folder, workspace = shared
        path = folder / "structure.yaml"
        path.write_text(_dump(data), encoding="utf-8")
        compiles_or_locates(path, workspace)

    @PROPERTY
    @given(choices=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=5), value=VALUES)
    def test_one_value_replaced(self, shared: tuple[Path, Workspace], choices: list[int], value: Any) -> None:
        """The example journey with one value anywhere in it replaced: reaches the compiler's deeper checks."""
        folder, workspace = shared
        document, _ = loader.load_text(BASE, "base")
        assert document is not None
        path = folder / "replaced.yaml"
        path.write_text(_dump(_replaced(document.data, choices, value)), encoding="utf-8")
        compiles_or_locates(path, workspace)

    @PROPERTY
    @given(
        name=st.sampled_from(["buying_groups.yaml", "services.yaml", "events.yaml"]),
        text=st.text(max_size=200) | st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join),
    )
    def test_any_workspace_file(self, tmp_path_factory: pytest.TempPathFactory, name: str, text: str) -> None:
        """The files beside a journey never raise either; their problems are located too."""
        folder = tmp_path_factory.mktemp("workspace")
        (folder / name).write_text(text, encoding="utf-8")
        for issue in load_workspace(folder).issues:
            assert LOCATED.match(issue.render()), issue.render()
