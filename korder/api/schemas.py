"""Request and response bodies of the REST API, in the seed's camelCase shapes.

They reuse the domain's models for what an order is, so the API, the CRD and the
operator validate the same way.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, model_validator

from korder.api.history import OrderEvent
from korder.domain import conditions, money
from korder.domain.order import (
    ITEMS_LIMIT,
    Address,
    CamelModel,
    Carrier,
    ConditionStatus,
    Currency,
    Customer,
    FulfillmentRequest,
    LineItem,
    Notes,
    Order,
    OrderDraft,
    OrderSpec,
    PaymentMethod,
    Phase,
    RetryRequest,
    Shipment,
    timestamp,
)


class CreateOrder(OrderDraft):
    """A new order, as the seed's POST /orders takes it: the domain's draft of an order."""

    @model_validator(mode="after")
    def _total_is_an_amount(self) -> Self:
        # Each price fits the schema, but price x quantity summed may not: the operator
        # could then never write the order's total. Refuse it here, as a 422.
        total = money.order_total((item.price, item.quantity) for item in self.items)
        if not re.fullmatch(money.AMOUNT_PATTERN, total):
            raise ValueError(f"the order's total {total} is larger than an amount can be")
        return self

    def to_spec(self) -> OrderSpec:
        return OrderSpec.model_validate(self.model_dump())


class UpdateOrder(CamelModel):
    """PUT /orders/{id}: the order's changeable fields, replaced as a whole.

    The shipping address is required; a billing address or notes left out are removed.
    The immutable fields may be sent back as they are (a client that PUTs what it
    read); a different value is refused with 422.
    """

    shipping_address: Address
    billing_address: Address | None = None
    notes: Notes | None = None
    customer: Customer | None = None
    items: list[LineItem] | None = Field(default=None, min_length=1, max_length=ITEMS_LIMIT)
    currency: Currency | None = None
    payment_method: PaymentMethod | None = None

    def applied_to(self, spec: OrderSpec) -> OrderSpec:
        """``spec`` with the changeable fields replaced by this request's."""
        return spec.model_copy(
            update={
                "shipping_address": self.shipping_address,
                "billing_address": self.billing_address,
                "notes": self.notes,
            }
        )

    def changed_immutables(self, spec: OrderSpec) -> list[str]:
        """The immutable fields sent with a value other than ``spec``'s, by their JSON names."""
        sent = self.model_dump(
            include=set(IMMUTABLE), exclude_none=True, mode="json", by_alias=False
        )
        current = spec.model_dump(include=set(sent), exclude_none=True, mode="json", by_alias=False)
        return [_json_name(k) for k in IMMUTABLE if k in sent and sent[k] != current[k]]


#: The spec fields that never change once the order is created (the CRD's CEL rules agree).
IMMUTABLE = ("customer", "items", "currency", "payment_method")


def _json_name(field: str) -> str:
    alias = UpdateOrder.model_fields[field].alias
    return alias or field


class Fulfil(CamelModel):
    """POST /orders/{id}/fulfill: how to ship."""

    carrier: Carrier = Field(description="The shipping service: STANDARD, EXPRESS or OVERNIGHT.")


class RetryOrder(CamelModel):
    """POST /orders/{id}/retry: who asks (optional; recorded in the order's history)."""

    requested_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Who asks for the retry, as recorded in the order's history. The API "
        "does not authenticate callers yet: this is the caller's word.",
    )


class OrderView(CamelModel):
    """An order as the API shows it: what was asked for and where the saga is."""

    id: str = Field(description="The order's id: its resource name.")
    namespace: str | None = Field(
        default=None, description="The namespace (tenant) the order belongs to."
    )
    status: Phase = Field(description="The saga phase; Pending until the operator has seen it.")
    customer: Customer
    items: list[LineItem]
    currency: Currency = "USD"
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
    retry: RetryRequest | None = Field(
        default=None, description="The last retry the client asked for, if any."
    )
    stalled: str | None = Field(
        default=None,
        description="Why the saga cannot progress without help (the Stalled condition's "
        "message), when it is stalled; POST /orders/{id}/retry may resume it.",
    )
    reservation_id: str | None = None
    payment_id: str | None = None
    shipment: Shipment | None = Field(
        default=None, description="Carrier and tracking number, once fulfilled."
    )
    failure_reason: str | None = None

    @classmethod
    def of(cls, order: Order) -> OrderView:
        spec, status, meta = order.spec, order.status, order.metadata
        return cls(
            id=meta.name,
            namespace=meta.namespace,
            status=status.phase or Phase.PENDING,
            customer=spec.customer,
            items=spec.items,
            currency=spec.currency,
            total=status.total,
            shipping_address=spec.shipping_address,
            billing_address=spec.billing_address,
            payment_method=spec.payment_method,
            notes=spec.notes,
            created_at=timestamp(meta.creation_timestamp) if meta.creation_timestamp else None,
            process_requested=spec.process_requested,
            fulfillment=spec.fulfillment,
            cancel_requested=spec.cancel_requested,
            retry=spec.retry,
            stalled=_stalled(order),
            reservation_id=status.reservation_id,
            payment_id=status.payment_id,
            shipment=status.shipment,
            failure_reason=status.failure_reason,
        )


def _stalled(order: Order) -> str | None:
    cond = conditions.get(order.status, conditions.STALLED)
    if cond is None or cond.status != ConditionStatus.TRUE:
        return None
    return cond.message or cond.reason


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
