"""The reference participants' HTTP contract, in process (the e2e suite runs the real one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from korder.participants.app import create_app
from korder.settings import Settings
from tests.support.participants import key, ledger

ITEMS = [{"productId": "PROD-001", "quantity": 2}, {"productId": "PROD-002", "quantity": 1}]
CHARGE = {"orderId": "o-1", "amount": "44.98", "currency": "USD", "paymentMethod": "credit_card"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(inventory_stock=10, payment_decline_over=Decimal("100.00")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://participants") as c:
        yield c


async def test_reserve_takes_stock_and_the_same_key_replays(client: httpx.AsyncClient) -> None:
    body = {"orderId": "o-1", "items": ITEMS}
    first = await client.post("/inventory/reservations", json=body, headers=key("k1"))
    again = await client.post("/inventory/reservations", json=body, headers=key("k1"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    stock = (await client.get("/inventory/stock")).json()
    assert stock == {"PROD-001": 8, "PROD-002": 9, "PROD-003": 10, "PROD-004": 10, "PROD-005": 10}
    entries = await ledger(client, "inventory")
    assert [(e["type"], e["orderId"], e["key"]) for e in entries] == [("reserve", "o-1", "k1")]
    assert entries[0]["reservationId"] == first.json()["reservationId"]


@pytest.mark.parametrize(
    "items",
    [
        [{"productId": "PROD-999", "quantity": 1}],
        [{"productId": "PROD-001", "quantity": 11}],
        # Two lines of one product count together.
        [{"productId": "PROD-001", "quantity": 6}, {"productId": "PROD-001", "quantity": 5}],
    ],
    ids=["unknown", "short", "short-over-lines"],
)
async def test_out_of_stock_is_409_and_reserves_nothing(
    client: httpx.AsyncClient, items: list[dict[str, object]]
) -> None:
    body = {"orderId": "o-1", "items": [*items, {"productId": "PROD-003", "quantity": 1}]}
    response = await client.post("/inventory/reservations", json=body, headers=key("k"))
    assert response.status_code == 409
    assert response.json()["error"] == "out_of_stock"
    assert (await client.get("/inventory/stock")).json()["PROD-003"] == 10
    assert await ledger(client, "inventory") == []


async def test_release_gives_stock_back_once(client: httpx.AsyncClient) -> None:
    body = {"orderId": "o-1", "items": ITEMS}
    rid = (await client.post("/inventory/reservations", json=body, headers=key("r"))).json()[
        "reservationId"
    ]
    for k in ("rel-1", "rel-1", "rel-2"):
        response = await client.post(f"/inventory/reservations/{rid}/release", headers=key(k))
        assert response.status_code == 200
        assert response.json() == {"reservationId": rid, "status": "released"}
    assert (await client.get("/inventory/stock")).json()["PROD-001"] == 10
    types = [e["type"] for e in await ledger(client, "inventory")]
    assert types == ["reserve", "release"]
    missing = await client.post("/inventory/reservations/nope/release", headers=key("x"))
    assert missing.status_code == 404


async def test_charge_refund_and_decline(client: httpx.AsyncClient) -> None:
    charged = await client.post("/payment/charges", json=CHARGE, headers=key("c1"))
    assert charged.status_code == 201
    pid = charged.json()["paymentId"]
    assert (await client.post("/payment/charges", json=CHARGE, headers=key("c1"))).json() == {
        "paymentId": pid
    }
    for k in ("f1", "f1", "f2"):
        refunded = await client.post(f"/payment/charges/{pid}/refund", headers=key(k))
        assert refunded.status_code == 200
    over = {**CHARGE, "orderId": "o-2", "amount": "100.01"}
    declined = await client.post("/payment/charges", json=over, headers=key("c2"))
    assert declined.status_code == 402
    assert declined.json()["error"] == "declined"
    at_limit = {**CHARGE, "orderId": "o-3", "amount": "100.00"}
    assert (await client.post("/payment/charges", json=at_limit, headers=key("c3"))).is_success
    entries = await ledger(client, "payment")
    assert [(e["type"], e["orderId"]) for e in entries] == [
        ("charge", "o-1"),
        ("refund", "o-1"),
        ("charge", "o-3"),
    ]
    assert entries[0]["amount"] == "44.98"
    only = (await client.get("/payment/ledger", params={"orderId": "o-3"})).json()
    assert [e["orderId"] for e in only] == ["o-3"]


@pytest.mark.parametrize("amount", ["12.5e1", "1.999", "-1", 44.98])
async def test_amount_must_be_a_decimal_string(client: httpx.AsyncClient, amount: object) -> None:
    body = {**CHARGE, "amount": amount}
    response = await client.post("/payment/charges", json=body, headers=key("c"))
    assert response.status_code == 422


async def test_ship_returns_a_tracking_number_once(client: httpx.AsyncClient) -> None:
    body = {"orderId": "o-1", "carrier": "EXPRESS"}
    first = await client.post("/shipping/shipments", json=body, headers=key("s"))
    again = await client.post("/shipping/shipments", json=body, headers=key("s"))
    assert first.status_code == 201
    assert first.json() == again.json()
    assert first.json()["trackingNumber"].startswith("EXP")
    entries = await ledger(client, "shipping")
    assert [e["type"] for e in entries] == ["ship"]
    assert entries[0]["trackingNumber"] == first.json()["trackingNumber"]


async def test_writes_need_a_key_and_a_key_fits_one_request(client: httpx.AsyncClient) -> None:
    body = {"orderId": "o-1", "carrier": "EXPRESS"}
    assert (await client.post("/shipping/shipments", json=body)).status_code == 422
    await client.post("/shipping/shipments", json=body, headers=key("s"))
    other = {"orderId": "o-2", "carrier": "EXPRESS"}
    reused = await client.post("/shipping/shipments", json=other, headers=key("s"))
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"


async def test_an_outage_answers_503_without_effect_and_is_not_replayed(
    client: httpx.AsyncClient,
) -> None:
    await client.put("/payment/faults", json={"unavailable": True})
    down = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
    assert down.status_code == 503
    assert down.headers["Fault-Injected"] == "unavailable"
    assert await ledger(client, "payment") == []
    await client.put("/payment/faults", json={"unavailable": False})
    up = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
    assert up.status_code == 201


async def test_held_answers_apply_the_effect_and_a_replay_does_not_wait(
    client: httpx.AsyncClient,
) -> None:
    faults = await client.put("/inventory/faults", json={"holdResponses": True})
    assert faults.json() == {"unavailable": False, "holdResponses": True}
    body = {"orderId": "o-1", "items": ITEMS}
    held = asyncio.create_task(client.post("/inventory/reservations", json=body, headers=key("h")))
    for _ in range(1000):  # the request runs on this loop: let it reach its effect
        if await ledger(client, "inventory"):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the held request never applied its effect")
    assert not held.done()
    replay = await client.post("/inventory/reservations", json=body, headers=key("h"))
    assert replay.status_code == 201
    await client.put("/inventory/faults", json={"holdResponses": False})
    first = await held
    assert first.json() == replay.json()
    assert first.headers["Fault-Injected"] == "held"
    assert "Fault-Injected" not in replay.headers
    assert len(await ledger(client, "inventory")) == 1


async def test_metrics_count_requests_by_route_replays_and_injected_faults(
    client: httpx.AsyncClient,
) -> None:
    body = {"orderId": "o-1", "items": ITEMS}
    for _ in range(2):
        await client.post("/inventory/reservations", json=body, headers=key("m"))
    await client.put("/payment/faults", json={"unavailable": True})
    await client.post("/payment/charges", json=CHARGE, headers=key("c"))
    scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert scraped.headers["X-Request-ID"]
    text = scraped.text
    reservations = 'method="POST",route="/inventory/reservations"'
    assert f'korder_participants_requests_total{{{reservations},status="201"}} 2.0' in text
    assert f"korder_participants_idempotent_replays_total{{{reservations}}} 1.0" in text
    assert f"korder_participants_request_duration_seconds_count{{{reservations}}} 2.0" in text
    fault = 'fault="unavailable",route="/payment/charges"'
    assert f"korder_participants_faults_injected_total{{{fault}}} 1.0" in text
    assert "process_cpu_seconds_total" in text


async def test_alive_while_the_process_answers_ready_while_the_state_takes_a_write() -> None:
    app = create_app(Settings())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://participants") as c:
        assert (await c.get("/health")).json() == {"status": "ok"}
        app.state.participants.close()
        unready = await c.get("/health")
        assert (unready.status_code, unready.json()) == (503, {"status": "degraded"})
        assert (await c.get("/livez")).json() == {"status": "ok"}
