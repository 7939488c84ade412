"""The web console without a browser or a cluster: its views, templates, streams and routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from korder.api.console import acting, rendering, streams, views
from korder.api.history import OrderEvent
from korder.api.main import create_app
from korder.domain.actions import Action
from korder.domain.order import Order, Phase
from tests.support.orders import resource, spec

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _order(
    name: str,
    phase: Phase | None,
    *,
    customer: str = "cust-1",
    total: str | None = "44.98",
    history: list[dict[str, Any]] | None = None,
    created: datetime | None = None,
    **changes: Any,
) -> Order:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if total:
        status["total"] = total
    if history:
        status["history"] = history
    body = spec(customer={"id": customer, "name": f"Name of {customer}"}, **changes)
    return resource(body, status=status, name=name, created=created or NOW)


def _confirmed_history(started: float, confirmed: float) -> list[dict[str, Any]]:
    return [
        {"type": "SagaStarted", "time": _at(started), "phase": "ReservingInventory"},
        {"type": "OrderConfirmed", "time": _at(confirmed), "phase": "Confirmed"},
    ]


def test_totals_list_every_phase_with_counts_and_money_per_currency() -> None:
    board = views.Board.of(
        [
            _order("a", Phase.CONFIRMED, total="10.00"),
            _order("b", Phase.CONFIRMED, total="0.05"),
            _order("c", Phase.CONFIRMED, total="7.00", currency="EUR"),
            _order("d", None, total=None),
        ]
    )
    totals = {t.phase: t for t in views.totals(board.rows.values())}
    assert list(totals) == list(views.PHASES)
    assert set(views.PHASES) == set(Phase)
    assert totals[Phase.CONFIRMED].count == 3
    assert totals[Phase.CONFIRMED].amounts == (("EUR", "7.00"), ("USD", "10.05"))
    assert totals[Phase.PENDING].count == 1
    assert totals[Phase.PENDING].amounts == ()
    assert totals[Phase.FAILED].count == 0


def test_a_page_is_filtered_newest_first_and_cut_to_its_size() -> None:
    orders = [
        _order(f"o-{n}", Phase.CONFIRMED, created=NOW - timedelta(minutes=n)) for n in range(5)
    ]
    orders.append(_order("other", Phase.FAILED, customer="cust-9"))
    board = views.Board.of(orders)

    first = board.page(views.Filters(customer="cust-1"), size=2, now=NOW)
    assert [r.name for r in first.rows] == ["o-0", "o-1"]
    assert (first.matching, first.pages) == (5, 3)
    assert sum(t.count for t in first.totals) == 5, "totals are the customer's only"

    last = board.page(views.Filters(customer="cust-1", page=9), size=2, now=NOW)
    assert [r.name for r in last.rows] == ["o-4"]
    assert last.filters.page == 3

    failed = board.page(views.Filters(phase=Phase.FAILED), size=2, now=NOW)
    assert [r.name for r in failed.rows] == ["other"]
    assert sum(t.count for t in failed.totals) == 6, "a phase filter keeps every phase's total"


def test_a_watch_keeps_the_board_current() -> None:
    board = views.Board.of([_order("a", Phase.PENDING)])
    board.apply("MODIFIED", _order("a", Phase.CONFIRMED))
    board.apply("ADDED", _order("b", None))
    assert {n: r.phase for n, r in board.rows.items()} == {
        "a": Phase.CONFIRMED,
        "b": Phase.PENDING,
    }
    board.apply("DELETED", _order("a", Phase.CONFIRMED))
    assert list(board.rows) == ["b"]


def test_filters_make_links_without_empty_fields() -> None:
    assert views.Filters().query() == ""
    filters = views.Filters(phase=Phase.FAILED, customer="cust-1", page=2)
    assert filters.query() == "?phase=Failed&customer=cust-1&page=2"
    assert filters.query(page=1, phase=None) == "?customer=cust-1"


def test_the_pace_counts_recent_sagas_and_their_latency() -> None:
    rows = [
        views.Row.of(_order(f"c-{n}", Phase.CONFIRMED, history=_confirmed_history(60, 60 - n)))
        for n in (1, 2, 3, 4)
    ]
    old = _confirmed_history(3600, 3590)
    rows.append(views.Row.of(_order("old", Phase.CONFIRMED, history=old)))
    failed = [{"type": "OrderFailed", "time": _at(5), "phase": "Failed"}]
    rows.append(views.Row.of(_order("f", Phase.FAILED, history=failed)))

    pace = views.pace(rows, NOW)
    assert (pace.confirmed, pace.failed, pace.minutes) == (4, 1, 10)
    assert pace.per_minute == "0.4"
    assert (pace.p50_seconds, pace.p95_seconds) == (2.0, 4.0)
    assert views.pace([], NOW).p50_seconds is None


def test_the_timeline_marks_steps_compensations_and_warnings() -> None:
    events = [
        OrderEvent(type="SagaStarted", time=_at(10), source="history"),
        OrderEvent(type="InventoryReserved", time=_at(9), source="history"),
        OrderEvent(type="PaymentDeclined", time=_at(7), source="history"),
        OrderEvent(type="InventoryReleased", time=_at(7), source="history"),
        OrderEvent(type="OrderFailed", time=_at(6), source="event", severity="Warning"),
    ]
    moments = views.timeline(events)
    assert [m.step for m in moments] == [
        None,
        "reserve-inventory",
        "capture-payment",
        "release-inventory",
        None,
    ]
    assert [m.seconds for m in moments] == [None, 1.0, 2.0, 0.0, 1.0]
    assert [m.compensation for m in moments] == [False, False, False, True, False]
    assert [m.warning for m in moments] == [False, False, True, False, True]
    assert moments[0].title == "Saga started"
    assert views.total_seconds(moments) == 4.0


def test_an_order_shows_its_line_totals_and_steps() -> None:
    order = _order("a", Phase.CONFIRMED)
    assert [(line.quantity, line.total) for line in views.lines(order)] == [
        (2, "39.98"),
        (1, "5.00"),
    ]
    states = views.step_states(order)
    assert [s.name for s in states] == ["reserve-inventory", "capture-payment", "ship"]
    assert all(s.reason == "NotStarted" for s in states)
    assert views.actions(order) == [Action.PROCESS, Action.CANCEL]


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "\N{EN DASH}"), (0.4, "0.4 s"), (3.0, "3 s"), (12.4, "12 s"), (185, "3 min 5 s")],
)
def test_durations_read_as_a_person_says_them(value: float | None, text: str) -> None:
    assert rendering.seconds(value) == text


def test_the_board_renders_escaped_with_a_link_per_order() -> None:
    board = views.Board.of([_order("a-1", Phase.CONFIRMED, notes="x")])
    page = board.page(views.Filters(), size=50, now=NOW)
    html = rendering.render("_board.html", {"page": page, "base": "/console"})
    assert 'href="/console/orders/a-1"' in html
    assert 'href="/console?phase=Failed"' in html
    assert 'data-breakers="unknown"' in html

    known = replace(page, breakers={"payment": "open", "inventory": "closed"})
    html = rendering.render("_board.html", {"page": known, "base": "/console"})
    assert 'data-breakers="unknown"' not in html
    assert (
        '<li class="breaker breaker-open"><span>payment</span> <strong>open</strong></li>' in html
    )

    hostile = _order("a-2", Phase.CONFIRMED, customer="cust-2")
    hostile.spec.customer.name = "<script>alert(1)</script>"
    page = views.Board.of([hostile]).page(views.Filters(), size=50, now=NOW)
    html = rendering.render("_board.html", {"page": page, "base": "/console"})
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_an_event_carries_each_line_of_html_as_data() -> None:
    assert streams.event("fragment", "<p>\n  a\n</p>") == (
        "event: fragment\ndata: <p>\ndata:   a\ndata: </p>\n\n"
    )
    assert streams.event("fragment", "") == "event: fragment\ndata: \n\n"


async def test_a_stream_renders_once_then_once_per_burst_and_ends_with_the_watch() -> None:
    seen: list[str] = []

    async def changes() -> AsyncIterator[tuple[str, Order]]:
        for name in ("a", "b", "c"):
            yield "ADDED", _order(name, None)
        await asyncio.sleep(streams.COALESCE_SECONDS * 4)
        yield "ADDED", _order("d", None)

    def apply(kind: str, order: Order) -> None:
        seen.append(order.metadata.name)

    async def render() -> str:
        return ",".join(seen)

    chunks = [c async for c in streams._stream(changes(), apply, render)]
    assert chunks[0].startswith("retry: ")
    fragments = [c for c in chunks if c.startswith("event: fragment")]
    assert fragments == [
        streams.event("fragment", ""),
        streams.event("fragment", "a,b,c"),
        streams.event("fragment", "a,b,c,d"),
    ]


def test_each_button_finds_its_rest_route_by_operation_id() -> None:
    app = create_app()
    assert acting.route_of(app, Action.PROCESS) == acting.Route(
        "POST", "/orders/{order_id}/process"
    )
    assert acting.route_of(app, Action.FULFILL) == acting.Route(
        "POST", "/orders/{order_id}/fulfill"
    )
    assert acting.route_of(app, Action.CANCEL) == acting.Route("DELETE", "/orders/{order_id}")
    assert acting.route_of(FastAPI(), Action.PROCESS) is None, "no REST route, no button"


def test_the_console_is_not_in_the_openapi_document() -> None:
    paths = create_app().openapi()["paths"]
    assert paths
    assert not [p for p in paths if p.startswith("/console")]


def test_an_orders_page_renders_its_failure_timeline_and_no_buttons() -> None:
    history = [
        {"type": "SagaStarted", "time": _at(3), "phase": "ReservingInventory"},
        {"type": "PaymentDeclined", "time": _at(2), "phase": "Compensating", "message": "no"},
        {"type": "InventoryReleased", "time": _at(1), "phase": "Compensating"},
        {"type": "OrderFailed", "time": _at(1), "phase": "Failed", "message": "declined"},
    ]
    order = _order("f-1", Phase.FAILED, history=history)
    order.status.failure_reason = "The card was declined."
    moments = views.timeline([OrderEvent(source="history", **h) for h in history])
    html = rendering.render(
        "_order.html",
        {
            "base": "/console",
            "order": order,
            "phase": Phase.FAILED,
            "lines": views.lines(order),
            "steps": views.step_states(order),
            "moments": moments,
            "events": [],
            "saga_seconds": views.total_seconds(moments),
            "actions": views.actions(order),
            "key": "console-1",
        },
    )
    assert "The card was declined." in html
    assert 'class="moment compensation" data-kind="InventoryReleased"' in html
    assert 'class="moment warning" data-kind="PaymentDeclined"' in html
    assert "data-no-actions" in html
    assert "<form" not in html
