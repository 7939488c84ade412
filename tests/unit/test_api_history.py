"""Merging status.history with Kubernetes Events (korder.api.history)."""

from __future__ import annotations

from typing import Any

from korder.api.history import merge
from korder.domain.order import Order
from korder.kube import orders
from tests.support.orders import resource


def _entry(kind: str, time: str, message: str) -> dict[str, Any]:
    return {"type": kind, "time": time, "phase": "Pending", "message": message}


def _with(*entries: dict[str, Any]) -> Order:
    return resource(status={"history": list(entries)})


def _event(reason: str, message: str, **times: Any) -> orders.KubeEvent:
    # Through the Kubernetes layer's own reading of an Event, as the route gets them.
    return orders.kube_event({"reason": reason, "message": message, "type": "Normal", **times})


def test_history_first_events_it_lacks_added_mirrors_dropped_oldest_first() -> None:
    order = _with(
        _entry("Accepted", "2026-01-01T10:00:00Z", "Accepted."),
        _entry("Reserved", "2026-01-01T10:00:05Z", "Reserved."),
    )
    events = [
        _event("Reserved", "Reserved.", eventTime="2026-01-01T10:00:05.120000Z"),
        _event("Retrying", "Payment timed out.", firstTimestamp="2026-01-01T10:00:03Z"),
        _event("Retrying", "Payment timed out.", firstTimestamp="2026-01-01T10:00:04Z"),
        _event(
            "Expired",
            "From before history.",
            metadata={"creationTimestamp": "2025-12-31T00:00:00Z"},
        ),
    ]
    merged = merge(order, events)
    assert [(e.type, e.source) for e in merged] == [
        ("Expired", "event"),
        ("Accepted", "history"),
        ("Retrying", "event"),
        ("Reserved", "history"),
    ]


def test_no_status_and_no_events_is_an_empty_log() -> None:
    assert merge(resource(), []) == []


def test_fractions_and_offsets_compare_as_instants() -> None:
    order = _with(_entry("B", "2026-01-01T10:00:05Z", "b"))
    events = [_event("A", "a", eventTime="2026-01-01T11:00:04.9+01:00")]
    assert [e.type for e in merge(order, events)] == ["A", "B"]
