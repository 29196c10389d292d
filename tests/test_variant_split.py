"""`variant_split`, the A/B(/n) test: a fair, deterministic, sticky assignment; the compiler's checks; every
path run on Temporal's time-skipping server (the holdout included); the variant in the event log, and the
nodes and canvas reports broken down by it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from support import add_account, add_person, serving, start, steps, write_journey
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from engine.analytics.canvas import canvas
from engine.analytics.choices import Container
from engine.analytics.containers import Filters
from engine.analytics.errors import AnalyticsError
from engine.analytics.nodes import node_counts
from engine.analytics.selectors import parse_selector
from engine.analytics.web import analytics_engine, router
from engine.cli import app
from engine.db import ActivityEvent, JourneyVersion
from engine.language import render, variants
from engine.language.compiler import compile_file
from engine.language.errors import JourneyInvalidError
from engine.language.model import JourneyFile, VariantSplit
from engine.language.plan import Plan
from engine.workflow import details
from engine.workflow.contracts import JourneyResult

REPO = Path(__file__).resolve().parent.parent
IDS = [f"account-{number:05d}" for number in range(10_000)]
# Chi-square critical values at p = 0.001 (degrees of freedom -> value), from the chi-square table. The ids are
# fixed, so each statistic below is one fixed number: the test is deterministic, and a failure means the
# assignment is skewed, not unlucky.
CRITICAL_P001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 99: 148.230}

THREE_WAY = """
- id: test
  type: variant_split
  salt: "{salt}"
  variants:
    - {{name: A, percent: 40, next: email_a}}
    - {{name: B, percent: 40, next: email_b}}
    - {{name: control, percent: 20, holdout: true, next: pause}}
- id: email_a
  type: send_email
  to: all
  subject: "{subject}"
  template: emails/a.html.j2
  next: converted
- id: email_b
  type: send_email
  to: all
  subject: "B for {{{{ account.name }}}}"
  template: emails/b.html.j2
  next: converted
- id: pause
  type: wait
  duration: {pause}
  next: converted
- id: converted
  type: end
"""
TEMPLATES = {"emails/a.html.j2": "<p>A, {{ person.first_name }}</p>\n", "emails/b.html.j2": "<p>B</p>\n"}


def three_way(folder: Path, salt: str = "s1", subject: str = "A for {{ account.name }}", pause: str = "1d") -> Plan:
    body = THREE_WAY.format(salt=salt, subject=subject, pause=pause)
    return write_journey(folder, body, "test", journey="ab-journey", templates=TEMPLATES)


def chi_square(observed: Counter[int], percents: list[int]) -> float:
    total = sum(observed.values())
    expected = [total * percent / 100 for percent in percents]
    return sum((observed[index] - share) ** 2 / share for index, share in enumerate(expected))


def drawn(percents: list[int], split: str = "issue_test", salt: str = "2026-q1") -> Counter[int]:
    return Counter(variants.assign("newsletter-ab-test", account, split, salt, percents) for account in IDS)


def first_account_per_variant(plan: Plan, split: str = "test") -> dict[str, str]:
    """One account id for each variant of the split, found by the assignment itself."""
    node = plan.nodes[split]
    assert isinstance(node, VariantSplit)
    percents = [variant.percent for variant in node.variants]
    found: dict[str, str] = {}
    for account in IDS:
        name = node.variants[variants.assign(plan.journey, account, split, node.salt, percents)].name
        found.setdefault(name, account)
        if len(found) == len(node.variants):
            return found
    raise AssertionError(f"not every variant drawn: {found}")


class TestFairness:
    """Over 10,000 fixed ids the assignment matches the percents (chi-square goodness of fit, p = 0.001)."""

    @pytest.mark.parametrize(
        "percents",
        [[50, 50], [60, 30, 10], [45, 45, 10], [20, 20, 20, 20, 20]],
        ids=["50-50", "60-30-10", "45-45-10-holdout", "5-way"],
    )
    def test_shares_match_the_percents(self, percents: list[int]) -> None:
        """The statistic stays below the critical value for len(percents) - 1 degrees of freedom."""
        observed = drawn(percents)
        assert set(observed) == set(range(len(percents)))
        assert chi_square(observed, percents) < CRITICAL_P001[len(percents) - 1]

    def test_buckets_are_uniform(self) -> None:
        """All 100 buckets are used about equally: no percent is favoured, whatever the split."""
        observed = Counter(variants.bucket("newsletter-ab-test", account, "issue_test", "2026-q1") for account in IDS)
        assert set(observed) == set(range(100))
        assert chi_square(observed, [1] * 100) < CRITICAL_P001[99]

    def test_two_splits_are_independent(self) -> None:
        """Two splits of one journey draw independently: A at one says nothing about A at the other."""
        first = [variants.assign("j", account, "first", "", [50, 50]) for account in IDS]
        second = [variants.assign("j", account, "second", "", [50, 50]) for account in IDS]
        pairs = Counter(zip(first, second, strict=True))
        cells = Counter({index: pairs[pair] for index, pair in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)])})
        assert chi_square(cells, [25] * 4) < CRITICAL_P001[3]


class TestAssignment:
    """The hash and the buckets, as pure functions."""

    def test_sha256_of_the_four_parts(self) -> None:
        """The bucket is the first 8 bytes of sha256('journey|account|split|salt'), modulo 100."""
        import hashlib

        digest = hashlib.sha256(b"newsletter-ab-test|acme-corp|issue_test|2026-q1").digest()
        assert variants.bucket("newsletter-ab-test", "acme-corp", "issue_test", "2026-q1") == (
            int.from_bytes(digest[:8], "big") % 100
        )

    def test_variants_take_buckets_in_order(self) -> None:
        """With 45/45/10: buckets 0-44 are the first variant, 45-89 the second, 90-99 the third."""
        chosen = [variants.choose([45, 45, 10], bucket) for bucket in (0, 44, 45, 89, 90, 99)]
        assert chosen == [0, 0, 1, 1, 2, 2]

    def test_salt_draws_anew(self) -> None:
        """Another salt moves about half the accounts of a 50/50 split."""
        before = [variants.assign("j", account, "s", "one", [50, 50]) for account in IDS[:2000]]
        after = [variants.assign("j", account, "s", "two", [50, 50]) for account in IDS[:2000]]
        moved = sum(a != b for a, b in zip(before, after, strict=True))
        assert 800 < moved < 1200

    def test_branch_names_the_variant(self) -> None:
        """A branch label gives back its variant's name; other branches name none."""
        assert variants.branch_label("A", 50, False) == "variant A (50%)"
        assert variants.branch_label("control", 10, True) == "holdout control (10%)"
        assert variants.variant_of("holdout control (10%)") == "control"
        assert [variants.variant_of(branch) for branch in ("next", "otherwise", None)] == [None, None, None]


