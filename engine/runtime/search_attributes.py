"""Defining the journey search attributes (engine/workflow/visibility.py) in a namespace, and finding
which ones it lacks, through the operator service."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.workflow.visibility import KEYS


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
