"""The reference payment service: charge and refund, and the ledger.

A charge over ``KORDER_PAYMENT_DECLINE_OVER`` (10,000.00 by default) is
``402 declined``, a permanent answer. Amounts are decimal strings, never floats;
no card data is taken or kept (the order says only which payment method).
Served under ``/payment`` by :mod:`.app`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import replays, service


class ChargeRequest(service.Camel):
    order_id: str = Field(min_length=1, max_length=128)
    amount: str = Field(pattern=r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_method: str = Field(min_length=1, max_length=32)


class ChargeCreated(service.Camel):
    payment_id: str


class ChargeRefunded(service.Camel):
    payment_id: str
    status: Literal["refunded"]


@dataclass
class _Charge:
    order_id: str
    amount: str
    currency: str
    refunded: bool = False


class Payment(service.Service):
    def __init__(self, decline_over: Decimal) -> None:
        super().__init__()
        self.decline_over = decline_over
        self._charges: dict[str, _Charge] = {}

    def charge(self, key: str, request: ChargeRequest) -> replays.Answer:
        if Decimal(request.amount) > self.decline_over:
            return service.error(
                402, "declined", f"The amount is over {self.decline_over} {request.currency}."
            )
        payment_id = f"pay-{uuid.uuid4().hex[:16]}"
        self._charges[payment_id] = _Charge(request.order_id, request.amount, request.currency)
        self.ledger.append(
            key,
            "charge",
            request.order_id,
            paymentId=payment_id,
            amount=request.amount,
            currency=request.currency,
        )
        return 201, {"paymentId": payment_id}

    def refund(self, key: str, payment_id: str) -> replays.Answer:
        charge = self._charges.get(payment_id)
        if charge is None:
            return service.error(404, "not_found", f"No charge {payment_id}.")
        if not charge.refunded:
            charge.refunded = True
            self.ledger.append(
                key,
                "refund",
                charge.order_id,
                paymentId=payment_id,
                amount=charge.amount,
                currency=charge.currency,
            )
        return 200, {"paymentId": payment_id, "status": "refunded"}


def router(payment: Payment) -> APIRouter:
    r = APIRouter(tags=["payment"])
    errors: dict[int | str, dict[str, Any]] = {
        402: {"model": service.Error},
        404: {"model": service.Error},
    }

    @r.post("/charges", status_code=201, response_model=ChargeCreated, responses=errors)
    async def charge(body: ChargeRequest, key: service.IdempotencyKey) -> JSONResponse:
        """Capture a payment, or decline it (402)."""
        return await payment.replays.once(
            key,
            ("charge", body.model_dump(mode="json")),
            lambda: payment.charge(key, body),
            payment.faults,
        )

    @r.post("/charges/{payment_id}/refund", response_model=ChargeRefunded, responses=errors)
    async def refund(
        payment_id: Annotated[str, Path(max_length=128)], key: service.IdempotencyKey
    ) -> JSONResponse:
        """Give a captured payment back, in full."""
        return await payment.replays.once(
            key, ("refund", payment_id), lambda: payment.refund(key, payment_id), payment.faults
        )

    service.common_routes(r, payment)
    return r
