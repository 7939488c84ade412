"""Parsing ``Prefer: wait=N`` (korder.api.waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from korder.api.waiting import applied, requested_wait, until_settled
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
    got = await until_settled(None, pending, Action.CREATE, 5)  # type: ignore[arg-type]
    assert got == reserving


async def test_a_settled_order_is_not_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    def watch(*_: object) -> None:
        raise AssertionError("no watch for an order that is settled already")

    monkeypatch.setattr(orders, "watch", watch)
    confirmed = resource(status={"phase": "Confirmed"})
    assert await until_settled(None, confirmed, Action.CREATE, 5) == confirmed  # type: ignore[arg-type]
