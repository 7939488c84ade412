"""The saga state machine of an Order: what to do next, and what an outcome means.

Pure code: no Kubernetes, no HTTP, no clock of its own. The operator
(:mod:`korder.operator.reconciling`) feeds it the order it observed and the outcome
of each participant call, and writes back the status it returns; the unit tests
drive it the same way without a cluster.

Two functions make the machine:

- :func:`next_move` looks at an order and says what comes next: a :class:`Call` to
  a participant, an :class:`Advance` (a new status to write, no call needed), or
  :class:`Idle` (nothing to do until the spec changes);
- :func:`apply` takes the outcome of a :class:`Call` and returns the new status.

The steps and compensations are the two tables :data:`STEPS` and
:data:`COMPENSATIONS` below; they read top to bottom.

Each step's condition in ``status.conditions`` is the step's durable state:
absent (not started), ``Unknown`` (started: it may or may not have happened at the
participant), ``True`` (done), ``False`` (rejected, or undone by its compensation).
A step that is ``Unknown`` when compensation starts is *in doubt*: the machine
settles it first by repeating the same call (the idempotency key makes that a
replay if the first one arrived), then undoes it if it turned out done. That is
how a cancellation that lands while a step is in flight, or an operator killed
between a call and its status write, never leaves a stray reservation or charge.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from korder.domain import money
from korder.domain.order import (
    HISTORY_LIMIT,
    Condition,
    ConditionStatus,
    HistoryEntry,
    OrderSpec,
    OrderStatus,
    Phase,
    Shipment,
)


class Action(StrEnum):
    """What the operator asks a participant to do. The value ends the idempotency key."""

    RESERVE_INVENTORY = "reserve-inventory"
    CAPTURE_PAYMENT = "capture-payment"
    SHIP = "ship"
    REFUND_PAYMENT = "refund-payment"
    RELEASE_INVENTORY = "release-inventory"


# Condition types. The three kstatus ones, then one per step.
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
INVENTORY_RESERVED: Final = "InventoryReserved"
PAYMENT_CAPTURED: Final = "PaymentCaptured"
SHIPPED: Final = "Shipped"


@dataclass(frozen=True)
class Step:
    """A forward step: in ``phase`` the operator runs ``action``; success leads to ``then``."""

    phase: Phase
    action: Action
    condition: str
    then: Phase
    done_reason: str  # the record (Event reason) of success
    rejected_reason: str  # the record of a permanent failure
    deadline: bool  # whether the saga's deadline bounds this step's retries


@dataclass(frozen=True)
class Compensation:
    """Undoes ``undoes`` when its condition says the step happened (or may have)."""

    action: Action
    undoes: Step
    done_reason: str


# The saga, top to bottom. Confirmed sits between the two tables' second and third
# rows and waits for spec.processRequested; Processing waits for spec.fulfillment.
RESERVE: Final = Step(
    Phase.RESERVING_INVENTORY,
    Action.RESERVE_INVENTORY,
    INVENTORY_RESERVED,
    then=Phase.PROCESSING_PAYMENT,
    done_reason="InventoryReserved",
    rejected_reason="OutOfStock",
    deadline=True,
)
CAPTURE: Final = Step(
    Phase.PROCESSING_PAYMENT,
    Action.CAPTURE_PAYMENT,
    PAYMENT_CAPTURED,
    then=Phase.CONFIRMED,
    done_reason="PaymentCaptured",
    rejected_reason="PaymentDeclined",
    deadline=True,
)
SHIP: Final = Step(
    Phase.PROCESSING,
    Action.SHIP,
    SHIPPED,
    then=Phase.FULFILLED,
    done_reason="OrderFulfilled",
    rejected_reason="ShipmentRejected",
    # The buyer already paid and the operator asked for the shipment: keep trying.
    deadline=False,
)
STEPS: Final = (RESERVE, CAPTURE, SHIP)

# Compensations in the order they run: the reverse of the steps they undo. A
# shipment is not undone: once shipped, an order can no longer be cancelled.
COMPENSATIONS: Final = (
    Compensation(Action.REFUND_PAYMENT, CAPTURE, done_reason="PaymentRefunded"),
    Compensation(Action.RELEASE_INVENTORY, RESERVE, done_reason="InventoryReleased"),
)

#: Phases a cancellation (or a deletion) may interrupt; Processing only while
#: no fulfilment was requested.
CANCELLABLE: Final = frozenset(
    {
        Phase.PENDING,
        Phase.RESERVING_INVENTORY,
        Phase.PROCESSING_PAYMENT,
        Phase.CONFIRMED,
        Phase.PROCESSING,
    }
)
TERMINAL: Final = frozenset({Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED})
COMPENSATING: Final = frozenset({Phase.COMPENSATING, Phase.CANCELLING})
READY_PHASES: Final = frozenset({Phase.CONFIRMED, Phase.PROCESSING, Phase.FULFILLED})


def idempotency_key(uid: str, action: Action) -> str:
    """The key of every call of ``action`` for the order ``uid``, first try or retry alike.

    Derived from the UID (not the name) so an order deleted and re-created under the
    same name is a new saga; the same for every attempt, so a retry, an operator
    restart or a second replica replays at the participant instead of repeating.
    """
    return f"{uid}/{action.value}"


@dataclass(frozen=True)
class Policy:
    """The saga's knobs, from the settings."""

    deadline: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Order:
    """What the machine needs to know of an Order resource."""

    spec: OrderSpec
    status: OrderStatus
    generation: int
    created_at: datetime
    deleting: bool = False


