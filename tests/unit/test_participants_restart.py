"""The reference participants restarted on the same state file: nothing a client sees changes.

Each "restart" builds the app a second time from :func:`create_app` with the same
settings (``KORDER_PARTICIPANTS_STATE`` a file in ``tmp_path``), after the first
one shut down; the e2e suite does the same with a SIGKILLed process.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from korder.participants import ledger, store
from korder.participants.app import create_app
from korder.settings import Settings
from tests.support.participants import key
from tests.support.participants import ledger as ledger_of

ITEMS = [{"productId": "PROD-001", "quantity": 2}, {"productId": "PROD-002", "quantity": 1}]
CHARGE = {"orderId": "o-1", "amount": "44.98", "currency": "USD", "paymentMethod": "credit_card"}
SHIP = {"orderId": "o-1", "carrier": "EXPRESS"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        participants_state=str(tmp_path / "participants.db"),
        inventory_stock=10,
        payment_decline_over=Decimal("100.00"),
    )


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """One life of the participants: the app, started and shut down (its database closed)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://participants") as c:
            yield app, c


async def test_a_key_replayed_after_a_restart_gives_the_first_answer_and_no_effect(
    settings: Settings,
) -> None:
    writes = [
        ("/inventory/reservations", {"orderId": "o-1", "items": ITEMS}, "r-1"),
        ("/payment/charges", CHARGE, "c-1"),
        ("/payment/charges", {**CHARGE, "orderId": "o-2", "amount": "100.01"}, "c-2"),
        ("/shipping/shipments", SHIP, "s-1"),
    ]
    async with serving(settings) as (_, client):
        first = [await client.post(path, json=body, headers=key(k)) for path, body, k in writes]
        before = {s: await ledger_of(client, s) for s in ("inventory", "payment", "shipping")}
    assert [r.status_code for r in first] == [201, 201, 402, 201]

    async with serving(settings) as (_, client):
        again = [await client.post(path, json=body, headers=key(k)) for path, body, k in writes]
        after = {s: await ledger_of(client, s) for s in ("inventory", "payment", "shipping")}
    assert [(r.status_code, r.json()) for r in again] == [(r.status_code, r.json()) for r in first]
    assert all(r.headers["Idempotent-Replayed"] == "true" for r in again)
    assert after == before
    assert [len(after[s]) for s in ("inventory", "payment", "shipping")] == [1, 1, 1]


async def test_a_charge_in_doubt_is_not_charged_twice_after_a_restart(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        await client.put("/payment/faults", json={"holdResponses": True})
        held = asyncio.create_task(client.post("/payment/charges", json=CHARGE, headers=key("c")))
        for _ in range(1000):  # let the request reach its effect
            if await ledger_of(client, "payment"):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the held charge never applied its effect")
        # The process dies with the answer unsent: the client never learns the paymentId.
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
    async with serving(settings) as (_, client):
        assert (await client.get("/payment/faults")).json()["holdResponses"] is False
        retried = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
        [charge] = await ledger_of(client, "payment")
        assert retried.status_code == 201
        assert retried.headers["Idempotent-Replayed"] == "true"
        assert retried.json() == {"paymentId": charge["paymentId"]}
        # The charge itself survived too: it can be refunded, once.
        pid = charge["paymentId"]
        for k in ("f-1", "f-2"):
            refund = await client.post(f"/payment/charges/{pid}/refund", headers=key(k))
            assert refund.status_code == 200
        types = [e["type"] for e in await ledger_of(client, "payment")]
    assert types == ["charge", "refund"]


async def test_stock_and_reservations_survive_a_restart(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        reserved = await client.post(
            "/inventory/reservations", json={"orderId": "o-1", "items": ITEMS}, headers=key("r")
        )
        rid = reserved.json()["reservationId"]
    # Another KORDER_INVENTORY_STOCK does not restock a state file that has stock.
    async with serving(settings.model_copy(update={"inventory_stock": 500})) as (_, client):
        stock = (await client.get("/inventory/stock")).json()
        assert stock == {
            "PROD-001": 8,
            "PROD-002": 9,
            "PROD-003": 10,
            "PROD-004": 10,
            "PROD-005": 10,
        }
        released = await client.post(f"/inventory/reservations/{rid}/release", headers=key("x"))
        assert released.status_code == 200
    async with serving(settings) as (_, client):
        # Released before the restart: a release under another key gives nothing back again.
        again = await client.post(f"/inventory/reservations/{rid}/release", headers=key("y"))
        assert again.status_code == 200
        assert (await client.get("/inventory/stock")).json()["PROD-001"] == 10
        types = [e["type"] for e in await ledger_of(client, "inventory")]
        # The stock a restart sees is what the first life left, not a new 10 each.
        short = await client.post(
            "/inventory/reservations",
            json={"orderId": "o-2", "items": [{"productId": "PROD-003", "quantity": 11}]},
            headers=key("r-2"),
        )
    assert types == ["reserve", "release"]
    assert short.status_code == 409


async def test_the_same_key_on_another_request_is_still_422_after_a_restart(
    settings: Settings,
) -> None:
    async with serving(settings) as (_, client):
        assert (await client.post("/shipping/shipments", json=SHIP, headers=key("s"))).is_success
    async with serving(settings) as (_, client):
        other = {**SHIP, "orderId": "o-2"}
        reused = await client.post("/shipping/shipments", json=other, headers=key("s"))
        assert reused.status_code == 422
        assert reused.json()["error"] == "idempotency_key_reused"
        assert len(await ledger_of(client, "shipping")) == 1


async def test_a_write_that_fails_midway_leaves_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The charge row is written before the ledger entry; a failure between undoes it."""

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("the disk is gone")

    async with serving(settings) as (app, client):
        with monkeypatch.context() as patch:
            patch.setattr(ledger, "append", broken)
            failed = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
            assert failed.status_code == 500
            assert failed.json()["error"] == "internal"
        state: store.Store = app.state.participants.store
        rows = state.transaction(
            lambda db: [
                db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
                for table in ("charges", "replays", "ledger")
            ]
        )
        assert rows == [0, 0, 0]
        # The key was not used up: the retry charges, once.
        retried = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried.headers
        assert len(await ledger_of(client, "payment")) == 1


async def test_many_requests_with_one_key_at_once_apply_once(settings: Settings) -> None:
    async with serving(settings) as (_, client):
        answers = await asyncio.gather(
            *(client.post("/payment/charges", json=CHARGE, headers=key("c")) for _ in range(20))
        )
        assert {r.status_code for r in answers} == {201}
        assert len({r.json()["paymentId"] for r in answers}) == 1
        assert sum("Idempotent-Replayed" in r.headers for r in answers) == 19
        assert len(await ledger_of(client, "payment")) == 1


async def test_the_default_state_is_in_memory_and_fresh_each_time() -> None:
    assert Settings().participants_state == ":memory:"
    for _ in range(2):
        async with serving(Settings()) as (_, client):
            assert await ledger_of(client, "payment") == []
            charged = await client.post("/payment/charges", json=CHARGE, headers=key("c"))
            assert "Idempotent-Replayed" not in charged.headers


def test_a_state_file_of_another_schema_is_refused(settings: Settings) -> None:
    db = sqlite3.connect(settings.participants_state)
    try:
        db.execute("PRAGMA user_version = 99")
    finally:
        db.close()
    with pytest.raises(store.StateError, match="schema version 99"):
        create_app(settings)
