"""The walking skeleton over real processes: facade -> Order -> operator -> status."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Component, Kubectl
from tests.support.orders import VALID_SPEC, order_yaml
from tests.support.waiting import wait_for

#: Where an order of the shared valid spec can be when a test first looks.
EARLY_PHASES = ("Pending", "ReservingInventory", "ProcessingPayment", "Confirmed")


def test_operator_admits_an_applied_order(
    kubectl: Kubectl, namespace: str, operator: Component
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml("applied"))

    def admitted() -> dict[str, Any] | None:
        order = kubectl.json("get", "order", "applied", "-n", namespace)
        return order if order.get("status", {}).get("phase") else None

    order = wait_for(admitted, what="the operator to set a phase")
    assert isinstance(order, dict)
    # The saga moves on at once; its history says the order was admitted as Pending.
    assert order["status"]["phase"] in EARLY_PHASES
    first = order["status"]["history"][0]
    assert (first["type"], first["phase"]) == ("OrderAccepted", "Pending")
    assert order["status"]["total"] == "44.98"
    assert order["status"]["observedGeneration"] == order["metadata"]["generation"]


def test_post_order_over_http_creates_an_order(
    kubectl: Kubectl, namespace: str, operator: Component, facade: Component
) -> None:
    health = httpx.get(f"{facade.url}/health")
    assert health.json() == {"status": "ok", "apiServer": "reachable"}

    body = {k: v for k, v in VALID_SPEC.items()}
    response = httpx.post(f"{facade.url}/orders", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/orders/{created['id']}"
    assert created["customer"]["id"] == "cust-1"
    assert created["items"][0]["price"] == "19.99"

    stored = kubectl.json("get", "order", created["id"], "-n", namespace)
    assert stored["spec"]["items"] == VALID_SPEC["items"]

    def pending_with_total() -> dict[str, Any] | None:
        got = httpx.get(f"{facade.url}/orders/{created['id']}").json()
        return got if got.get("total") else None

    seen = wait_for(pending_with_total, what="the operator's status through the facade")
    assert isinstance(seen, dict)
    assert seen["status"] in EARLY_PHASES
    assert seen["total"] == "44.98"


def test_invalid_post_is_a_problem_not_an_order(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    body = {**VALID_SPEC, "items": [{**VALID_SPEC["items"][0], "quantity": 0}]}
    response = httpx.post(f"{facade.url}/orders", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "items.0.quantity" in response.json()["detail"]
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout == ""
