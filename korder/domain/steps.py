"""The saga's table: every stage of an order's life, each defined once.

An order moves through :data:`SAGA` top to bottom: each stage's success leads to
the phase of the stage below it. A :class:`Step` is a call to a participant: its
row says the phase it runs in,
the request it makes, the ids it keeps from the answer and the status fields they
fill, its compensation, the notes (history entries and Events) it writes, and
whether the saga's deadline bounds it or the client must ask for it first. A
:class:`Gate` is a phase that waits for the client and moves on with no call.

Everything else reads from this table: the state machine (:mod:`.saga`), the
condition bookkeeping (:mod:`.conditions`), the operator's calls
(:mod:`korder.operator.performing` sends a step's :class:`Request` as it is) and the
façade's rules (:mod:`.rules`). Adding a step is a row here (a phase for it in
:class:`~korder.domain.order.Phase`) and its request builder.

Pure code: a :class:`Request` is data (a participant's name, a path, a JSON body);
the operator turns it into HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from korder.domain.actions import Action, requested
from korder.domain.order import OrderSpec, OrderStatus, Phase, Shipment

# --- The shapes of a row ------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """One thing that happened to an order: a status.history entry and a Kubernetes Event."""

    reason: str
    message: str
    warning: bool = False
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """A POST to a participant: ``path`` under its base URL, with a JSON ``body``.

    ``participant`` names the service; the operator's setting ``KORDER_<NAME>_URL``
    says where it is. The idempotency key is added by the caller (:func:`idempotency_key`).
    """

    participant: str
    path: str
    body: Mapping[str, Any] | None = None


#: Builds a step's (or a compensation's) request from the order: its UID (the
#: participants' ``orderId``), its spec and its status as the saga has it now.
Build = Callable[[str, OrderSpec, OrderStatus], Request]


@dataclass(frozen=True)
class Compensation:
    """Undoes a done step: the call, the note once done, and what it undid (for the note)."""

    name: str  # ends the idempotency key: <uid>/<name>
    request: Build
    done: str  # the note's reason once undone, such as PaymentRefunded
    undoes: Callable[[OrderStatus], str | None]  # the id it undoes, for the note's message


@dataclass(frozen=True)
class Step:
    """A call to a participant, run in ``phase``; success leads to the next stage's phase."""

    name: str  # ends the idempotency key: <uid>/<name>
    phase: Phase
    condition: str  # the step's condition type: its durable state in status.conditions
    request: Build
    #: The ids kept from the participant's answer (and the spec): the done note's data.
    keeps: Callable[[Mapping[str, Any], OrderSpec], dict[str, str]]
    #: The status fields those ids fill; the second argument is the time (RFC 3339).
    fills: Callable[[Mapping[str, str], str], dict[str, object]]
    done: str  # the note's reason on success
    rejected: str  # the note's reason on a permanent failure
    deadline: bool  # whether the saga's deadline bounds the step's retries
    compensation: Compensation | None = None  # None: nothing of it to undo
    #: Once it starts, the order can no longer be cancelled (a parcel on its way).
    irrevocable: bool = False
    #: The client's action the step waits for before it starts (None: it starts at once).
    waits_for: Action | None = None
    #: The note written when the step starts, if the start itself is news.
    starts: Callable[[OrderSpec], Note] | None = None


@dataclass(frozen=True)
class Gate:
    """A phase that waits for the client's ``waits_for``, then moves on to the next stage's."""

    phase: Phase
    waits_for: Action
    note: Note


Stage = Step | Gate

# --- Request builders ---------------------------------------------------------------

INVENTORY: Final = "inventory"
PAYMENT: Final = "payment"
SHIPPING: Final = "shipping"


def _reserve(uid: str, spec: OrderSpec, _status: OrderStatus) -> Request:
    items = [{"productId": i.product_id, "quantity": i.quantity} for i in spec.items]
    return Request(INVENTORY, "reservations", {"orderId": uid, "items": items})


def _release(_uid: str, _spec: OrderSpec, status: OrderStatus) -> Request:
    return Request(INVENTORY, f"reservations/{status.reservation_id}/release")


def _charge(uid: str, spec: OrderSpec, status: OrderStatus) -> Request:
    body = {
        "orderId": uid,
        "amount": status.total,
        "currency": spec.currency,
        "paymentMethod": str(spec.payment_method),
    }
    return Request(PAYMENT, "charges", body)


def _refund(_uid: str, _spec: OrderSpec, status: OrderStatus) -> Request:
    return Request(PAYMENT, f"charges/{status.payment_id}/refund")


def _ship(uid: str, spec: OrderSpec, _status: OrderStatus) -> Request:
    assert spec.fulfillment is not None  # the step waits for it
    return Request(
        SHIPPING, "shipments", {"orderId": uid, "carrier": str(spec.fulfillment.carrier)}
    )


def _shipping_note(spec: OrderSpec) -> Note:
    assert spec.fulfillment is not None
    carrier = str(spec.fulfillment.carrier)
    return Note("FulfillmentRequested", f"Shipping with {carrier}.", data={"carrier": carrier})


def _shipment(ids: Mapping[str, str], now: str) -> dict[str, object]:
    shipment = Shipment(
        carrier=ids["carrier"], tracking_number=ids["trackingNumber"], shipped_at=now
    )
    return {"shipment": shipment}


