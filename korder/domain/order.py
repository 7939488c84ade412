"""The Order resource's spec and status, as typed models.

These models are the single source of truth for the Order schema: the CRD in
``crds/`` is generated from them (``make manifests``, :mod:`korder.kube.crd`) and a
unit test fails when the committed CRD drifts from what they generate. Field
descriptions here become ``kubectl explain`` text; ``x-kubernetes-validations``
carry the CEL rules the API server enforces across fields and across updates.

JSON names are camelCase (the seed's REST shapes and Kubernetes' convention);
Python names are snake_case.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from korder.domain import money


class CamelModel(BaseModel):
    """camelCase JSON, snake_case Python, unknown fields refused: the shape of every
    korder body, shared by the Order's models and the facade's requests and responses."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
        serialize_by_alias=True,
        validate_by_alias=True,
        validate_by_name=True,
    )


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """One CEL validation rule as the CRD's ``x-kubernetes-validations`` entry."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


# Limits, named once: the models below declare them (so the CRD and the OpenAPI
# document show them), and code that writes those fields cuts text to them.
#: An order has 1 to this many lines.
ITEMS_LIMIT: Final = 100
#: The length of a note's message (a history entry, an Event) and of a failure reason.
MESSAGE_LENGTH: Final = 1024
#: The length of a condition's message (metav1.Condition's own limit).
CONDITION_MESSAGE_LENGTH: Final = 32768
HISTORY_LIMIT: Final = 100
NOTES_LENGTH: Final = 2000


def clip(text: str, length: int) -> str:
    """``text`` cut to ``length`` characters, for a field that allows no more."""
    return text[:length]


def timestamp(now: datetime) -> str:
    """A time as the order's time fields hold it: RFC 3339, UTC, whole seconds, as
    Kubernetes writes its own (conditions' lastTransitionTime, creationTimestamp)."""
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def instant(now: datetime) -> str:
    """A history entry's time: RFC 3339, UTC, to the millisecond, so a timeline (the
    console's, ``kubectl korder history``) can say how long each step took; most take
    less than a second."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


Amount = Annotated[
    str,
    Field(
        pattern=money.AMOUNT_PATTERN,
        max_length=13,
        description="An amount of money as a decimal string with at most two fraction digits, "
        'such as "19.99". Never a number: money is exact.',
    ),
]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency code of every amount in the order. Immutable.",
    ),
]
Notes = Annotated[str, Field(max_length=NOTES_LENGTH, description="Free text for the shop.")]


class PaymentMethod(StrEnum):
    """How the customer pays. Card data is never stored on the order."""

    CREDIT_CARD = "credit_card"
    DEBIT_CARD = "debit_card"
    PAYPAL = "paypal"
    BANK_TRANSFER = "bank_transfer"


class Carrier(StrEnum):
    """The shipping service a fulfilment asks for."""

    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    OVERNIGHT = "OVERNIGHT"


class Phase(StrEnum):
    """Where the order is in its saga."""

    PENDING = "Pending"
    RESERVING_INVENTORY = "ReservingInventory"
    PROCESSING_PAYMENT = "ProcessingPayment"
    CONFIRMED = "Confirmed"
    PROCESSING = "Processing"
    FULFILLED = "Fulfilled"
    COMPENSATING = "Compensating"
    FAILED = "Failed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"


class Customer(CamelModel):
    """Who placed the order."""

    id: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$",
        description="The shop's identifier of the customer: letters, digits, '.', '_' and '-'.",
    )
    name: str | None = Field(default=None, max_length=200, description="The customer's name.")
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Where the shop writes to the customer about this order.",
    )


class LineItem(CamelModel):
    """One product line of the order."""

    product_id: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The product's identifier in the inventory, such as PROD-001.",
    )
    name: str | None = Field(default=None, max_length=200, description="The product's name.")
    quantity: int = Field(ge=1, le=1000, description="How many units, from 1 to 1000.")
    price: Amount = Field(
        description="The price of one unit, in the order's currency: a decimal string with at "
        'most two fraction digits, such as "19.99". Never a number: money is exact.'
    )


class Address(CamelModel):
    """A postal address."""

    street: ShortText = Field(description="Street and number.")
    city: ShortText = Field(description="City or town.")
    postal_code: str = Field(
        min_length=1, max_length=20, description="Postal or ZIP code, as the country writes it."
    )
    country: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, such as US or DE."
    )


class FulfillmentRequest(CamelModel):
    """Asks the operator to ship the order (Processing -> Fulfilled)."""

    carrier: Carrier = Field(description="The shipping service: STANDARD, EXPRESS or OVERNIGHT.")


class RetryRequest(CamelModel):
    """Asks the operator to resume a stalled saga, once per ``attempt``."""

    attempt: int = Field(
        ge=1,
        le=1_000_000,
        description="Raise it by one to ask for a retry; the operator acts once on each "
        "value (status.lastRetry.attempt says which it acted on last). Cannot go down.",
    )
    requested_by: str | None = Field(
        default=None,
        max_length=253,
        description="Who asked, as the client names them (the kubectl plugin: the user the "
        "API server authenticated; REST: what the caller says). Recorded in status.history.",
    )
    requested_at: str | None = Field(
        default=None,
        description="When the client asked (RFC 3339), by the client's clock.",
        json_schema_extra={"format": "date-time"},
    )


class OrderDraft(CamelModel):
    """An order as the client places it: what, for whom, where to, paid how."""

    customer: Customer = Field(description="Who placed the order. Immutable.")
    items: list[LineItem] = Field(
        min_length=1,
        max_length=ITEMS_LIMIT,
        description=f"The products ordered, 1 to {ITEMS_LIMIT} lines. Immutable.",
    )
    currency: Currency = "USD"
    shipping_address: Address = Field(description="Where the order is shipped.")
    billing_address: Address | None = Field(
        default=None, description="Where the invoice goes, if not the shipping address."
    )
    payment_method: PaymentMethod = Field(
        description="How the customer pays: credit_card, debit_card, paypal or bank_transfer. "
        "Immutable."
    )
    notes: Notes | None = None


class OrderSpec(OrderDraft):
    """What the client asked for. The facade writes it; a GitOps tool may write it too."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.items == oldSelf.items",
                    "items cannot change once the order is created",
                    ".items",
                ),
                _cel(
                    "self.customer == oldSelf.customer",
                    "customer cannot change once the order is created",
                    ".customer",
                ),
                _cel(
                    "self.paymentMethod == oldSelf.paymentMethod",
                    "paymentMethod cannot change once the order is created",
                    ".paymentMethod",
                ),
                _cel(
                    "self.currency == oldSelf.currency",
                    "currency cannot change once the order is created",
                    ".currency",
                ),
                _cel(
                    "!oldSelf.cancelRequested || self.cancelRequested",
                    "a cancelled order cannot be un-cancelled",
                    ".cancelRequested",
                ),
                _cel(
                    "!oldSelf.processRequested || self.processRequested",
                    "a processing request cannot be withdrawn",
                    ".processRequested",
                ),
                _cel(
                    "!has(oldSelf.retry) || "
                    "(has(self.retry) && self.retry.attempt >= oldSelf.retry.attempt)",
                    "a retry request cannot be withdrawn or go back",
                    ".retry",
                ),
                _cel(
                    "!has(oldSelf.fulfillment) || "
                    "(has(self.fulfillment) && self.fulfillment == oldSelf.fulfillment)",
                    "a fulfilment request cannot be changed or withdrawn",
                    ".fulfillment",
                ),
            ]
        }
    )

    process_requested: bool = Field(
        default=False,
        description="Set to true to move a Confirmed order to Processing. Cannot be unset.",
    )
    fulfillment: FulfillmentRequest | None = Field(
        default=None,
        description="Set to ship a Processing order with a carrier. Cannot be changed once set.",
    )
    cancel_requested: bool = Field(
        default=False,
        description="Set to true to cancel the order: completed steps are compensated. "
        "Cannot be unset.",
    )
    retry: RetryRequest | None = Field(
        default=None,
        description="Set (or raise attempt) to resume a Stalled saga: the step it stalled on "
        "is tried again with a fresh deadline. Only a stalled order can be retried.",
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A condition in the shape of metav1.Condition, readable by kstatus and kubectl wait."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="The condition's type in CamelCase: Ready, Reconciling, Stalled, or a step.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was set for."
    )
    last_transition_time: str = Field(
        description="When the condition last changed from one status to another (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="A CamelCase word that says why the condition has its status.",
    )
    message: str = Field(
        default="",
        max_length=CONDITION_MESSAGE_LENGTH,
        description="A sentence for a person about the condition.",
    )


