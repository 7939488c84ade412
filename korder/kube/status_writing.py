"""Writing an Order's status through the status subresource.

The operator writes every saga transition here, one merge patch each, before it
makes the next participant call: the status is the saga's durable state. The
answer is the whole object as stored, so the caller sees the newest spec (a
cancellation that arrived meanwhile) without another read.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from korder.domain.order import OrderStatus
from korder.kube import orders


async def write(
    client: AsyncClient, namespace: str, name: str, status: OrderStatus
) -> dict[str, Any]:
    """Merge ``status`` into the Order's status; return the Order as now stored."""
    body = {"status": status.model_dump(mode="json", by_alias=True, exclude_none=True)}
    patched = await client.patch(
        orders.Order.Status,
        name,
        body,
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    stored: dict[str, Any] = patched.to_dict()  # type: ignore[no-untyped-call]
    return stored
