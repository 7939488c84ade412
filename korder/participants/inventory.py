"""The reference inventory: reserve and release stock, show stock and the ledger.

Starts with ``PROD-001`` ... ``PROD-005``, ``KORDER_INVENTORY_STOCK`` units each.
An unknown product or too little stock is ``409 out_of_stock``, a permanent answer.
Served under ``/inventory`` by :mod:`.app`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import replays, service

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


@dataclass
class _Reservation:
    order_id: str
    quantities: dict[str, int]
    released: bool = False


class Inventory(service.Service):
    def __init__(self, stock_each: int) -> None:
        super().__init__()
        self.stock = dict.fromkeys(PRODUCTS, stock_each)
        self._reservations: dict[str, _Reservation] = {}

    def reserve(self, key: str, request: ReservationRequest) -> replays.Answer:
        wanted: Counter[str] = Counter()
        for item in request.items:
            wanted[item.product_id] += item.quantity
        short = sorted(p for p, q in wanted.items() if self.stock.get(p, 0) < q)
        if short:
            return service.error(409, "out_of_stock", f"Not enough stock of {', '.join(short)}.")
        for product, quantity in wanted.items():
            self.stock[product] -= quantity
        reservation_id = f"res-{uuid.uuid4().hex[:16]}"
        self._reservations[reservation_id] = _Reservation(request.order_id, dict(wanted))
        self.ledger.append(
            key, "reserve", request.order_id, reservationId=reservation_id, items=dict(wanted)
        )
        return 201, {"reservationId": reservation_id}

    def release(self, key: str, reservation_id: str) -> replays.Answer:
        reservation = self._reservations.get(reservation_id)
        if reservation is None:
            return service.error(404, "not_found", f"No reservation {reservation_id}.")
        if not reservation.released:
            # Releasing twice (under two keys) gives stock back once.
            for product, quantity in reservation.quantities.items():
                self.stock[product] += quantity
            reservation.released = True
            self.ledger.append(key, "release", reservation.order_id, reservationId=reservation_id)
        return 200, {"reservationId": reservation_id, "status": "released"}


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
            key, request, lambda: inventory.reserve(key, body), inventory.faults
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
            lambda: inventory.release(key, reservation_id),
            inventory.faults,
        )

    @r.get("/stock", response_model=dict[str, int])
    async def stock() -> dict[str, int]:
        """Units available now, by product."""
        return dict(inventory.stock)

    service.common_routes(r, inventory)
    return r
