"""What `GET /metrics` shows, in Prometheus' text format: events by outcome, deliveries and their lag.

Each app gets its own registry, so several apps in one process (tests, the bench) never share counts.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

# The `_created` timestamp series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus-client 0.26
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "journey_events",
            "Events received, by outcome: accepted, duplicate, unmatched (stored) or rejected (not stored)",
            ["status"],
            registry=self.registry,
        )
        self.refused = Counter(
            "journey_requests_refused",
            "Requests refused before any event was read, by reason (auth, size, body, token)",
            ["reason"],
            registry=self.registry,
        )
        self.delivered = Counter(
            "journey_events_delivered", "Stored events signalled to their account's journeys", registry=self.registry
        )
        self.delivery_lag = Histogram(
            "journey_event_delivery_lag_seconds",
            "From an event being stored to its delivery to the account's journeys",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.relay_failures = Counter(
            "journey_relay_failures",
            "Relay rounds that could not reach Temporal (it backs off and tries again)",
            registry=self.registry,
        )
        self.parked = Counter(
            "journey_events_parked",
            "Events the relay set aside because they cannot be delivered (see `journey parked`)",
            registry=self.registry,
        )
        self.undelivered = Gauge(
            "journey_events_undelivered", "Stored events waiting for the relay", registry=self.registry
        )

    def watch_undelivered(self, count: Callable[[], float]) -> None:
        """Read the relay's backlog from the database when scraped, not on every event."""
        self.undelivered.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