# --- The table, top to bottom -------------------------------------------------------
# Each stage's success leads to the phase of the stage below it; the last one's to DONE.

RESERVE: Final = Step(
    name="reserve-inventory",
    phase=Phase.RESERVING_INVENTORY,
    condition="InventoryReserved",
    request=_reserve,
    keeps=lambda answer, _spec: {"reservationId": str(answer["reservationId"])},
    fills=lambda ids, _now: {"reservation_id": ids["reservationId"]},
    done="InventoryReserved",
    rejected="OutOfStock",
    deadline=True,
    compensation=Compensation(
        "release-inventory", _release, done="InventoryReleased", undoes=lambda s: s.reservation_id
    ),
)
CAPTURE: Final = Step(
    name="capture-payment",
    phase=Phase.PROCESSING_PAYMENT,
    condition="PaymentCaptured",
    request=_charge,
    keeps=lambda answer, _spec: {"paymentId": str(answer["paymentId"])},
    fills=lambda ids, _now: {"payment_id": ids["paymentId"]},
    done="PaymentCaptured",
    rejected="PaymentDeclined",
    deadline=True,
    compensation=Compensation(
        "refund-payment", _refund, done="PaymentRefunded", undoes=lambda s: s.payment_id
    ),
)
PROCESS: Final = Gate(
    phase=Phase.CONFIRMED,
    waits_for=Action.PROCESS,
    note=Note("OrderProcessing", "Processing was requested."),
)
SHIP: Final = Step(
    name="ship",
    phase=Phase.PROCESSING,
    condition="Shipped",
    request=_ship,
    keeps=lambda answer, spec: {
        "carrier": str(spec.fulfillment.carrier if spec.fulfillment else ""),
        "trackingNumber": str(answer["trackingNumber"]),
    },
    fills=_shipment,
    done="OrderFulfilled",
    rejected="ShipmentRejected",
    # The buyer already paid and the client asked for the shipment: keep trying.
    deadline=False,
    # A shipment is not undone: once it starts, the order can no longer be cancelled.
    compensation=None,
    irrevocable=True,
    waits_for=Action.FULFILL,
    starts=_shipping_note,
)

SAGA: Final[tuple[Stage, ...]] = (RESERVE, CAPTURE, PROCESS, SHIP)
#: Where the happy path ends.
DONE: Final = Phase.FULFILLED

# --- What follows from the table ----------------------------------------------------

STEPS: Final = tuple(s for s in SAGA if isinstance(s, Step))
#: The compensations in the order they run: the reverse of the steps they undo.
COMPENSATIONS: Final = tuple((s, s.compensation) for s in reversed(STEPS) if s.compensation)
#: The happy path's phases, in order: Pending, each stage's phase, the last one's outcome.
FORWARD: Final = (Phase.PENDING, *(s.phase for s in SAGA), DONE)
TERMINAL: Final = frozenset({FORWARD[-1], Phase.FAILED, Phase.CANCELLED})
COMPENSATING: Final = frozenset({Phase.COMPENSATING, Phase.CANCELLING})
#: Ready (kstatus): the saga confirmed the order, whatever the client does next.
READY: Final = frozenset(FORWARD[FORWARD.index(Phase.CONFIRMED) :])


def then(stage: Stage) -> Phase:
    """The phase that ``stage``'s success leads to: the next stage's, or DONE after the last."""
    return FORWARD[FORWARD.index(stage.phase) + 1]


def stage_in(phase: Phase) -> Stage | None:
    """The stage that runs in ``phase``; None for Pending and the phases off the table."""
    return next((s for s in SAGA if s.phase == phase), None)


def step_named(name: str) -> Step | None:
    return next((s for s in STEPS if s.name == name), None)


def stage_waiting_for(action: Action) -> Stage | None:
    """The stage that waits for the client's ``action``."""
    return next((s for s in SAGA if s.waits_for == action), None)


def after(phase: Phase) -> frozenset[Phase]:
    """The happy path's phases from ``phase`` on."""
    return frozenset(FORWARD[FORWARD.index(phase) :])


def cancellable(phase: Phase, spec: OrderSpec) -> bool:
    """Whether a cancellation (or a deletion) may still interrupt the saga in ``phase``.

    Until an irrevocable step starts, or the saga ended or compensates already. An
    irrevocable step that waits for the client has not started while it waits.
    """
    if phase == Phase.PENDING:
        return True
    stage = stage_in(phase)
    if stage is None:
        return False  # terminal, or compensating already
    if isinstance(stage, Step) and stage.irrevocable:
        return stage.waits_for is not None and not requested(stage.waits_for, spec)
    return True


def idempotency_key(uid: str, name: str) -> str:
    """The key of every call of step or compensation ``name`` for the order ``uid``.

    Derived from the UID (not the name) so an order deleted and re-created under the
    same name is a new saga; the same for every attempt, so a retry, an operator
    restart or a second replica replays at the participant instead of repeating.
    """
    return f"{uid}/{name}"


def words(reason: str) -> str:
    """A CamelCase reason as the start of a sentence: InventoryReserved -> Inventory reserved."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", reason).capitalize()
