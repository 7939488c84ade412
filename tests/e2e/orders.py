"""Order manifests and request bodies the e2e tests share."""

from __future__ import annotations

import copy
from typing import Any

import yaml

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
