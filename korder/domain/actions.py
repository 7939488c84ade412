"""What a client may ask of an order: the REST writes, and the spec field each one sets.

Actions are desired state: processing, fulfilment, cancellation and a retry are
fields of the spec, so a ``kubectl apply``, a REST call and the ``kubectl korder``
plugin take the same path: :func:`request` is the one place that sets them. The saga's
table (:mod:`.steps`) says which stage waits for which action; the rules
(:mod:`.rules`) say which phase allows it. Pure code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from korder.domain.order import (
    Carrier,
    FulfillmentRequest,
    Order,
    OrderSpec,
    RetryRequest,
    timestamp,
)


class Action(StrEnum):
    """A client's write to an order. The value is the REST operation's name."""

    CREATE = "create"
    UPDATE = "update"
    PROCESS = "process"
    FULFILL = "fulfill"
    CANCEL = "cancel"
    RETRY = "retry"

    @property
    def done(self) -> str:
        """The past participle, for messages: processed, fulfilled, cancelled."""
        return _DONE[self]


_DONE = {
    Action.CREATE: "created",
    Action.UPDATE: "changed",
    Action.PROCESS: "processed",
    Action.FULFILL: "fulfilled",
    Action.CANCEL: "cancelled",
    Action.RETRY: "retried",
}


def requested(action: Action, spec: OrderSpec) -> bool:
    """Whether ``spec`` asks for ``action`` (the fields that cannot be withdrawn)."""
    if action is Action.PROCESS:
        return spec.process_requested
    if action is Action.FULFILL:
        return spec.fulfillment is not None
    if action is Action.CANCEL:
        return spec.cancel_requested
    if action is Action.RETRY:
        return spec.retry is not None
    return False


def retry_pending(order: Order) -> bool:
    """Whether the spec asks for a retry that the operator has not acted on yet."""
    asked = order.spec.retry
    done = order.status.last_retry
    return asked is not None and asked.attempt > (done.attempt if done else 0)


def request(
    action: Action,
    order: Order,
    *,
    carrier: Carrier | None = None,
    by: str | None = None,
    now: datetime | None = None,
) -> OrderSpec:
    """``order``'s spec with ``action`` asked for: the one field the action sets.

    A retry raises ``spec.retry.attempt`` by one, naming ``by`` and ``now``; while an
    earlier retry waits for the operator, asking again is the same request (nothing
    changes), so two people pressing retry at once resume the saga once.
    """
    spec = order.spec
    if action is Action.RETRY:
        if retry_pending(order):
            return spec
        last = max(spec.retry.attempt if spec.retry else 0, _acted_on(order))
        asked = RetryRequest(
            attempt=last + 1, requested_by=by, requested_at=timestamp(now) if now else None
        )
        return spec.model_copy(update={"retry": asked})
    if action is Action.PROCESS:
        return spec.model_copy(update={"process_requested": True})
    if action is Action.FULFILL:
        assert carrier is not None, "a fulfilment names its carrier"
        return spec.model_copy(update={"fulfillment": FulfillmentRequest(carrier=carrier)})
    if action is Action.CANCEL:
        return spec.model_copy(update={"cancel_requested": True})
    raise ValueError(f"{action} is not requested through a spec field")


def _acted_on(order: Order) -> int:
    done = order.status.last_retry
    return done.attempt if done else 0