# --- Moves: what next_move answers -------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One transition, for status.history and a Kubernetes Event."""

    reason: str
    message: str
    warning: bool = False
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Advance:
    """Write ``status``; ``records`` say what happened. ``retry`` asks to come back later."""

    status: OrderStatus
    records: tuple[Record, ...] = ()
    retry: bool = False


@dataclass(frozen=True)
class Call:
    """Ask a participant to do ``action`` for the order."""

    action: Action


@dataclass(frozen=True)
class Idle:
    """Nothing to do until the spec changes (or ever, in a terminal phase)."""

    reason: str


Move = Advance | Call | Idle


# --- Outcomes: what the operator feeds apply ---------------------------------------


@dataclass(frozen=True)
class Succeeded:
    """The participant did it. ``data`` holds its ids (reservationId, paymentId, ...)."""

    action: Action
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A permanent, business answer: out of stock, declined. Retrying cannot help."""

    action: Action
    reason: str


@dataclass(frozen=True)
class Failed:
    """A transient failure: timeout, 5xx, connection refused. Retrying may help."""

    action: Action
    reason: str


@dataclass(frozen=True)
class Deferred:
    """The call was not made: the participant's circuit breaker is open."""

    action: Action
    reason: str


Outcome = Succeeded | Rejected | Failed | Deferred


# --- The machine -------------------------------------------------------------------


def next_move(order: Order, now: datetime) -> Move:
    """What the operator should do next for ``order``."""
    move = _next_move(order, now)
    if isinstance(move, Idle) and order.status.observed_generation != order.generation:
        # A spec change with nothing to do (new notes, say) is still observed, so
        # kstatus and `kubectl wait` see conditions about the current generation.
        return _advance(order, order.status, now)
    return move


def _next_move(order: Order, now: datetime) -> Move:
    status, spec, phase = order.status, order.spec, order.status.phase
    wants_cancel = spec.cancel_requested or order.deleting

    if phase is None:
        total = money.order_total((item.price, item.quantity) for item in spec.items)
        admitted = status.model_copy(update={"phase": Phase.PENDING, "total": total})
        return _advance(order, admitted, now, Record("OrderAccepted", f"Order total {total}."))

    if wants_cancel and _cancellable(order):
        return _advance(
            order,
            status.model_copy(update={"phase": Phase.CANCELLING}),
            now,
            Record("CancellationRequested", _cancel_message(order)),
        )
    settled = phase in COMPENSATING or phase == Phase.CANCELLED
    if spec.cancel_requested and not settled and not _cancel_rejected(status):
        # Too late to cancel (shipped or shipping, or already failed): say so once.
        return _advance(
            order,
            status,
            now,
            Record(
                "CancellationRejected",
                f"The order cannot be cancelled in phase {phase}.",
                warning=True,
            ),
        )

    if phase == Phase.PENDING:
        return _advance(
            order,
            status.model_copy(update={"phase": RESERVE.phase}),
            now,
            Record("SagaStarted", "Reserving inventory."),
        )
    if phase in (RESERVE.phase, CAPTURE.phase):
        step = _step_in(phase)
        if _condition(status, step.condition) is None:
            # The write-ahead mark: from here on the step may have happened, so a
            # cancellation settles it before compensating. Decided on a view of the
            # spec in which no cancellation was requested.
            return _advance(order, _start(status, step, order.generation, now), now)
        return Call(step.action)
    if phase == Phase.CONFIRMED:
        if spec.process_requested:
            return _advance(
                order,
                status.model_copy(update={"phase": Phase.PROCESSING}),
                now,
                Record("OrderProcessing", "Processing was requested."),
            )
        return Idle("confirmed; waiting for spec.processRequested")
    if phase == Phase.PROCESSING:
        if spec.fulfillment is None:
            return Idle("processing; waiting for spec.fulfillment")
        if _condition(status, SHIPPED) is None:
            carrier = str(spec.fulfillment.carrier)
            return _advance(
                order,
                _start(status, SHIP, order.generation, now),
                now,
                Record(
                    "FulfillmentRequested", f"Shipping with {carrier}.", data={"carrier": carrier}
                ),
            )
        return Call(SHIP.action)
    if phase in COMPENSATING:
        pending = _pending_compensation(status)
        if pending is not None:
            return Call(pending)
        return _finish_compensation(order, now)
    return Idle(f"{phase} is final")


