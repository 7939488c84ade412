"""Performing one saga call: the saga's Action as an HTTP call to a participant.

Called by :mod:`.reconciling` for each :class:`korder.domain.saga.Call`. It builds
the request from the order (the UID as the participants' ``orderId``, the
idempotency key from the UID and the step), makes it through the participant
clients, and translates their result into the saga's :data:`~korder.domain.saga.Outcome`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from korder.domain import saga
from korder.participant_clients import calls


@dataclass(frozen=True)
class Performed:
    outcome: saga.Outcome
    #: For a deferred call: when the breaker lets a trial through.
    retry_after: float | None = None


async def perform(
    participants: calls.Participants, action: saga.Action, uid: str, order: saga.Order
) -> Performed:
    key = saga.idempotency_key(uid, action)
    spec, status = order.spec, order.status
    if action == saga.Action.RESERVE_INVENTORY:
        items = [{"productId": i.product_id, "quantity": i.quantity} for i in spec.items]
        result = await participants.inventory.post(
            "reservations", key, {"orderId": uid, "items": items}
        )
    elif action == saga.Action.CAPTURE_PAYMENT:
        body = {
            "orderId": uid,
            "amount": status.total,
            "currency": spec.currency,
            "paymentMethod": str(spec.payment_method),
        }
        result = await participants.payment.post("charges", key, body)
    elif action == saga.Action.SHIP:
        assert spec.fulfillment is not None  # the saga ships only once it is requested
        body = {"orderId": uid, "carrier": str(spec.fulfillment.carrier)}
        result = await participants.shipping.post("shipments", key, body)
    elif action == saga.Action.REFUND_PAYMENT:
        result = await participants.payment.post(f"charges/{status.payment_id}/refund", key)
    else:
        path = f"reservations/{status.reservation_id}/release"
        result = await participants.inventory.post(path, key)
    return _outcome(action, result, carrier=spec.fulfillment.carrier if spec.fulfillment else None)


def _outcome(action: saga.Action, result: calls.Result, carrier: str | None) -> Performed:
    if isinstance(result, calls.Done):
        return Performed(saga.Succeeded(action, _ids(action, result.body, carrier)))
    if isinstance(result, calls.Refused):
        return Performed(saga.Rejected(action, f"{result.error}: {result.detail}"))
    if isinstance(result, calls.Unavailable):
        return Performed(saga.Failed(action, result.reason))
    return Performed(saga.Deferred(action, result.reason), retry_after=result.retry_after)


def _ids(action: saga.Action, body: dict[str, Any], carrier: str | None) -> dict[str, str]:
    """The ids the saga keeps from a participant's answer."""
    if action == saga.Action.RESERVE_INVENTORY:
        return {"reservationId": str(body["reservationId"])}
    if action == saga.Action.CAPTURE_PAYMENT:
        return {"paymentId": str(body["paymentId"])}
    if action == saga.Action.SHIP:
        return {"carrier": str(carrier), "trackingNumber": str(body["trackingNumber"])}
    return {}