class TestLanguage:
    """The example journey, the edges, the schema, the drawings and what operators see."""

    def test_example_journey(self) -> None:
        """journeys/newsletter_ab_test.yaml compiles with one labelled edge per variant."""
        plan = compile_file(REPO / "journeys" / "newsletter_ab_test.yaml")
        assert [(edge.label, edge.target) for edge in plan.edges["issue_test"]] == [
            ("variant A (45%)", "story_issue"),
            ("variant B (45%)", "data_issue"),
            ("holdout control (10%)", "wait_trials_visit"),
        ]

    def test_republished_version_keeps_variants(self, tmp_path: Path) -> None:
        """Another version of the journey (same split id and salt) draws the same variant for every account."""
        first = three_way(tmp_path / "v1")
        second = three_way(tmp_path / "v2", subject="A new subject", pause="2d")
        assert first.version != second.version
        assert first_account_per_variant(first) == first_account_per_variant(second)

    def test_holdout_may_come_back_to_its_split(self, tmp_path: Path) -> None:
        """A holdout's way back into its own split keeps it in the holdout: no email is reachable, so it compiles."""
        plan = write_journey(
            tmp_path,
            """
            - id: test
              type: variant_split
              variants:
                - {name: A, percent: 50, next: email_a}
                - {name: control, percent: 50, holdout: true, next: pause}
            - id: pause
              type: wait
              duration: 7d
              next: test
            - id: email_a
              type: send_email
              to: all
              subject: "A"
              template: emails/a.html.j2
              next: done
            - id: done
              type: end
            """,
            "test",
            templates=TEMPLATES,
        )
        assert [edge.target for edge in plan.edges["test"]] == ["email_a", "pause"]

    def test_holdout_reaching_an_email_is_refused(self, tmp_path: Path) -> None:
        """A holdout whose path joins a variant's before its email is refused, naming the way to the email."""
        with pytest.raises(JourneyInvalidError) as raised:
            write_journey(
                tmp_path,
                """
                - id: test
                  type: variant_split
                  variants:
                    - {name: A, percent: 50, next: email_a}
                    - {name: control, percent: 50, holdout: true, next: email_a}
                - id: email_a
                  type: send_email
                  to: all
                  subject: "A"
                  template: emails/a.html.j2
                  next: done
                - id: done
                  type: end
                """,
                "test",
                templates=TEMPLATES,
            )
        assert [issue.message for issue in raised.value.issues] == [
            "variants[1].next: holdout 'control' leads straight to send_email 'email_a': holdout accounts must get no"
            " email; route the holdout around every send_email"
        ]

    def test_schema(self) -> None:
        """The JSON Schema editors use knows variant_split, its limits and its variants' fields."""
        schema = JourneyFile.model_json_schema(mode="validation")
        split = schema["$defs"]["VariantSplit"]
        assert split["properties"]["variants"]["minItems"] == 2
        assert split["properties"]["variants"]["maxItems"] == 20
        percent = schema["$defs"]["Variant"]["properties"]["percent"]
        assert (percent["type"], percent["minimum"], percent["maximum"]) == ("integer", 1, 100)

    def test_rendering(self) -> None:
        """`journey show` summarises the test; graphs draw it as a decision with the variants on its edges."""
        plan = compile_file(REPO / "journeys" / "newsletter_ab_test.yaml")
        node = plan.nodes["issue_test"]
        assert render.node_summary(node) == "A/B test: A 45%, B 45%, holdout control 10%"
        assert '  n_issue_test{"issue_test<br/>' in render.mermaid(plan)
        assert '  n_issue_test -->|"holdout control (10%)"| n_wait_trials_visit' in render.mermaid(plan)
        assert '"issue_test" -> "story_issue" [label="variant A (45%)"];' in render.dot(plan)

    def test_passed_through(self) -> None:
        """Operators never see an account resting at a split: it has no timer and waits for nothing."""
        node = compile_file(REPO / "journeys" / "newsletter_ab_test.yaml").nodes["issue_test"]
        assert details.rests(node) is False
        assert details.deadline(node, datetime(2026, 1, 1, tzinfo=UTC)) is None