def apply(order: Order, outcome: Outcome, policy: Policy, now: datetime) -> Advance:
    """The new status after ``outcome`` of a call that :func:`next_move` asked for.

    An outcome the order no longer waits for (the same success delivered twice, a
    late answer after the order moved on) changes nothing.
    """
    expected = next_move(order, now)
    if not isinstance(expected, Call) or expected.action != outcome.action:
        return Advance(order.status)
    phase = order.status.phase
    assert phase is not None  # a Call is only ever asked of an admitted order
    if phase in COMPENSATING:
        return _apply_compensating(order, outcome, policy, now)
    return _apply_forward(order, _step_in(phase), outcome, policy, now)


def _apply_forward(
    order: Order, step: Step, outcome: Outcome, policy: Policy, now: datetime
) -> Advance:
    status, gen = order.status, order.generation
    if isinstance(outcome, Succeeded):
        done = _complete(status, step, outcome, gen, now)
        records = [_done_record(step, outcome)]
        if step.then == Phase.CONFIRMED:
            records.append(Record("OrderConfirmed", "Inventory reserved and payment captured."))
        # The next step is not marked started here: this outcome was decided on the
        # view of the order taken before the call, which may miss a cancellation.
        done = done.model_copy(update={"phase": step.then})
        return _advance(order, done, now, *records)
    if isinstance(outcome, Rejected):
        failed = _set(
            status, step.condition, ConditionStatus.FALSE, "Rejected", outcome.reason, gen, now
        )
        failed = failed.model_copy(
            update={"phase": Phase.COMPENSATING, "failure_reason": outcome.reason[:1024]}
        )
        return _advance(
            order, failed, now, Record(step.rejected_reason, outcome.reason, warning=True)
        )
    # An open breaker defers the step without a call: it never fails the order.
    if step.deadline and isinstance(outcome, Failed) and _past_deadline(order, policy, now):
        reason = (
            f"saga deadline of {_seconds(policy.deadline)} exceeded; last error: {outcome.reason}"
        )
        # The step stays Unknown: compensation settles it before undoing anything.
        failing = status.model_copy(
            update={"phase": Phase.COMPENSATING, "failure_reason": reason[:1024]}
        )
        return _advance(order, failing, now, Record("DeadlineExceeded", reason, warning=True))
    return _retry(order, step.condition, outcome, policy, now)


def _apply_compensating(order: Order, outcome: Outcome, policy: Policy, now: datetime) -> Advance:
    status, gen = order.status, order.generation
    settling = _step_of(outcome.action)
    if settling is not None:
        # Settling a step in doubt: its own outcome, but no phase change.
        if isinstance(outcome, Succeeded):
            done = _complete(status, settling, outcome, gen, now)
            return _advance(order, done, now, _done_record(settling, outcome))
        if isinstance(outcome, Rejected):
            never = _set(
                status,
                settling.condition,
                ConditionStatus.FALSE,
                "Rejected",
                outcome.reason,
                gen,
                now,
            )
            return _advance(order, never, now)
        return _retry(order, settling.condition, outcome, policy, now)
    comp = next(c for c in COMPENSATIONS if c.action == outcome.action)
    if isinstance(outcome, Succeeded):
        undone = _set(
            status,
            comp.undoes.condition,
            ConditionStatus.FALSE,
            "Compensated",
            f"{_words(comp.done_reason)}.",
            gen,
            now,
        )
        return _advance(order, undone, now, Record(comp.done_reason, _undo_message(comp, status)))
    if isinstance(outcome, Rejected):
        # The participant says there is nothing to undo (it lost or never had it):
        # nothing more can be done by retrying, so move on and leave a warning.
        undone = _set(
            status,
            comp.undoes.condition,
            ConditionStatus.FALSE,
            "CompensationRejected",
            outcome.reason,
            gen,
            now,
        )
        return _advance(
            order,
            undone,
            now,
            Record("CompensationRejected", f"{comp.action}: {outcome.reason}", warning=True),
        )
    return _retry(order, comp.undoes.condition, outcome, policy, now)


