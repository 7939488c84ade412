"""Request and response bodies of the REST API, in the seed's camelCase shapes.

They reuse the domain's models for what an order is, so the API, the CRD and the
operator validate the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from korder.domain.order import (
    Address,
    Customer,
    LineItem,
    OrderSpec,
    PaymentMethod,
    Phase,
    _Model,
)


class CreateOrder(_Model):
    """A new order, as the seed's POST /orders takes it."""

    customer: Customer
    items: list[LineItem] = Field(min_length=1, max_length=100)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    shipping_address: Address
    billing_address: Address | None = None
    payment_method: PaymentMethod
    notes: str | None = Field(default=None, max_length=2000)

    def to_spec(self) -> OrderSpec:
        return OrderSpec.model_validate(self.model_dump(by_alias=True))


class OrderView(_Model):
    """An order as the API shows it: what was asked for and where the saga is."""

    id: str = Field(description="The order's id: its resource name.")
    status: Phase = Field(description="The saga phase; Pending until the operator has seen it.")
    customer: Customer
    items: list[LineItem]
    currency: str
    total: str | None = Field(default=None, description="Sum of price x quantity.")
    shipping_address: Address
    billing_address: Address | None = None
    payment_method: PaymentMethod
    notes: str | None = None
    created_at: str | None = None

    @classmethod
    def from_resource(cls, obj: dict[str, Any]) -> OrderView:
        spec, status, meta = obj["spec"], obj.get("status") or {}, obj["metadata"]
        return cls.model_validate(
            {
                **{k: v for k, v in spec.items() if k in _SPEC_FIELDS},
                "id": meta["name"],
                "status": status.get("phase") or Phase.PENDING,
                "total": status.get("total"),
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
}