def variant_rows(engine: Engine, account: str) -> list[tuple[str | None, str | None]]:
    """(branch, variant) of the account's node_left rows at the split."""
    with Session(engine) as session:
        rows = session.exec(
            select(ActivityEvent).where(
                ActivityEvent.account_id == account, ActivityEvent.node_id == "test", ActivityEvent.type == "node_left"
            )
        ).all()
        return [(row.payload.get("branch"), row.payload.get("variant")) for row in rows]


def publish(engine: Engine, plan: Plan) -> None:
    """The plan as the latest published version, which the reports draw."""
    with Session(engine) as session:
        session.add(
            JourneyVersion(
                journey_id=plan.journey,
                version=plan.version,
                name=plan.name,
                source=plan.source,
                plan=plan.model_dump(mode="json"),
            )
        )
        session.commit()


class TestWorkflow:
    """Each variant's path on the time-skipping server, the variant logged, sticky across runs and versions."""

    async def test_every_path(self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path) -> None:
        """A and B send their own email; the holdout sends nothing; each leaves by its variant's branch."""
        plan = three_way(tmp_path)
        chosen = first_account_per_variant(plan)
        results: dict[str, JourneyResult] = {}
        for name, account in chosen.items():
            add_account(db, account)
            add_person(db, account, f"ana@{account}.example", first_name="Ana")
            results[name] = await (await start(time_env.client, plan, worker, account)).result()
        assert {name: result.emails_sent for name, result in results.items()} == {"A": 1, "B": 1, "control": 0}
        assert steps(db, chosen["control"]) == [
            ("node_entered", "test", None),
            ("node_left", "test", "holdout control (20%)"),
            ("node_entered", "pause", None),
            ("node_left", "pause", "next"),
            ("node_entered", "converted", None),
            ("node_left", "converted", "end"),
        ]
        assert [step[1] for step in steps(db, chosen["A"])][:4] == ["test", "test", "email_a", "email_a"]
        assert [step[1] for step in steps(db, chosen["B"])][:4] == ["test", "test", "email_b", "email_b"]
        assert {name: variant_rows(db, account) for name, account in chosen.items()} == {
            "A": [("variant A (40%)", "A")],
            "B": [("variant B (40%)", "B")],
            "control": [("holdout control (20%)", "control")],
        }
        outbox = [path.read_text() for path in (tmp_path / "outbox").glob("*.eml")]
        assert len(outbox) == 2
        reached = [any(f"ana@{chosen[name]}.example" in message for message in outbox) for name in chosen]
        assert dict(zip(chosen, reached, strict=True)) == {"A": True, "B": True, "control": False}

    async def test_sticky_across_reentry_and_versions(
        self, time_env: WorkflowEnvironment, worker: str, db: Engine, tmp_path: Path
    ) -> None:
        """The same account entering again, and entering a republished version, takes the same variant each time."""
        first = three_way(tmp_path / "v1")
        republished = three_way(tmp_path / "v2", subject="Another subject", pause="3d")
        assert first.version != republished.version
        accounts = first_account_per_variant(first)
        for account in accounts.values():
            add_account(db, account)
        for plan in (first, first, republished):
            for account in accounts.values():
                await (await start(time_env.client, plan, worker, account)).result()
        for name, account in accounts.items():
            assert {variant for _, variant in variant_rows(db, account)} == {name}
            assert len(variant_rows(db, account)) == 3

    async def test_reports_by_variant(
        self,
        time_env: WorkflowEnvironment,
        worker: str,
        db: Engine,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """nodes and canvas count each variant's accounts apart, also from the command line (`--by variant`)."""
        plan = three_way(tmp_path)
        publish(db, plan)
        node = plan.nodes["test"]
        assert isinstance(node, VariantSplit)
        accounts = IDS[:12]
        expected = Counter(
            node.variants[variants.assign(plan.journey, account, "test", "s1", [40, 40, 20])].name
            for account in accounts
        )
        for account in accounts:
            add_account(db, account)
            await (await start(time_env.client, plan, worker, account)).result()
        report = node_counts(db, plan.journey, Filters(), by_variant=True)
        assert report.split == "test"
        assert [(group.variant, group.holdout, group.accounts) for group in report.variants] == [
            ("A", False, expected["A"]),
            ("B", False, expected["B"]),
            ("control", True, expected["control"]),
        ]
        for group in report.variants:
            counts = {count.node: count.entered for count in group.nodes}
            assert counts["test"] == counts["converted"] == expected[group.variant]
            assert counts["email_a"] == (expected["A"] if group.variant == "A" else 0)
            assert counts["pause"] == (expected["control"] if group.holdout else 0)
        selectors = [
            parse_selector("node_left where event.node == 'test'"),
            parse_selector("node_entered where event.node == 'converted'"),
        ]
        board = canvas(db, selectors, Container.account, Filters(journey=plan.journey), by_variant=True)
        assert [(group.variant, [step.containers for step in group.steps]) for group in board.variants] == [
            (name, [expected[name], expected[name]]) for name in ("A", "B", "control")
        ]
        assert parse_selector("node_left where event.variant == 'B'").where == "event.variant == 'B'"
        monkeypatch.setenv("JOURNEY_DATABASE_URL", db.url.render_as_string(hide_password=False))
        monkeypatch.setenv("COLUMNS", "200")
        printed = CliRunner().invoke(app, ["analytics", "nodes", plan.journey, "--by", "variant", "--json"])
        assert printed.exit_code == 0, printed.output
        assert [group["variant"] for group in json.loads(printed.stdout)["variants"]] == ["A", "B", "control"]
        table = CliRunner().invoke(app, ["analytics", "nodes", plan.journey, "--by", "variant"])
        assert f"Journey {plan.journey} by variant of 'test'" in table.stdout
        mistaken = CliRunner().invoke(app, ["analytics", "nodes", plan.journey, "--split", "test"])
        assert mistaken.exit_code == 2

        # The same breakdowns on the /analytics pages, over real HTTP.
        web = FastAPI()
        web.include_router(router)
        web.dependency_overrides[analytics_engine] = lambda: db
        with serving(web) as url:
            nodes = httpx.get(
                f"{url}/analytics/nodes", params={"journey": plan.journey, "by": "variant", "format": "json"}
            )
            assert nodes.status_code == 200, nodes.text
            assert [group["variant"] for group in nodes.json()["variants"]] == ["A", "B", "control"]
            page = httpx.get(f"{url}/analytics/nodes", params={"journey": plan.journey, "by": "variant"})
            assert page.status_code == 200
            assert 'data-table="variants"' in page.text and "by variant of &#x27;test&#x27;" in page.text
            steps = ["node_left where event.node == 'test'", "node_entered where event.node == 'converted'"]
            board = httpx.get(
                f"{url}/analytics/canvas",
                params={"step": steps, "journey": plan.journey, "by": "variant", "format": "json"},
            )
            assert board.status_code == 200, board.text
            assert [group["variant"] for group in board.json()["variants"]] == ["A", "B", "control"]
            alone = httpx.get(f"{url}/analytics/nodes", params={"journey": plan.journey, "split": "test"})
            assert alone.status_code == 400
            assert "give by=variant too" in alone.json()["detail"]

    def test_breakdown_needs_a_variant_split(self, db: Engine, tmp_path: Path) -> None:
        """A journey without a variant split, or a canvas of people, cannot be broken down by variant."""
        plan = write_journey(tmp_path, "- id: done\n  type: end", "done", journey="plain")
        publish(db, plan)
        with pytest.raises(AnalyticsError, match="has no variant_split node"):
            node_counts(db, "plain", Filters(), by_variant=True)
        with pytest.raises(AnalyticsError, match="counts accounts, not persons"):
            canvas(db, [parse_selector("form_fill")], Container.person, Filters(journey="plain"), by_variant=True)
