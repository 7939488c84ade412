"""An order's event log for ``GET /orders/{id}/events``: status.history and Events, merged.

Called by the orders route with the order and its Kubernetes Events. The operator
writes each transition twice: into ``status.history`` (durable, bounded) and as a
Kubernetes Event (for ``kubectl describe``; expires after an hour by default).
The merge keeps every history entry, adds the Events that history does not hold
(older entries it dropped, or notes the operator only posted as an Event), and
shows each happening once, oldest first.

An Event is the same happening as a history entry when its reason is the entry's
type and its message the entry's message: that is how the operator posts them.
Kubernetes folds repeats of one Event into one object with a count, so an Event
that matches any history entry is a mirror of it, not a new happening.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from korder.domain.order import CamelModel, Order
from korder.kube.orders import KubeEvent


class OrderEvent(CamelModel):
    """One happening in an order's life."""

    type: str = Field(description="What happened, in CamelCase, such as InventoryReserved.")
    time: str = Field(description="When it happened (RFC 3339).")
    phase: str | None = Field(default=None, description="The order's phase after it happened.")
    message: str = Field(default="", description="A sentence for a person.")
    data: dict[str, str] | None = Field(default=None, description="Details: ids, amounts.")
    source: str = Field(description="Where the entry comes from: history or event.")
    severity: str | None = Field(
        default=None, description="An Event's type: Normal, or Warning for a failure."
    )


def _instant(time: str) -> datetime:
    # Compared as instants, not as text: Events carry microseconds and history may not.
    try:
        parsed = datetime.fromisoformat(time)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def merge(order: Order, events: list[KubeEvent]) -> list[OrderEvent]:
    """The history entries and the Events history does not hold, oldest first, once each."""
    merged = [
        OrderEvent(
            type=entry.type,
            time=entry.time,
            phase=entry.phase,
            message=entry.message,
            data=entry.data,
            source="history",
        )
        for entry in order.status.history or ()
    ]
    seen = {(e.type, e.message) for e in merged}
    for event in events:
        key = (event.reason, event.message)
        if key in seen:
            continue
        seen.add(key)
        merged.append(
            OrderEvent(
                type=event.reason,
                time=event.time,
                message=event.message,
                source="event",
                severity=event.type,
            )
        )
    # A stable sort: entries of the same second keep history's own order.
    return sorted(merged, key=lambda e: _instant(e.time))
