"""Request and response bodies of the REST API, in the seed's camelCase shapes.

They reuse the domain's models for what an order is, so the API, the CRD and the
operator validate the same way.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import Field, model_validator

from korder.api.history import OrderEvent
from korder.domain import money
from korder.domain.order import (
    Address,
    CamelModel,
    Carrier,
    Customer,
    FulfillmentRequest,
    LineItem,
    OrderSpec,
    PaymentMethod,
    Phase,
    Shipment,
)


class CreateOrder(CamelModel):
    """A new order, as the seed's POST /orders takes it."""

    customer: Customer
    items: list[LineItem] = Field(min_length=1, max_length=100)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    shipping_address: Address
    billing_address: Address | None = None
    payment_method: PaymentMethod
    notes: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _total_is_an_amount(self) -> Self:
        # Each price fits the schema, but price x quantity summed may not: the operator
        # could then never write the order's total. Refuse it here, as a 422.
        total = money.order_total((item.price, item.quantity) for item in self.items)
        if not re.fullmatch(money.AMOUNT_PATTERN, total):
            raise ValueError(f"the order's total {total} is larger than an amount can be")
        return self

    def to_spec(self) -> OrderSpec:
        return OrderSpec.model_validate(self.model_dump(by_alias=True))


class UpdateOrder(CamelModel):
    """PUT /orders/{id}: the order's changeable fields, replaced as a whole.

    The shipping address is required; a billing address or notes left out are removed.
    The immutable fields may be sent back as they are (a client that PUTs what it
    read); a different value is refused with 422.
    """

    shipping_address: Address
    billing_address: Address | None = None
    notes: str | None = Field(default=None, max_length=2000)
    customer: Customer | None = None
    items: list[LineItem] | None = Field(default=None, min_length=1, max_length=100)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    payment_method: PaymentMethod | None = None

    def changes(self) -> dict[str, Any]:
        """The merge patch of the spec: the changeable fields, None where removed."""
        body = self.model_dump(mode="json", by_alias=True)
        return {key: body[key] for key in UPDATABLE}

    def immutables(self) -> dict[str, Any]:
        """The immutable fields the client sent, as JSON."""
        body = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {key: value for key, value in body.items() if key not in UPDATABLE}


UPDATABLE = ("shippingAddress", "billingAddress", "notes")


class Fulfil(CamelModel):
    """POST /orders/{id}/fulfill: how to ship."""

    carrier: Carrier = Field(description="The shipping service: STANDARD, EXPRESS or OVERNIGHT.")


class OrderView(CamelModel):
    """An order as the API shows it: what was asked for and where the saga is."""

    id: str = Field(description="The order's id: its resource name.")
    status: Phase = Field(description="The saga phase; Pending until the operator has seen it.")
    customer: Customer
    items: list[LineItem]
    currency: str = "USD"
    total: str | None = Field(default=None, description="Sum of price x quantity.")
    shipping_address: Address
    billing_address: Address | None = None
    payment_method: PaymentMethod
    notes: str | None = None
    created_at: str | None = None
    process_requested: bool = False
    fulfillment: FulfillmentRequest | None = Field(
        default=None, description="The fulfilment the client asked for, with its carrier."
    )
    cancel_requested: bool = False
    reservation_id: str | None = None
    payment_id: str | None = None
    shipment: Shipment | None = Field(
        default=None, description="Carrier and tracking number, once fulfilled."
    )
    failure_reason: str | None = None

    @classmethod
    def from_resource(cls, obj: dict[str, Any]) -> OrderView:
        spec, status, meta = obj["spec"], obj.get("status") or {}, obj["metadata"]
        return cls.model_validate(
            {
                **{k: v for k, v in spec.items() if k in _SPEC_FIELDS},
                "id": meta["name"],
                "status": status.get("phase") or Phase.PENDING,
                "total": status.get("total"),
                **{k: v for k, v in status.items() if k in _STATUS_FIELDS},
                "createdAt": meta.get("creationTimestamp"),
            }
        )


_SPEC_FIELDS = {
    "customer",
    "items",
    "currency",
    "shippingAddress",
    "billingAddress",
    "paymentMethod",
    "notes",
    "processRequested",
    "fulfillment",
    "cancelRequested",
}
_STATUS_FIELDS = {"reservationId", "paymentId", "shipment", "failureReason"}


class OrderList(CamelModel):
    """A page of orders, and the token that asks for the next page."""

    orders: list[OrderView]
    continue_: str | None = Field(
        default=None,
        alias="continue",
        description="Pass as ?continue= for the next page; absent on the last page.",
    )


class OrderEvents(CamelModel):
    """An order's history, oldest first."""

    order_id: str
    events: list[OrderEvent]
