"""The reference shipping service: create a shipment, get a tracking number.

Served under ``/shipping`` by :mod:`.app`.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import replays, service


class ShipmentRequest(service.Camel):
    order_id: str = Field(min_length=1, max_length=128)
    carrier: Literal["STANDARD", "EXPRESS", "OVERNIGHT"]


class ShipmentCreated(service.Camel):
    shipment_id: str
    tracking_number: str


class Shipping(service.Service):
    def ship(self, key: str, request: ShipmentRequest) -> replays.Answer:
        shipment_id = f"shp-{uuid.uuid4().hex[:16]}"
        tracking = f"{request.carrier[:3]}{secrets.randbelow(10**12):012d}"
        self.ledger.append(
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
            lambda: shipping.ship(key, body),
            shipping.faults,
        )

    service.common_routes(r, shipping)
    return r
