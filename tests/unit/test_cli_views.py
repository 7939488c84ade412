"""What kubectl korder prints, rendered from domain Orders without a cluster."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from korder.cli import views
from korder.domain.order import Phase
from tests.support.orders import resource

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


def render(renderable: Any) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def entry(type_: str, seconds: float, phase: str, message: str = "") -> dict[str, Any]:
    at = NOW - timedelta(minutes=5) + timedelta(seconds=seconds)
    return {
        "type": type_,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "phase": phase,
        "message": message,
    }


DECLINED = [
    entry("OrderAccepted", 0, "Pending"),
    entry("SagaStarted", 0, "ReservingInventory"),
    entry("InventoryReserved", 1, "ProcessingPayment"),
    entry("PaymentDeclined", 3, "Compensating", "declined"),
    entry("InventoryReleased", 4, "Compensating"),
    entry("OrderFailed", 4, "Failed"),
]


def test_the_timeline_says_how_long_each_transition_took_and_marks_the_undo() -> None:
    order = resource(status={"phase": "Failed", "history": DECLINED})
    lines = render(views.timeline(order)).splitlines()
    released = next(line for line in lines if "InventoryReleased" in line)
    declined = next(line for line in lines if "PaymentDeclined" in line)
    assert released.lstrip().startswith("↩")
    assert not declined.lstrip().startswith("↩")
    assert " 2.0s " in declined, "from the reservation to the decline"
    assert views.timeline_summary(order) == "6 events over 4.0s; now Failed"


def test_stalled_orders_say_so_in_the_phase_column() -> None:
    stalled = {
        "type": "Stalled",
        "status": "True",
        "reason": "DeadlineExceeded",
        "message": "capture-payment: deadline",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    order = resource(status={"phase": "ProcessingPayment", "conditions": [stalled]})
    table = render(views.orders_table([order], NOW, namespaces=True))
    assert "ProcessingPayment (Stalled: DeadlineExceeded)" in table
    assert table.split()[:6] == ["NAMESPACE", "NAME", "PHASE", "TOTAL", "CUSTOMER", "AGE"]
    assert "10m" in table


@pytest.mark.parametrize(
    ("seconds", "shown"), [(5, "5s"), (59, "59s"), (60, "1m"), (7200, "2h"), (3 * 86400, "3d")]
)
def test_age_like_kubectl(seconds: int, shown: str) -> None:
    assert views.age(NOW - timedelta(seconds=seconds), NOW) == shown


def test_top_counts_phases_throughput_and_shows_the_breakers() -> None:
    confirmed = [
        entry("OrderConfirmed", 290, "Confirmed"),  # 10 s ago: within the minute
    ]
    old = [entry("OrderConfirmed", 0, "Confirmed")]  # 5 minutes ago
    found = [
        resource(name="a", status={"phase": "Confirmed", "history": confirmed}),
        resource(name="b", status={"phase": "Confirmed", "history": old}),
        resource(name="c", status={"phase": "Failed", "history": DECLINED}),
    ]
    assert views.confirmed_within(found, NOW) == 1
    assert views.by_phase(found)[Phase.CONFIRMED] == 2
    shown = render(views.top_screen(found, {"payment": "open"}, NOW, where="namespace shop"))
    assert "Throughput: 1 confirmed in the last minute" in shown
    assert next(line for line in shown.splitlines() if "payment" in line).split() == [
        "payment",
        "open",
    ]
    unknown = render(views.top_screen(found, "unknown (forbidden)", NOW, where="x"))
    assert "Circuit breakers: unknown (forbidden)" in unknown
