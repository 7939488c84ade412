"""The reference shipping service: create a shipment, get a tracking number.

The shipments live in :mod:`.store`. Served under ``/shipping`` by :mod:`.app`.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import ledger, replays, service, store


class ShipmentRequest(service.Camel):
    order_id: str = Field(min_length=1, max_length=128)
    carrier: Literal["STANDARD", "EXPRESS", "OVERNIGHT"]


class ShipmentCreated(service.Camel):
    shipment_id: str
    tracking_number: str


class Shipping(service.Service):
    def __init__(self, state: store.Store) -> None:
        super().__init__(state, "shipping")

    def ship(self, db: sqlite3.Connection, key: str, request: ShipmentRequest) -> replays.Answer:
        shipment_id = f"shp-{uuid.uuid4().hex[:16]}"
        tracking = f"{request.carrier[:3]}{secrets.randbelow(10**12):012d}"
        db.execute(
            "INSERT INTO shipments (id, order_id, carrier, tracking_number) VALUES (?, ?, ?, ?)",
            (shipment_id, request.order_id, request.carrier, tracking),
        )
        ledger.append(
            db,
            self.name,
            key,
            "ship",
            request.order_id,
            shipmentId=shipment_id,
            trackingNumber=tracking,
            carrier=request.carrier,
        )
        return 201, {"shipmentId": shipment_id, "trackingNumber": tracking}


def router(shipping: Shipping) -> APIRouter:
    r = APIRouter(tags=["shipping"])

    @r.post("/shipments", status_code=201, response_model=ShipmentCreated)
    async def ship(body: ShipmentRequest, key: service.IdempotencyKey) -> JSONResponse:
        """Hand the order to a carrier; the answer has its tracking number."""
        return await shipping.replays.once(
            key,
            ("ship", body.model_dump(mode="json")),
            lambda db: shipping.ship(db, key, body),
            shipping.faults,
        )

    service.common_routes(r, shipping)
    return r
