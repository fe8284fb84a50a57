"""Prometheus metrics of one gateway, in its own registry (no module-level state).

Request-side metrics are counted as requests happen; store, relay and projection lag are read when
Prometheus scrapes (`/metrics`), so they cost nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from domain.errors import DomainError
from gateway.problems import STATUS_OF_KIND, GatewayError

#: The gateway's own refusals (403, 422…) are labelled as the domain's kinds of the same status.
KIND_OF_STATUS = {status: kind.value for kind, status in STATUS_OF_KIND.items()}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.command_seconds = Histogram(
            "whistleloop_command_seconds",
            "Time to run a command through the domain service and store its events.",
            ["command", "outcome"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.ws_clients = Gauge(
            "whistleloop_ws_clients", "Open WebSocket feeds.", ["feed"], registry=self.registry
        )
        self.ws_dropped = Counter(
            "whistleloop_ws_dropped_total",
            "WebSocket clients dropped for falling behind.",
            ["feed"],
            registry=self.registry,
        )
        self.store_notification = Gauge(
            "whistleloop_store_last_notification_id",
            "The newest event in the event store.",
            registry=self.registry,
        )
        self.relay_lag = Gauge(
            "whistleloop_relay_lag_events",
            "Events stored but not yet on WL_EVENTS.",
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "whistleloop_projection_lag_events",
            "Events stored but not yet applied, per projection.",
            ["projection"],
            registry=self.registry,
        )
        self.projection_halted = Gauge(
            "whistleloop_projection_halted",
            "1 while the projection is halted on a message it cannot apply.",
            ["projection"],
            registry=self.registry,
        )

    @contextmanager
    def timed_command(self, command: str) -> Iterator[None]:
        """Times the block as `command`, labelled `ok` or the error's kind (invalid, conflict…)."""
        started = perf_counter()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except DomainError as error:
            outcome = error.kind.value
            raise
        except GatewayError as error:
            outcome = KIND_OF_STATUS.get(error.status, outcome)
            raise
        finally:
            self.command_seconds.labels(command=command, outcome=outcome).observe(
                perf_counter() - started
            )
