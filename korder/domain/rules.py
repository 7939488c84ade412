"""Which client action an order's state allows, and which phases answer it.

Called by the facade's routes and the ``kubectl korder`` plugin before they write
an action into the spec, on the order as the write's resourceVersion saw it, so the
check and the write are one decision; and by the saga (:mod:`.saga`) for a retry,
which a ``kubectl apply`` may ask for whatever the phase. The operator enforces the
saga itself; these rules give the client a 409 with a reason instead of an order
that silently ignores its request. Everything
here reads from the saga's table (:mod:`.steps`): which stage waits for which
action, which phases a cancellation may interrupt. Pure code, tested without a
cluster.
"""

from __future__ import annotations

from typing import Final

from korder.domain import conditions, steps
from korder.domain.actions import Action, requested
from korder.domain.order import Carrier, Order, Phase

#: The end of a saga that did not go the happy way: it answers every action.
_ENDS: Final = frozenset({Phase.FAILED, Phase.CANCELLED})


def _answered_by(action: Action) -> frozenset[Phase]:
    stage = steps.stage_waiting_for(action)
    assert stage is not None, f"no stage waits for {action}"
    return steps.after(steps.then(stage)) | _ENDS


def _first_wait() -> Phase:
    return next(s.phase for s in steps.SAGA if s.waits_for is not None)


#: The phases that answer an action: a ``Prefer: wait`` ends when the order reaches one.
OUTCOMES: Final[dict[Action, frozenset[Phase]]] = {
    # A new order is answered once the saga needs the client again (Confirmed) or ended.
    Action.CREATE: steps.after(_first_wait()) | _ENDS,
    Action.PROCESS: _answered_by(Action.PROCESS),
    Action.FULFILL: _answered_by(Action.FULFILL),
    Action.CANCEL: frozenset({Phase.CANCELLED}) | steps.TERMINAL,
    # A resumed saga is answered where a new order is: Confirmed, or where it ended.
    Action.RETRY: steps.after(_first_wait()) | _ENDS,
}


def phase_of(order: Order) -> Phase:
    """The order's phase; Pending until the operator has written one."""
    return order.status.phase or Phase.PENDING


def refusal(action: Action, order: Order, carrier: Carrier | None = None) -> str | None:
    """Why ``action`` cannot be done on ``order`` now (a sentence for the client), or None."""
    spec, phase = order.spec, phase_of(order)
    if action is Action.UPDATE:
        if phase in steps.TERMINAL:
            return f"The order is {phase}; it can no longer be changed."
        if _irrevocable_requested(order):
            return "The order is being shipped; its addresses and notes can no longer change."
        if spec.cancel_requested:
            return "The order is being cancelled; it can no longer be changed."
        return None
    if action is Action.CANCEL:
        if phase in (Phase.CANCELLING, Phase.CANCELLED) or steps.cancellable(phase, spec):
            return None  # a cancellation, or the same one again
        if phase in (Phase.COMPENSATING, Phase.FAILED):
            return f"The order is {phase}: its steps are undone already; nothing to cancel."
        return "The order is fulfilled or being shipped; it can no longer be cancelled."
    if action is Action.RETRY:
        return _retry_refusal(order)
    stage = steps.stage_waiting_for(action)
    if stage is None:
        return None  # create: nothing to refuse on an order that is not there yet
    if spec.cancel_requested:
        return f"The order is being cancelled; it cannot be {action.done}."
    if phase != stage.phase:
        return f"Only a {stage.phase} order can be {action.done}; this one is {phase}."
    if action is Action.FULFILL and spec.fulfillment and spec.fulfillment.carrier != carrier:
        carrier_asked = spec.fulfillment.carrier
        return f"The order's fulfilment was already requested with carrier {carrier_asked}."
    return None


#: Actions that are not a press of a button on an existing order: it does not exist yet,
#: or the change needs a form of its own (the addresses and notes).
_NOT_BUTTONS: Final = frozenset({Action.CREATE, Action.UPDATE})


def available(order: Order) -> list[Action]:
    """The actions ``order`` allows now and has not asked for already, in :class:`Action`'s
    order: what a console offers. Every action the enum gains is judged by :func:`refusal`,
    so a new one is offered wherever its rule allows it."""
    return [
        action
        for action in Action
        if action not in _NOT_BUTTONS
        and not _under_way(action, order)
        and refusal(action, order) is None
    ]


def _under_way(action: Action, order: Order) -> bool:
    """The order does ``action`` already: its spec asks for it, or (a ``kubectl delete``,
    which sets no spec field) it is being cancelled."""
    cancelling = action is Action.CANCEL and phase_of(order) in (Phase.CANCELLING, Phase.CANCELLED)
    return cancelling or requested(action, order.spec)


def _retry_refusal(order: Order) -> str | None:
    """Why the saga cannot be resumed, or None: only a stalled saga can be.

    Retryable: a forward step stopped past the deadline on transient failures (a
    participant that was down or slow; it resumes with a fresh deadline), and a
    compensation that keeps failing past the deadline (tried again at once). Not:
    a permanent answer (declined, out of stock), which was compensated and would be
    answered the same way again, nor a compensation the participant refused.
    """
    status, phase = order.status, phase_of(order)
    if conditions.stopped(status) is not None:
        if order.spec.cancel_requested or order.deleting:
            return "The order is being cancelled; it cannot be retried."
        return None
    stall = conditions.stalled_reason(status)
    if phase in steps.COMPENSATING and stall == conditions.COMPENSATION_RETRYING:
        return None
    left = conditions.not_undone(status)
    if left:
        return (
            f"The order is {phase} and not everything was undone ({left}): the participant "
            "refused the compensation, so a retry cannot undo it; settle it at the participant."
        )
    if phase == Phase.FAILED:
        why = order.status.failure_reason or "the saga failed"
        return (
            f"The order is Failed ({why}): a permanent failure, compensated, that a retry "
            "would meet again. Place a new order instead."
        )
    if phase in steps.TERMINAL:
        return f"The order is {phase}; there is nothing to retry."
    if phase in steps.COMPENSATING:
        return (
            f"The order is {phase}: the saga is undoing its steps and retries by itself; "
            "it can be retried if it stalls (past its deadline)."
        )
    return f"The order is {phase} and not stalled; there is nothing to retry."


def _irrevocable_requested(order: Order) -> bool:
    """Whether the client asked for a step that cannot be undone (the shipment)."""
    return any(
        s.irrevocable and s.waits_for is not None and requested(s.waits_for, order.spec)
        for s in steps.STEPS
    )


def settled(action: Action, order: Order) -> bool:
    """True when the saga has answered ``action``: the order is in one of its outcomes."""
    return phase_of(order) in OUTCOMES[action]
