"""Saga actions as participant calls: request shapes, keys and outcomes, in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest

from korder.domain import saga
from korder.domain.order import Carrier, FulfillmentRequest, OrderSpec, OrderStatus
from korder.operator import performing, reconciling
from korder.participant_clients import calls, circuitbreaker
from korder.participants.app import create_app
from korder.settings import Settings
from tests.e2e.orders import VALID_SPEC, spec

UID = "6f1c-uid"
Action = saga.Action


@pytest.fixture
async def participants() -> AsyncIterator[calls.Participants]:
    app = create_app(Settings(payment_decline_over=Decimal("50.00")))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))

    def participant(name: str) -> calls.Participant:
        breaker = circuitbreaker.CircuitBreaker(name)
        return calls.Participant(
            name, f"http://p/{name}", http, breaker, timeout=5, attempts=1, retry_base=0.01
        )

    yield calls.Participants(
        participant("inventory"), participant("payment"), participant("shipping"), http
    )
    await http.aclose()


def order(status: OrderStatus | None = None, **changes: object) -> saga.Order:
    model = OrderSpec.model_validate(spec(**changes))
    now = datetime.now(UTC)
    return saga.Order(model, status or OrderStatus(total="44.98"), 1, created_at=now)


async def ledger(participants: calls.Participants, service: str) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = (
        await participants.http.get(f"http://p/{service}/ledger")
    ).json()
    return entries


async def test_the_whole_saga_as_calls(participants: calls.Participants) -> None:
    o = order(fulfillment=FulfillmentRequest(carrier=Carrier.OVERNIGHT).model_dump())
    reserved = await performing.perform(participants, Action.RESERVE_INVENTORY, UID, o)
    charged = await performing.perform(participants, Action.CAPTURE_PAYMENT, UID, o)
    shipped = await performing.perform(participants, Action.SHIP, UID, o)
    assert isinstance(reserved.outcome, saga.Succeeded)
    assert isinstance(charged.outcome, saga.Succeeded)
    assert isinstance(shipped.outcome, saga.Succeeded)
    assert shipped.outcome.data["carrier"] == "OVERNIGHT"
    assert shipped.outcome.data["trackingNumber"].startswith("OVE")

    ids = OrderStatus(
        total="44.98",
        reservation_id=reserved.outcome.data["reservationId"],
        payment_id=charged.outcome.data["paymentId"],
    )
    for action in (Action.REFUND_PAYMENT, Action.RELEASE_INVENTORY):
        done = await performing.perform(participants, action, UID, order(ids))
        assert done.outcome == saga.Succeeded(action, {})

    [charge, refund] = await ledger(participants, "payment")
    assert (charge["orderId"], charge["amount"], charge["currency"]) == (UID, "44.98", "USD")
    assert charge["key"] == f"{UID}/capture-payment"
    assert refund["key"] == f"{UID}/refund-payment"
    [reserve, _release] = await ledger(participants, "inventory")
    assert reserve["items"] == {"PROD-001": 2, "PROD-002": 1}


async def test_business_refusals_are_rejections(participants: calls.Participants) -> None:
    short = order(items=[{"productId": "PROD-009", "quantity": 1, "price": "1.00"}])
    refused = await performing.perform(participants, Action.RESERVE_INVENTORY, UID, short)
    assert isinstance(refused.outcome, saga.Rejected)
    assert refused.outcome.reason.startswith("out_of_stock: ")
    dear = order(OrderStatus(total="50.01"))
    declined = await performing.perform(participants, Action.CAPTURE_PAYMENT, UID, dear)
    assert isinstance(declined.outcome, saga.Rejected)
    assert declined.outcome.reason.startswith("declined: ")


async def test_outage_is_a_failure_and_an_open_breaker_a_deferral(
    participants: calls.Participants,
) -> None:
    await participants.http.put("http://p/inventory/faults", json={"unavailable": True})
    outcomes = [
        (await performing.perform(participants, Action.RESERVE_INVENTORY, UID, order())).outcome
        for _ in range(6)
    ]
    assert [type(o).__name__ for o in outcomes] == ["Failed"] * 5 + ["Deferred"]
    last = await performing.perform(participants, Action.RESERVE_INVENTORY, UID, order())
    assert last.retry_after is not None
    assert last.retry_after > 0


def test_an_order_resource_as_the_saga_sees_it() -> None:
    body = {
        "metadata": {
            "name": "o",
            "uid": UID,
            "generation": 4,
            "creationTimestamp": "2026-11-29T15:00:00Z",
            "deletionTimestamp": "2026-11-29T16:00:00Z",
        },
        "spec": VALID_SPEC,
        "status": {"phase": "Confirmed", "total": "44.98"},
    }
    seen = reconciling.to_order(body)
    assert (seen.generation, seen.deleting) == (4, True)
    assert seen.created_at == datetime(2026, 11, 29, 15, tzinfo=UTC)
    assert seen.status.phase == "Confirmed"
    fresh = reconciling.to_order({**body, "status": None, "metadata": {**body["metadata"]}})
    assert fresh.status == OrderStatus()