def _retry(
    order: Order, condition: str, outcome: Failed | Deferred, policy: Policy, now: datetime
) -> Advance:
    """Stay in the phase; the step's condition says why and the operator comes back later."""
    gen = order.generation
    reason = "CircuitOpen" if isinstance(outcome, Deferred) else "Retrying"
    # The condition keeps its status (Unknown for a step in flight, True for a step
    # whose compensation is retried): only its reason and message say why we wait.
    current = _condition(order.status, condition)
    value = current.status if current is not None else ConditionStatus.UNKNOWN
    message = f"{outcome.action}: {outcome.reason}"
    status = _set(order.status, condition, value, reason, message, gen, now)
    if order.status.phase in COMPENSATING and _past_deadline(order, policy, now):
        # Compensation never gives up, but past the deadline a person should look.
        status = _set(
            status,
            STALLED,
            ConditionStatus.TRUE,
            "CompensationRetrying",
            f"{outcome.action} keeps failing: {outcome.reason}",
            gen,
            now,
        )
    return Advance(_with_summary(status, gen, now, keep_stalled=True), retry=True)


# --- Helpers -----------------------------------------------------------------------


def _past_deadline(order: Order, policy: Policy, now: datetime) -> bool:
    """Whether the saga has run longer than the policy allows.

    The clock starts when the saga started (its SagaStarted record), not when the
    Order was created: an order applied while the operator was down gets its full
    time. Without that record (a history cut short), creation is the start.
    """
    started = next(
        (_parse_rfc3339(e.time) for e in order.status.history or () if e.type == "SagaStarted"),
        order.created_at,
    )
    return now >= started + policy.deadline


def _step_in(phase: Phase) -> Step:
    return next(s for s in STEPS if s.phase == phase)


def _step_of(action: Action) -> Step | None:
    return next((s for s in STEPS if s.action == action), None)


def _cancellable(order: Order) -> bool:
    phase = order.status.phase
    if phase == Phase.PROCESSING:
        return order.spec.fulfillment is None
    return phase in CANCELLABLE


def _cancel_rejected(status: OrderStatus) -> bool:
    return any(e.type == "CancellationRejected" for e in status.history or ())


def _cancel_message(order: Order) -> str:
    why = "the order is being deleted" if order.deleting else "cancellation was requested"
    return f"Cancelling: {why}; completed steps are compensated."


def _pending_compensation(status: OrderStatus) -> Action | None:
    """The next call of the compensation: settle a step in doubt, or undo a done one."""
    for comp in COMPENSATIONS:
        cond = _condition(status, comp.undoes.condition)
        if cond is None or cond.status == ConditionStatus.FALSE:
            continue
        if cond.status == ConditionStatus.UNKNOWN:
            return comp.undoes.action
        return comp.action
    return None


def _finish_compensation(order: Order, now: datetime) -> Advance:
    status = order.status
    if status.phase == Phase.CANCELLING:
        return _advance(
            order,
            status.model_copy(update={"phase": Phase.CANCELLED}),
            now,
            Record("OrderCancelled", "The order was cancelled; completed steps were undone."),
        )
    reason = status.failure_reason or "the saga failed"
    return _advance(
        order,
        status.model_copy(update={"phase": Phase.FAILED}),
        now,
        Record("OrderFailed", reason, warning=True),
    )


def _start(status: OrderStatus, step: Step, gen: int, now: datetime) -> OrderStatus:
    return _set(status, step.condition, ConditionStatus.UNKNOWN, "InProgress", "", gen, now)


