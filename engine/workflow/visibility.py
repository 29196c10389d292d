"""The search attributes every journey workflow keeps current, so an operator can find stuck accounts
with a visibility query (`JourneyNode = "wait_demo" AND ExecutionStatus = "Running"`) in the Temporal UI
or with `journey stuck`, without listing every workflow.

Temporal refuses to write an attribute the namespace does not define: engine/runtime/search_attributes.py
defines them (the dev server, the tests and `journey setup search-attributes` for a real cluster), and
`create_commands()` prints the `temporal operator` lines for those who prefer the CLI (Temporal Cloud:
`tcld` or its UI).
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

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
QUIET_HOURS = "quiet hours"  # limits.yaml: an email held until they end


def quoted(value: str) -> str:
    """`value` as a string in a visibility query (`JourneyNode = "wait_demo"`), quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
