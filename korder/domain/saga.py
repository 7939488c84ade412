"""The saga state machine of an Order.

Pure code: no Kubernetes, no HTTP. The operator feeds it what it observed and
applies what it returns. This first cut admits a new order (``Pending``, with its
total); the steps and compensations grow here, in one table that reads top to
bottom.
"""

from __future__ import annotations

from korder.domain import money
from korder.domain.order import OrderSpec, OrderStatus, Phase


def admit(spec: OrderSpec, generation: int) -> OrderStatus:
    """The status of an order the operator sees for the first time."""
    total = money.order_total((item.price, item.quantity) for item in spec.items)
    return OrderStatus(phase=Phase.PENDING, total=total, observed_generation=generation)