def _complete(
    status: OrderStatus, step: Step, outcome: Succeeded, gen: int, now: datetime
) -> OrderStatus:
    data = outcome.data
    if step is RESERVE:
        update: dict[str, object] = {"reservation_id": data["reservationId"]}
    elif step is CAPTURE:
        update = {"payment_id": data["paymentId"]}
    else:
        update = {
            "shipment": Shipment(
                carrier=data["carrier"],
                tracking_number=data["trackingNumber"],
                shipped_at=_rfc3339(now),
            )
        }
    done = _set(status, step.condition, ConditionStatus.TRUE, "Succeeded", "", gen, now)
    return done.model_copy(update=update)


def _done_record(step: Step, outcome: Succeeded) -> Record:
    data = dict(outcome.data)
    what = ", ".join(f"{k} {v}" for k, v in sorted(data.items()))
    return Record(step.done_reason, f"{_words(step.done_reason)}: {what}.", data=data)


def _undo_message(comp: Compensation, status: OrderStatus) -> str:
    ref = status.payment_id if comp.undoes is CAPTURE else status.reservation_id
    return f"{_words(comp.done_reason)}: {ref}."


def _words(reason: str) -> str:
    """A CamelCase reason as the start of a sentence: InventoryReserved -> Inventory reserved."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", reason).capitalize()


def _advance(order: Order, status: OrderStatus, now: datetime, *records: Record) -> Advance:
    """A new status with the records appended to its history and the summary conditions."""
    gen = order.generation
    phase = status.phase
    assert phase is not None
    entries = list(status.history or ())
    for record in records:
        entries.append(
            HistoryEntry(
                type=record.reason,
                time=_rfc3339(now),
                phase=phase,
                message=record.message[:1024],
                data=dict(record.data) or None,
            )
        )
    status = status.model_copy(update={"history": entries[-HISTORY_LIMIT:]})
    return Advance(_with_summary(status, gen, now), tuple(records))


def _with_summary(
    status: OrderStatus, gen: int, now: datetime, keep_stalled: bool = False
) -> OrderStatus:
    """Ready, Reconciling and Stalled (kstatus) as the phase implies; observedGeneration."""
    phase = status.phase
    assert phase is not None
    ready = phase in READY_PHASES
    status = _set(
        status,
        READY,
        ConditionStatus.TRUE if ready else ConditionStatus.FALSE,
        str(phase),
        "The order is confirmed." if ready else f"The order is {phase}.",
        gen,
        now,
    )
    idle = (
        phase in TERMINAL
        or (phase == Phase.CONFIRMED)
        or (phase == Phase.PROCESSING and _condition(status, SHIPPED) is None)
    )
    status = _set(
        status,
        RECONCILING,
        ConditionStatus.FALSE if idle else ConditionStatus.TRUE,
        str(phase),
        "" if idle else f"The saga is at {phase}.",
        gen,
        now,
    )
    if phase == Phase.FAILED:
        # kstatus reads Stalled=True as "failed": tools waiting for Ready can stop.
        why = status.failure_reason or ""
        status = _set(status, STALLED, ConditionStatus.TRUE, "OrderFailed", why, gen, now)
    elif not keep_stalled:
        status = _set(status, STALLED, ConditionStatus.FALSE, str(phase), "", gen, now)
    return status.model_copy(update={"observed_generation": gen})


def _condition(status: OrderStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions or () if c.type == type_), None)


def _set(
    status: OrderStatus,
    type_: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    gen: int,
    now: datetime,
) -> OrderStatus:
    """Set one condition; lastTransitionTime moves only when its status changes."""
    old = _condition(status, type_)
    since = old.last_transition_time if old is not None and old.status == value else _rfc3339(now)
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message[:32768],
        observed_generation=gen,
        last_transition_time=since,
    )
    others = [c for c in status.conditions or () if c.type != type_]
    return status.model_copy(update={"conditions": _ordered([*others, new])})


_CONDITION_ORDER: Final = (
    READY,
    RECONCILING,
    STALLED,
    INVENTORY_RESERVED,
    PAYMENT_CAPTURED,
    SHIPPED,
)


def _ordered(conditions: list[Condition]) -> list[Condition]:
    # A stable order keeps `kubectl get -o yaml` diffs readable.
    return sorted(conditions, key=lambda c: _CONDITION_ORDER.index(c.type))


def _rfc3339(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _seconds(delta: timedelta) -> str:
    return f"{int(delta.total_seconds())}s"
