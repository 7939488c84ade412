"""What a client may ask of an order: the REST writes, and the spec field each one sets.

Actions are desired state: processing, fulfilment and cancellation are fields of
the spec, so a ``kubectl apply`` and a REST call take the same path. The saga's
table (:mod:`.steps`) says which stage waits for which action; the rules
(:mod:`.rules`) say which phase allows it. Pure code.
"""

from __future__ import annotations

from enum import StrEnum

from korder.domain.order import Carrier, FulfillmentRequest, OrderSpec


class Action(StrEnum):
    """A client's write to an order. The value is the REST operation's name."""

    CREATE = "create"
    UPDATE = "update"
    PROCESS = "process"
    FULFILL = "fulfill"
    CANCEL = "cancel"

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
}


def requested(action: Action, spec: OrderSpec) -> bool:
    """Whether ``spec`` asks for ``action`` (the fields that cannot be withdrawn)."""
    if action is Action.PROCESS:
        return spec.process_requested
    if action is Action.FULFILL:
        return spec.fulfillment is not None
    if action is Action.CANCEL:
        return spec.cancel_requested
    return False


def request(action: Action, spec: OrderSpec, carrier: Carrier | None = None) -> OrderSpec:
    """``spec`` with ``action`` asked for: the one field the action sets."""
    if action is Action.PROCESS:
        return spec.model_copy(update={"process_requested": True})
    if action is Action.FULFILL:
        assert carrier is not None, "a fulfilment names its carrier"
        return spec.model_copy(update={"fulfillment": FulfillmentRequest(carrier=carrier)})
    if action is Action.CANCEL:
        return spec.model_copy(update={"cancel_requested": True})
    raise ValueError(f"{action} is not requested through a spec field")
