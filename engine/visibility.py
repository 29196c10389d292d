"""The search attributes every journey workflow keeps current, so an operator can find stuck accounts
with a visibility query (`JourneyNode = "wait_demo" AND ExecutionStatus = "Running"`) in the Temporal UI
or with `journey stuck`, without listing every workflow.

Temporal refuses to write an attribute the namespace does not define: `register()` defines them (the dev
server and the tests), `journey setup search-attributes` does it for a real cluster, and `create_commands()`
prints the `temporal operator` lines for those who prefer the CLI (Temporal Cloud: `tcld` or its UI).
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

JOURNEY_ID = SearchAttributeKey.for_keyword("JourneyId")
JOURNEY_VERSION = SearchAttributeKey.for_keyword("JourneyVersion")
ACCOUNT_ID = SearchAttributeKey.for_keyword("AccountId")
ACCOUNT_NAME = SearchAttributeKey.for_keyword("AccountName")
NODE = SearchAttributeKey.for_keyword("JourneyNode")
NODE_TYPE = SearchAttributeKey.for_keyword("JourneyNodeType")
WAITING_FOR = SearchAttributeKey.for_keyword("JourneyWaitingFor")
NODE_SINCE = SearchAttributeKey.for_datetime("JourneyNodeSince")
COMPLETENESS = SearchAttributeKey.for_float("BuyingGroupCompleteness")

KEYS = (JOURNEY_ID, JOURNEY_VERSION, ACCOUNT_ID, ACCOUNT_NAME, NODE, NODE_TYPE, WAITING_FOR, NODE_SINCE, COMPLETENESS)
_CLI_TYPES = {"KEYWORD": "Keyword", "DATETIME": "Datetime", "DOUBLE": "Double"}

# What `JourneyWaitingFor` says, besides "event <type>" for a wait_for_event node.
TIMER, SEND_WINDOW, COMPLETENESS_CHECK, PAUSED, WORKING = "timer", "send window", "completeness", "paused", "activity"


def type_name(key: SearchAttributeKey[Any]) -> str:
    """Temporal's name for the key's type, as `temporal operator search-attribute create --type` takes it."""
    return _CLI_TYPES[key.indexed_value_type.name]


def dev_server_flags() -> list[str]:
    """`--search-attribute NAME=TYPE` flags that define them when the dev server starts."""
    return [flag for key in KEYS for flag in ("--search-attribute", f"{key.name}={type_name(key)}")]


def create_commands(namespace: str = "default") -> list[str]:
    return [
        f"temporal operator search-attribute create --namespace {namespace} --name {key.name} --type {type_name(key)}"
        for key in KEYS
    ]


async def register(client: Client) -> list[str]:
    """Define the attributes the namespace lacks; the names defined now (none when all were there)."""
    defined = await _defined(client) or set()
    # The SDK's enum and the API's share their numbers.
    absent = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in KEYS if key.name not in defined}
    if absent:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=absent)
        )
    return sorted(absent)


async def missing(client: Client) -> list[str]:
    """The attributes the namespace does not define yet (none known missing where they can't be listed)."""
    defined = await _defined(client)
    return [] if defined is None else [key.name for key in KEYS if key.name not in defined]


async def _defined(client: Client) -> set[str] | None:
    """The namespace's search attribute names; None where they cannot be listed: the time-skipping test
    server (it can add them, not list them), or a Temporal Cloud API key without operator rights."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as error:
        if error.status in (RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.PERMISSION_DENIED):
            return None
        raise
    return set(existing.custom_attributes) | set(existing.system_attributes)