class Shipment(CamelModel):
    """The shipment that fulfilled the order."""

    carrier: Carrier = Field(description="The carrier that ships the order.")
    tracking_number: str = Field(max_length=128, description="The carrier's tracking number.")
    shipped_at: str = Field(
        description="When the shipment was created (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )


class HistoryEntry(CamelModel):
    """One entry of the order's durable event log."""

    type: str = Field(
        max_length=128, description="What happened, in CamelCase, such as InventoryReserved."
    )
    time: str = Field(
        description="When it happened (RFC 3339).", json_schema_extra={"format": "date-time"}
    )
    phase: Phase = Field(description="The order's phase after it happened.")
    message: str = Field(
        default="", max_length=MESSAGE_LENGTH, description="A sentence for a person."
    )
    data: dict[str, str] | None = Field(
        default=None, description="Details as key/value pairs: ids, amounts, reasons."
    )


class RetryRecord(CamelModel):
    """The last retry request the operator acted on."""

    attempt: int = Field(ge=1, description="The spec.retry.attempt it acted on.")
    resumed_at: str | None = Field(
        default=None,
        description="When the saga resumed on it (RFC 3339); the fresh deadline counts from "
        "here. Absent when the order could not be retried (status.history says why).",
        json_schema_extra={"format": "date-time"},
    )


class OrderStatus(CamelModel):
    """What the operator observed and did. Only the operator writes it."""

    phase: Phase | None = Field(default=None, description="Where the order is in its saga.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the operator last acted on."
    )
    total: Amount | None = Field(
        default=None,
        description="Sum of price x quantity over the items, in the order's currency, as a "
        "decimal string with two fraction digits.",
    )
    reservation_id: str | None = Field(
        default=None, max_length=128, description="The inventory reservation, once reserved."
    )
    payment_id: str | None = Field(
        default=None, max_length=128, description="The captured payment, once charged."
    )
    shipment: Shipment | None = Field(default=None, description="Set once the order is fulfilled.")
    failure_reason: str | None = Field(
        default=None, max_length=MESSAGE_LENGTH, description="Why the order failed, for a person."
    )
    last_retry: RetryRecord | None = Field(
        default=None, description="The last retry request the operator acted on."
    )
    conditions: list[Condition] | None = Field(
        default=None,
        max_length=32,
        description="Ready, Reconciling, Stalled and one condition per saga step.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    history: list[HistoryEntry] | None = Field(
        default=None,
        max_length=HISTORY_LIMIT,
        description=f"The durable log of the order's transitions, oldest first, at most "
        f"{HISTORY_LIMIT} entries (Kubernetes Events expire; this does not).",
    )


class Metadata(BaseModel):
    """The part of Kubernetes' ObjectMeta that korder reads; the rest is ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
    )

    name: str
    namespace: str | None = None
    uid: str = ""
    resource_version: str = ""
    generation: int = 1
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Order(BaseModel):
    """An Order resource as the API server stores it: metadata, spec and status.

    What the operator's saga and the facade's routes work on; the Kubernetes layer
    (:mod:`korder.kube.orders`) turns the API server's JSON into it and back.
    """

    model_config = ConfigDict(extra="ignore")

    metadata: Metadata
    spec: OrderSpec
    status: OrderStatus = Field(default_factory=OrderStatus)

    @field_validator("status", mode="before")
    @classmethod
    def _no_status_yet(cls, value: object) -> object:
        # A new object has no status, or (from some clients) a null one: the same thing.
        return {} if value is None else value

    @property
    def deleting(self) -> bool:
        """Whether `kubectl delete` was asked: the finalizer holds the object until compensated."""
        return self.metadata.deletion_timestamp is not None
