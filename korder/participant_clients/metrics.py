"""Prometheus metrics of the participant clients, served by the operator's /metrics.

The breakers' state (0 closed, 1 half-open, 2 open) and transitions, and the
calls by outcome. Registered in the default registry of the process that imports
this module, which is the operator (the only user of these clients).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

from korder.participant_clients import circuitbreaker

STATE_VALUES: Final = {
    circuitbreaker.State.CLOSED: 0,
    circuitbreaker.State.HALF_OPEN: 1,
    circuitbreaker.State.OPEN: 2,
}

BREAKER_STATE = Gauge(
    "korder_circuit_breaker_state",
    "State of a participant's circuit breaker: 0 closed, 1 half-open, 2 open.",
    ["participant"],
)
BREAKER_TRANSITIONS = Counter(
    "korder_circuit_breaker_transitions",
    "Transitions of a participant's circuit breaker, by the state entered.",
    ["participant", "state"],
)
CALLS = Counter(
    "korder_participant_calls",
    "HTTP attempts at a participant, by outcome: success, refused, failure, rejected_by_breaker.",
    ["participant", "outcome"],
)


def breaker_moved(name: str, before: circuitbreaker.State, after: circuitbreaker.State) -> None:
    """The breakers' listener: keep the gauge and the counter current."""
    BREAKER_STATE.labels(name).set(STATE_VALUES[after])
    BREAKER_TRANSITIONS.labels(name, after.value).inc()


def register(name: str) -> None:
    """Show a new breaker as closed before its first transition."""
    BREAKER_STATE.labels(name).set(STATE_VALUES[circuitbreaker.State.CLOSED])
