"""Which REST action an order's state allows, and which phases end a wait for it.

Called by the routes before they write an action into the spec, on the order as
the write's resourceVersion saw it, so the check and the write are one decision.
The operator enforces the saga itself; these rules give the client a 409 with a
reason instead of an order that silently ignores its request. Which phases a
cancellation may interrupt is the saga's own table (:data:`saga.CANCELLABLE`). Pure code, tested
without a cluster.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from korder.domain import saga
from korder.domain.order import Phase


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    PROCESS = "process"
    FULFILL = "fulfill"
    CANCEL = "cancel"


_TERMINAL = frozenset({Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED})

#: The phases that answer an action: a ``Prefer: wait`` ends when the order reaches one.
OUTCOMES: dict[Action, frozenset[Phase]] = {
    Action.CREATE: frozenset(
        {Phase.CONFIRMED, Phase.PROCESSING, Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED}
    ),
    Action.PROCESS: frozenset({Phase.PROCESSING, Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED}),
    Action.FULFILL: frozenset({Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED}),
    Action.CANCEL: frozenset({Phase.CANCELLED, Phase.FAILED, Phase.FULFILLED}),
}


def phase_of(order: dict[str, Any]) -> Phase:
    """The order's phase; Pending until the operator has written one."""
    return Phase((order.get("status") or {}).get("phase") or Phase.PENDING)


def refusal(action: Action, order: dict[str, Any], carrier: str | None = None) -> str | None:
    """Why ``action`` cannot be done on ``order`` now (a sentence for the client), or None."""
    spec = order.get("spec") or {}
    phase = phase_of(order)
    fulfilment = (spec.get("fulfillment") or {}).get("carrier")
    cancelled = bool(spec.get("cancelRequested"))
    if action is Action.UPDATE:
        if phase in _TERMINAL:
            return f"The order is {phase}; it can no longer be changed."
        if fulfilment:
            return "The order is being shipped; its addresses and notes can no longer change."
        if cancelled:
            return "The order is being cancelled; it can no longer be changed."
        return None
    if action is Action.PROCESS:
        if cancelled:
            return "The order is being cancelled; it cannot be processed."
        if phase is not Phase.CONFIRMED:
            return f"Only a Confirmed order can be processed; this one is {phase}."
        return None
    if action is Action.FULFILL:
        if cancelled:
            return "The order is being cancelled; it cannot be fulfilled."
        if phase is not Phase.PROCESSING:
            return f"Only a Processing order can be fulfilled; this one is {phase}."
        if fulfilment and fulfilment != carrier:
            return f"The order's fulfilment was already requested with carrier {fulfilment}."
        return None
    if action is Action.CANCEL:
        if phase in (Phase.CANCELLING, Phase.CANCELLED):
            return None  # the same cancellation again
        if phase is Phase.FULFILLED or fulfilment:
            return "The order is fulfilled or being shipped; it can no longer be cancelled."
        if phase not in saga.CANCELLABLE:
            return f"The order is {phase}: its steps are undone already; nothing to cancel."
        return None
    return None


def settled(action: Action, order: dict[str, Any]) -> bool:
    """True when the saga has answered ``action``: the order is in one of its outcomes."""
    return phase_of(order) in OUTCOMES[action]
