"""The reference inventory: reserve and release stock, show stock and the ledger.

A new state file starts with ``PROD-001`` ... ``PROD-005``, ``KORDER_INVENTORY_STOCK``
units each; a file that has stock keeps it (a restart is not a restock). An unknown
product or too little stock is ``409 out_of_stock``, a permanent answer. Stock and
reservations live in :mod:`.store`. Served under ``/inventory`` by :mod:`.app`.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import ledger, replays, service, store

PRODUCTS = tuple(f"PROD-{n:03d}" for n in range(1, 6))


class Item(service.Camel):
    product_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1)


class ReservationRequest(service.Camel):
    order_id: str = Field(min_length=1, max_length=128)
    items: list[Item] = Field(min_length=1)


class ReservationCreated(service.Camel):
    reservation_id: str


class ReservationReleased(service.Camel):
    reservation_id: str
    status: Literal["released"]


class Inventory(service.Service):
    def __init__(self, state: store.Store, stock_each: int) -> None:
        super().__init__(state, "inventory")
        state.transaction(
            lambda db: db.executemany(
                "INSERT OR IGNORE INTO stock (product, units) VALUES (?, ?)",
                [(product, stock_each) for product in PRODUCTS],
            )
        )

    def reserve(
        self, db: sqlite3.Connection, key: str, request: ReservationRequest
    ) -> replays.Answer:
        wanted: Counter[str] = Counter()
        for item in request.items:
            wanted[item.product_id] += item.quantity
        stock = _stock(db)
        short = sorted(p for p, q in wanted.items() if stock.get(p, 0) < q)
        if short:
            return service.error(409, "out_of_stock", f"Not enough stock of {', '.join(short)}.")
        db.executemany(
            "UPDATE stock SET units = units - ? WHERE product = ?",
            [(quantity, product) for product, quantity in wanted.items()],
        )
        reservation_id = f"res-{uuid.uuid4().hex[:16]}"
        db.execute(
            "INSERT INTO reservations (id, order_id, quantities) VALUES (?, ?, ?)",
            (reservation_id, request.order_id, json.dumps(dict(wanted))),
        )
        ledger.append(
            db,
            self.name,
            key,
            "reserve",
            request.order_id,
            reservationId=reservation_id,
            items=dict(wanted),
        )
        return 201, {"reservationId": reservation_id}

    def release(self, db: sqlite3.Connection, key: str, reservation_id: str) -> replays.Answer:
        reservation = db.execute(
            "SELECT order_id, quantities, released FROM reservations WHERE id = ?",
            (reservation_id,),
        ).fetchone()
        if reservation is None:
            return service.error(404, "not_found", f"No reservation {reservation_id}.")
        order_id, quantities, released = reservation
        if not released:
            # Releasing twice (under two keys) gives stock back once.
            db.executemany(
                "UPDATE stock SET units = units + ? WHERE product = ?",
                [(quantity, product) for product, quantity in json.loads(quantities).items()],
            )
            db.execute("UPDATE reservations SET released = 1 WHERE id = ?", (reservation_id,))
            ledger.append(db, self.name, key, "release", order_id, reservationId=reservation_id)
        return 200, {"reservationId": reservation_id, "status": "released"}

    async def stock(self) -> dict[str, int]:
        return await self.store.run(_stock)


def _stock(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT product, units FROM stock ORDER BY product").fetchall())


def router(inventory: Inventory) -> APIRouter:
    r = APIRouter(tags=["inventory"])
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": service.Error},
        409: {"model": service.Error},
    }

    @r.post("/reservations", status_code=201, response_model=ReservationCreated, responses=errors)
    async def reserve(body: ReservationRequest, key: service.IdempotencyKey) -> JSONResponse:
        """Reserve every item of an order, or none (409 out_of_stock)."""
        request = ("reserve", body.model_dump(mode="json"))
        return await inventory.replays.once(
            key, request, lambda db: inventory.reserve(db, key, body), inventory.faults
        )

    @r.post(
        "/reservations/{reservation_id}/release",
        response_model=ReservationReleased,
        responses=errors,
    )
    async def release(
        reservation_id: Annotated[str, Path(max_length=128)], key: service.IdempotencyKey
    ) -> JSONResponse:
        """Give a reservation's stock back."""
        return await inventory.replays.once(
            key,
            ("release", reservation_id),
            lambda db: inventory.release(db, key, reservation_id),
            inventory.faults,
        )

    @r.get("/stock", response_model=dict[str, int])
    async def stock() -> dict[str, int]:
        """Units available now, by product."""
        return await inventory.stock()

    service.common_routes(r, inventory)
    return r
