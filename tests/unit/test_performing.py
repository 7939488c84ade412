"""The saga's steps as participant calls: request shapes, keys and outcomes, in process.

Each step's and compensation's request comes from the saga's table
(:mod:`korder.domain.steps`); :func:`korder.operator.performing.perform` sends it to
the reference participants, served in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from korder.domain import saga, steps
from korder.domain.order import Carrier, FulfillmentRequest, Order, OrderStatus
from korder.kube import orders
from korder.operator import performing
from korder.outcomes import Deferred, Failed, Rejected, Succeeded
from korder.participant_clients import calls, circuitbreaker
from korder.participants.app import create_app
from korder.settings import Settings
from tests.support.orders import VALID_SPEC, resource, spec
from tests.support.participants import ledger

UID = "6f1c-uid"
#: Calls a breaker must see before it may open.
MIN_CALLS = 5


@pytest.fixture
async def participants() -> AsyncIterator[calls.Participants]:
    app = create_app(Settings(payment_decline_over=Decimal("50.00")))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))

    def participant(name: str) -> calls.Participant:
        breaker = circuitbreaker.CircuitBreaker(name, min_calls=MIN_CALLS)
        return calls.Participant(
            name, f"http://p/{name}", http, breaker, timeout=5, attempts=1, retry_base=0.01
        )

    names = Settings().participant_urls()
    yield calls.Participants({name: participant(name) for name in names}, http)
    await http.aclose()


def order(status: OrderStatus | None = None, **changes: object) -> Order:
    status = status or OrderStatus(total="44.98")
    return resource(spec(**changes), status=status.model_dump(), uid=UID)


def call_of(stage: steps.Step | steps.Compensation, o: Order) -> saga.Call:
    return saga.Call(stage.name, stage.request(UID, o.spec, o.status))


async def test_the_whole_saga_as_calls(participants: calls.Participants) -> None:
    o = order(fulfillment=FulfillmentRequest(carrier=Carrier.OVERNIGHT).model_dump())
    reserved = await performing.perform(participants, call_of(steps.RESERVE, o), o)
    charged = await performing.perform(participants, call_of(steps.CAPTURE, o), o)
    shipped = await performing.perform(participants, call_of(steps.SHIP, o), o)
    assert isinstance(reserved, Succeeded)
    assert isinstance(charged, Succeeded)
    assert isinstance(shipped, Succeeded)
    kept = steps.SHIP.keeps(shipped.answer, o.spec)
    assert kept["carrier"] == "OVERNIGHT"
    assert kept["trackingNumber"].startswith("OVE")

    ids = OrderStatus(
        total="44.98",
        reservation_id=steps.RESERVE.keeps(reserved.answer, o.spec)["reservationId"],
        payment_id=steps.CAPTURE.keeps(charged.answer, o.spec)["paymentId"],
    )
    for _step, compensation in steps.COMPENSATIONS:
        settled = order(ids)
        undo = call_of(compensation, settled)
        assert isinstance(await performing.perform(participants, undo, settled), Succeeded)

    [charge, refund] = await ledger(participants.http, "payment", base="http://p")
    assert (charge["orderId"], charge["amount"], charge["currency"]) == (UID, "44.98", "USD")
    assert charge["key"] == f"{UID}/capture-payment"
    assert refund["key"] == f"{UID}/refund-payment"
    [reserve, _release] = await ledger(participants.http, "inventory", base="http://p")
    assert reserve["items"] == {"PROD-001": 2, "PROD-002": 1}


async def test_a_repeated_call_is_a_replay_not_a_second_effect(
    participants: calls.Participants,
) -> None:
    o = order()
    first = await performing.perform(participants, call_of(steps.RESERVE, o), o)
    again = await performing.perform(participants, call_of(steps.RESERVE, o), o)
    assert first == again
    assert len(await ledger(participants.http, "inventory", base="http://p")) == 1


async def test_business_refusals_are_rejections(participants: calls.Participants) -> None:
    short = order(items=[{"productId": "PROD-009", "quantity": 1, "price": "1.00"}])
    refused = await performing.perform(participants, call_of(steps.RESERVE, short), short)
    assert isinstance(refused, Rejected)
    assert refused.reason.startswith("out_of_stock: ")
    dear = order(OrderStatus(total="50.01"))
    declined = await performing.perform(participants, call_of(steps.CAPTURE, dear), dear)
    assert isinstance(declined, Rejected)
    assert declined.reason.startswith("declined: ")


async def test_outage_is_a_failure_and_an_open_breaker_a_deferral(
    participants: calls.Participants,
) -> None:
    await participants.http.put("http://p/inventory/faults", json={"unavailable": True})
    min_calls = MIN_CALLS
    o = order()
    outcomes = [
        await performing.perform(participants, call_of(steps.RESERVE, o), o)
        for _ in range(min_calls + 1)
    ]
    # Every call fails until the breaker has seen its minimum of calls, all failed;
    # then it opens, and the next one is not made at all.
    assert [type(o).__name__ for o in outcomes] == ["Failed"] * min_calls + ["Deferred"]
    last = outcomes[-1]
    assert isinstance(last, Deferred)
    assert last.retry_after > 0
    assert all(isinstance(o, Failed) and "HTTP 503" in o.reason for o in outcomes[:-1])


def test_an_order_resource_as_the_saga_sees_it() -> None:
    body = {
        "metadata": {
            "name": "o",
            "uid": UID,
            "generation": 4,
            "creationTimestamp": "2026-11-29T15:00:00Z",
            "deletionTimestamp": "2026-11-29T16:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": VALID_SPEC,
        "status": {"phase": "Confirmed", "total": "44.98"},
    }
    seen = orders.to_order(body)
    assert (seen.metadata.generation, seen.deleting) == (4, True)
    assert seen.metadata.creation_timestamp is not None
    assert seen.metadata.creation_timestamp.isoformat() == "2026-11-29T15:00:00+00:00"
    assert seen.status.phase == "Confirmed"
    fresh = orders.to_order({**body, "status": None})
    assert fresh.status == OrderStatus()
