"""Parsing ``Prefer: wait=N`` (korder.api.waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from korder.api.waiting import Waits, applied, requested_wait, until_settled
from korder.domain.actions import Action
from korder.domain.order import Order
from korder.kube import orders
from tests.support.orders import resource


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("respond-async", None),
        ("wait=5", 5),
        ("WAIT = 7", 7),
        ('wait="3"', 3),
        ("respond-async, wait=10", 10),
        ("wait=2; foo=bar", 2),
        ("wait=9999", 60),
        ("wait=-1", None),
        ("wait=abc", None),
        ("handling=lenient", None),
    ],
)
def test_requested_wait(header: str | None, seconds: int | None) -> None:
    assert requested_wait(header, ceiling=60) == seconds


def test_applied_header() -> None:
    assert applied(4) == {"Preference-Applied": "wait=4"}


async def test_a_lost_watch_ends_the_wait_with_the_order_as_last_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pending = resource(status={"phase": "Pending"})
    reserving = resource(status={"phase": "ReservingInventory"}, resource_version="2")

    async def watch(*_: object) -> AsyncIterator[Order]:
        yield reserving
        raise orders.Unavailable("the API server went away")

    monkeypatch.setattr(orders, "watch", watch)
    registry = CollectorRegistry()
    got = await until_settled(None, pending, Action.CREATE, 5, Waits(registry))  # type: ignore[arg-type]
    assert got == reserving
    assert waits_counted(registry, "lost") == 1


async def test_a_settled_order_is_not_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    def watch(*_: object) -> None:
        raise AssertionError("no watch for an order that is settled already")

    monkeypatch.setattr(orders, "watch", watch)
    confirmed = resource(status={"phase": "Confirmed"})
    registry = CollectorRegistry()
    waits = Waits(registry)
    assert await until_settled(None, confirmed, Action.CREATE, 5, waits) == confirmed  # type: ignore[arg-type]
    assert waits_counted(registry, "settled") == 1


async def test_a_wait_that_runs_out_is_counted_as_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def watch(*_: object) -> AsyncIterator[Order]:
        yield resource(status={"phase": "ReservingInventory"}, resource_version="2")

    monkeypatch.setattr(orders, "watch", watch)
    registry = CollectorRegistry()
    pending = resource(status={"phase": "Pending"})
    await until_settled(None, pending, Action.CREATE, 1, Waits(registry))  # type: ignore[arg-type]
    assert waits_counted(registry, "timeout") == 1


def waits_counted(registry: CollectorRegistry, outcome: str) -> float | None:
    labels = {"action": str(Action.CREATE), "outcome": outcome}
    return registry.get_sample_value("korder_api_wait_duration_seconds_count", labels)
