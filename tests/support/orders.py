"""Order manifests, request bodies and domain Orders that the tests share."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import yaml

from korder.domain.order import Order

VALID_SPEC: dict[str, Any] = {
    "customer": {"id": "cust-1", "name": "Ada Lovelace", "email": "ada@example.com"},
    "items": [
        {"productId": "PROD-001", "name": "Widget", "quantity": 2, "price": "19.99"},
        {"productId": "PROD-002", "name": "Gadget", "quantity": 1, "price": "5.00"},
    ],
    "shippingAddress": {
        "street": "1 Analytical Way",
        "city": "London",
        "postalCode": "N1 9GU",
        "country": "GB",
    },
    "paymentMethod": "credit_card",
}


def spec(**changes: Any) -> dict[str, Any]:
    """A valid spec with top-level fields replaced."""
    return {**copy.deepcopy(VALID_SPEC), **changes}


def order_yaml(name: str, order_spec: dict[str, Any] | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "korder.dev/v1alpha1",
            "kind": "Order",
            "metadata": {"name": name},
            "spec": order_spec if order_spec is not None else spec(),
        }
    )


def orders_yaml(prefix: str, count: int, namespace: str) -> str:
    """``count`` Order manifests named ``prefix-0``... in ``namespace``, for one kubectl apply."""
    return yaml.safe_dump_all(
        {
            "apiVersion": "korder.dev/v1alpha1",
            "kind": "Order",
            "metadata": {"name": f"{prefix}-{n}", "namespace": namespace},
            "spec": spec(),
        }
        for n in range(count)
    )


def resource(
    order_spec: dict[str, Any] | None = None,
    *,
    status: dict[str, Any] | None = None,
    name: str = "o-1",
    namespace: str = "shop",
    uid: str = "uid-1",
    generation: int = 1,
    created: datetime | None = None,
    deleting: bool = False,
    resource_version: str = "1",
    annotations: dict[str, str] | None = None,
) -> Order:
    """A domain Order resource, as the Kubernetes layer would hand it over."""
    created = created or datetime(2026, 1, 1, tzinfo=UTC)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": generation,
        "resourceVersion": resource_version,
        "creationTimestamp": created,
        "annotations": annotations or {},
    }
    if deleting:
        metadata["deletionTimestamp"] = created
    return Order.model_validate(
        {
            "metadata": metadata,
            "spec": order_spec if order_spec is not None else spec(),
            "status": status or {},
        }
    )
