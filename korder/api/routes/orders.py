"""``/orders``: create and read orders."""

from __future__ import annotations

from fastapi import APIRouter, Response
from lightkube.core.exceptions import ApiError

from korder.api.deps import Kube
from korder.api.problems import Problem
from korder.api.schemas import CreateOrder, OrderView
from korder.kube import orders

router = APIRouter(prefix="/orders", tags=["orders"])


@router.post("", status_code=201, response_model=OrderView, operation_id="createOrder")
async def create_order(body: CreateOrder, kube: Kube, response: Response) -> OrderView:
    """Create an Order resource; the operator takes it from there."""
    created = await orders.create(kube, orders.manifest(body.to_spec(), generate_name="ord-"))
    view = OrderView.from_resource(created)
    response.headers["Location"] = f"/orders/{view.id}"
    return view


@router.get("/{order_id}", response_model=OrderView, operation_id="getOrder")
async def get_order(order_id: str, kube: Kube) -> OrderView:
    """The order and where its saga is."""
    try:
        return OrderView.from_resource(await orders.get(kube, order_id))
    except ApiError as exc:
        if exc.status.code == 404:
            raise Problem(
                404, "not-found", "Order not found", f"There is no order {order_id!r}."
            ) from exc
        raise
