"""The reference payment service: charge and refund, and the ledger.

A charge over ``KORDER_PAYMENT_DECLINE_OVER`` (10,000.00 by default) is
``402 declined``, a permanent answer. Amounts are decimal strings, never floats;
no card data is taken or kept (the order says only which payment method). The
charges live in :mod:`.store`, so a restart never charges a key twice. Served
under ``/payment`` by :mod:`.app`.
"""

from __future__ import annotations

import sqlite3
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from korder.participants import ledger, replays, service, store


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


class Payment(service.Service):
    def __init__(self, state: store.Store, decline_over: Decimal) -> None:
        super().__init__(state, "payment")
        self.decline_over = decline_over

    def charge(self, db: sqlite3.Connection, key: str, request: ChargeRequest) -> replays.Answer:
        if Decimal(request.amount) > self.decline_over:
            return service.error(
                402, "declined", f"The amount is over {self.decline_over} {request.currency}."
            )
        payment_id = f"pay-{uuid.uuid4().hex[:16]}"
        db.execute(
            "INSERT INTO charges (id, order_id, amount, currency) VALUES (?, ?, ?, ?)",
            (payment_id, request.order_id, request.amount, request.currency),
        )
        ledger.append(
            db,
            self.name,
            key,
            "charge",
            request.order_id,
            paymentId=payment_id,
            amount=request.amount,
            currency=request.currency,
        )
        return 201, {"paymentId": payment_id}

    def refund(self, db: sqlite3.Connection, key: str, payment_id: str) -> replays.Answer:
        charge = db.execute(
            "SELECT order_id, amount, currency, refunded FROM charges WHERE id = ?", (payment_id,)
        ).fetchone()
        if charge is None:
            return service.error(404, "not_found", f"No charge {payment_id}.")
        order_id, amount, currency, refunded = charge
        if not refunded:
            db.execute("UPDATE charges SET refunded = 1 WHERE id = ?", (payment_id,))
            ledger.append(
                db,
                self.name,
                key,
                "refund",
                order_id,
                paymentId=payment_id,
                amount=amount,
                currency=currency,
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
            lambda db: payment.charge(db, key, body),
            payment.faults,
        )

    @r.post("/charges/{payment_id}/refund", response_model=ChargeRefunded, responses=errors)
    async def refund(
        payment_id: Annotated[str, Path(max_length=128)], key: service.IdempotencyKey
    ) -> JSONResponse:
        """Give a captured payment back, in full."""
        return await payment.replays.once(
            key,
            ("refund", payment_id),
            lambda db: payment.refund(db, key, payment_id),
            payment.faults,
        )

    service.common_routes(r, payment)
    return r
