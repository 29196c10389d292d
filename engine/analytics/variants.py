"""Breakdowns by variant: which variant of a journey's A/B test (a `variant_split` node) each account got.

Read from the split's `node_left` rows, whose payload names the variant (activities/accounts.py). Assignment is
sticky, so an account normally has one variant per split; should the split's salt or percents have changed between
versions, the first variant the account was given counts. Accounts that never passed the split form their own
group, NO_VARIANT, so the groups add up to the whole.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from engine.analytics.containers import EVENT, PAYLOAD
from engine.analytics.errors import AnalyticsError
from engine.db import ActivityEvent
from engine.language.errors import did_you_mean
from engine.language.model import VariantSplit
from engine.runtime.publish import latest_version

NO_VARIANT = "(no variant)"


def split_of(engine: Engine, journey: str | None, split: str | None) -> str:
    """The variant split to break down by: the one named, or the journey's only one."""
    if journey is None:
        raise AnalyticsError("a breakdown by variant needs --journey: an A/B test belongs to one journey")
    plan = latest_version(engine, journey)
    splits = [node_id for node_id, node in plan.nodes.items() if isinstance(node, VariantSplit)] if plan else []
    if split is not None:
        if plan is not None and split not in splits:
            hint = did_you_mean(split, splits)
            known = f" (its variant splits: {', '.join(splits)})" if splits else ""
            raise AnalyticsError(f"journey '{journey}' has no variant_split '{split}'{hint}{known}")
        return split
    if len(splits) == 1:
        return splits[0]
    if not splits:
        raise AnalyticsError(f"journey '{journey}' has no variant_split node to break down by")
    raise AnalyticsError(
        f"journey '{journey}' has {len(splits)} variant splits ({', '.join(splits)}): choose one with --split"
    )


def _first_variants(journey: str, split: str) -> Any:
    """(account_id, variant) of every account that left the split with a variant, its first one."""
    variant = PAYLOAD["variant"].as_string()
    account = EVENT.c.account_id
    first = func.row_number().over(
        partition_by=account, order_by=[col(ActivityEvent.occurred_at), col(ActivityEvent.id)]
    )
    rows = (
        select(account.label("account_id"), variant.label("variant"), first.label("n"))
        .where(
            EVENT.c.journey_id == journey,
            EVENT.c.node_id == split,
            EVENT.c.type == "node_left",
            account.is_not(None),
            variant.is_not(None),
        )
        .subquery("first_variant")
    )
    return rows


def assigned(journey: str, split: str) -> Select[Any]:
    """SELECT account_id, variant: one row per account that got a variant at the split."""
    rows = _first_variants(journey, split)
    return select(rows.c.account_id, rows.c.variant).where(rows.c.n == 1)


def in_variant(account: ColumnElement[Any], journey: str, split: str, variant: str) -> ColumnElement[bool]:
    """A condition: the account got `variant` at the split (NO_VARIANT: it got none)."""
    rows = assigned(journey, split).subquery("assigned")
    if variant == NO_VARIANT:
        return account.not_in(select(rows.c.account_id))
    return account.in_(select(rows.c.account_id).where(rows.c.variant == variant))


def assignments(engine: Engine, journey: str, split: str) -> dict[str, str]:
    """account id -> its variant at the split."""
    with engine.connect() as connection:
        return {account: variant for account, variant in connection.execute(assigned(journey, split))}


def ordered(engine: Engine, journey: str, split: str, found: set[str]) -> list[tuple[str, bool]]:
    """(variant, holdout) in the order the latest version lists them, then variants only older versions had."""
    plan = latest_version(engine, journey)
    node = plan.nodes.get(split) if plan else None
    listed = [(v.name, v.holdout) for v in node.variants] if isinstance(node, VariantSplit) else []
    names = {name for name, _ in listed}
    return [*listed, *((name, False) for name in sorted(found - names))]
