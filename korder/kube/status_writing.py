"""Writing an Order's status through the status subresource, guarded by its resourceVersion.

The operator writes every saga transition here, one merge patch each, before it
makes the next participant call: the status is the saga's durable state. Each
write carries the resourceVersion the saga decided on, so the API server refuses
it (:class:`~korder.kube.orders.Conflict`) when the order changed since: a
cancellation that arrived meanwhile, or another operator replica that took over
and moved the saga on. A deposed replica can then never overwrite the new
leader's status; the caller re-reads and decides again (a participant call it
repeats is a replay, by its idempotency key). The answer is the whole object as
stored, so the caller sees the newest spec without another read.
"""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.types import PatchType

from korder.domain.order import Order, OrderStatus
from korder.kube import orders


async def write(client: AsyncClient, order: Order, status: OrderStatus) -> Order:
    """Merge ``status`` into ``order``'s status if it is unchanged since it was read."""
    body: dict[str, object] = {
        "status": status.model_dump(mode="json", by_alias=True, exclude_none=True)
    }
    if order.metadata.resource_version:
        body["metadata"] = {"resourceVersion": order.metadata.resource_version}
    with orders.translated():
        patched = await client.patch(
            orders.OrderResource.Status,
            order.metadata.name,
            body,
            namespace=order.metadata.namespace,
            patch_type=PatchType.MERGE,
        )
    return orders.to_order(patched)
