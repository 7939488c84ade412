"""The saga end to end: real control plane, real operator process, real participants.

Each test applies Orders in its own namespace and reads three records: the
Order's status, its Kubernetes Events, and the participants' ledgers (keyed by
the Order's UID, which the operator sends as ``orderId``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Component, Kubectl, Participants
from tests.support.orders import order_yaml, spec
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("operator")


def apply(kubectl: Kubectl, namespace: str, name: str, **changes: Any) -> str:
    """Apply an Order from YAML; its UID."""
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml(name, spec(**changes)))
    return str(get(kubectl, namespace, name)["metadata"]["uid"])


def get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return kubectl.json("get", "order", name, "-n", namespace)


def patch_spec(kubectl: Kubectl, namespace: str, name: str, **fields: Any) -> None:
    body = json.dumps({"spec": fields})
    kubectl("patch", "order", name, "-n", namespace, "--type=merge", "-p", body)


def wait_phase(
    kubectl: Kubectl, namespace: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        order = get(kubectl, namespace, name)
        return order if order.get("status", {}).get("phase") == phase else None

    found = wait_for(reached, timeout=timeout, what=f"order {name} to reach {phase}")
    assert isinstance(found, dict)
    return found


def condition(order: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in order["status"]["conditions"] if c["type"] == type_)


def event_reasons(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    events = kubectl.json(
        "get", "events", "-n", namespace, f"--field-selector=involvedObject.name={name}"
    )
    return [e["reason"] for e in events["items"]]


def wait_events(kubectl: Kubectl, namespace: str, name: str, *reasons: str) -> None:
    """Events are posted asynchronously: wait until every reason is there."""
    wait_for(
        lambda: set(reasons) <= set(event_reasons(kubectl, namespace, name)),
        what=f"events {reasons} on {name}",
    )


def breaker_state(operator: Component, participant: str) -> float | None:
    text = httpx.get(operator.metrics_url, timeout=5.0).text
    pattern = rf'^korder_circuit_breaker_state{{participant="{participant}"}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


@pytest.fixture
def faults(participants: Participants) -> Iterator[Participants]:
    """The participants, with every fault switched off again after the test."""
    yield participants
    for service in ("inventory", "payment", "shipping"):
        participants.faults(service, unavailable=False, holdResponses=False)


def test_happy_path_from_yaml_to_fulfilled(
    kubectl: Kubectl, namespace: str, participants: Participants
) -> None:
    uid = apply(kubectl, namespace, "happy")
    kubectl("wait", "--for=condition=Ready", "order/happy", "-n", namespace, "--timeout=60s")
    order = get(kubectl, namespace, "happy")
    assert order["status"]["phase"] == "Confirmed"
    assert order["metadata"]["finalizers"] == ["korder.dev/saga"]
    assert condition(order, "Ready")["observedGeneration"] == order["metadata"]["generation"]
    assert condition(order, "Reconciling")["status"] == "False"

    patch_spec(kubectl, namespace, "happy", processRequested=True)
    wait_phase(kubectl, namespace, "happy", "Processing")
    patch_spec(kubectl, namespace, "happy", fulfillment={"carrier": "EXPRESS"})
    order = wait_phase(kubectl, namespace, "happy", "Fulfilled")

    shipment = order["status"]["shipment"]
    [shipped] = participants.ledger("shipping", uid)
    assert shipment["carrier"] == "EXPRESS"
    assert shipment["trackingNumber"] == shipped["trackingNumber"]
    assert (
        order["status"]["reservationId"]
        == participants.ledger("inventory", uid)[0]["reservationId"]
    )
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}
    assert participants.ledger("payment", uid)[0]["amount"] == "44.98"
    assert [h["type"] for h in order["status"]["history"]][-3:] == [
        "OrderProcessing",
        "FulfillmentRequested",
        "OrderFulfilled",
    ]
    # An Event where the saga came to rest; the steps between are in the history.
    wait_events(kubectl, namespace, "happy", "OrderConfirmed", "OrderProcessing", "OrderFulfilled")
    assert not {"InventoryReserved", "PaymentCaptured"} & set(
        event_reasons(kubectl, namespace, "happy")
    )
    listing = kubectl("get", "orders", "-n", namespace).stdout
    assert re.search(r"happy\s+Fulfilled\s+44\.98", listing)


def test_events_come_from_korder_operator(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, "reported")
    wait_events(kubectl, namespace, "reported", "OrderConfirmed")
    [event] = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector=involvedObject.name=reported"
    )["items"]
    assert event["source"]["component"] == "korder-operator"
    assert event["reportingComponent"] == "korder-operator"
    assert event["reportingInstance"]  # the replica that posted it
    assert event["metadata"]["name"].startswith("korder-operator-")
    described = kubectl("describe", "order", "reported", "-n", namespace).stdout
    assert re.search(r"Normal\s+OrderConfirmed\s+\S+\s+korder-operator\s", described), described


def test_an_order_from_the_facade_takes_the_same_saga(
    kubectl: Kubectl, namespace: str, participants: Participants, facade: Component
) -> None:
    response = httpx.post(f"{facade.url}/orders", json=spec(), timeout=10.0)
    assert response.status_code == 201, response.text
    name = response.json()["id"]
    kubectl("wait", "--for=condition=Ready", f"order/{name}", "-n", namespace, "--timeout=60s")
    uid = get(kubectl, namespace, name)["metadata"]["uid"]
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}


def test_out_of_stock_fails_with_nothing_reserved(
    kubectl: Kubectl, namespace: str, participants: Participants
) -> None:
    items = [{"productId": "PROD-999", "quantity": 1, "price": "1.00"}]
    uid = apply(kubectl, namespace, "nostock", items=items)
    order = wait_phase(kubectl, namespace, "nostock", "Failed")
    assert "out_of_stock" in order["status"]["failureReason"]
    assert condition(order, "Stalled")["status"] == "True"
    assert condition(order, "InventoryReserved")["reason"] == "Rejected"
    assert participants.ledger("inventory", uid) == []
    assert participants.ledger("payment", uid) == []
    wait_events(kubectl, namespace, "nostock", "OutOfStock", "OrderFailed")


def test_declined_payment_fails_and_releases_the_reservation(
    kubectl: Kubectl, namespace: str, participants: Participants
) -> None:
    items = [{"productId": "PROD-003", "quantity": 1, "price": "10000.01"}]
    uid = apply(kubectl, namespace, "declined", items=items)
    order = wait_phase(kubectl, namespace, "declined", "Failed")
    assert "declined" in order["status"]["failureReason"]
    assert participants.effects("inventory", uid) == {"reserve": 1, "release": 1}
    assert participants.ledger("payment", uid) == []
    wait_events(kubectl, namespace, "declined", "PaymentDeclined", "OrderFailed")


def test_cancel_at_confirmed_refunds_and_releases(
    kubectl: Kubectl, namespace: str, participants: Participants
) -> None:
    uid = apply(kubectl, namespace, "cancelme")
    wait_phase(kubectl, namespace, "cancelme", "Confirmed")
    patch_spec(kubectl, namespace, "cancelme", cancelRequested=True)
    order = wait_phase(kubectl, namespace, "cancelme", "Cancelled")
    assert participants.effects("payment", uid) == {"charge": 1, "refund": 1}
    assert participants.effects("inventory", uid) == {"reserve": 1, "release": 1}
    assert condition(order, "Ready")["status"] == "False"
    assert condition(order, "PaymentCaptured")["reason"] == "Compensated"
    wait_events(kubectl, namespace, "cancelme", "OrderCancelled")


def test_cancel_while_the_payment_is_in_flight(
    kubectl: Kubectl, namespace: str, faults: Participants
) -> None:
    faults.faults("payment", holdResponses=True)
    uid = apply(kubectl, namespace, "inflight")
    # The charge happened at the payment service; its answer is held back.
    wait_for(lambda: faults.ledger("payment", uid), what="the charge to be applied")
    patch_spec(kubectl, namespace, "inflight", cancelRequested=True)
    assert get(kubectl, namespace, "inflight")["status"]["phase"] == "ProcessingPayment"
    faults.faults("payment", holdResponses=False)
    wait_phase(kubectl, namespace, "inflight", "Cancelled")
    assert faults.effects("payment", uid) == {"charge": 1, "refund": 1}
    assert faults.effects("inventory", uid) == {"reserve": 1, "release": 1}


def test_kubectl_delete_compensates_before_the_order_goes(
    kubectl: Kubectl, namespace: str, participants: Participants
) -> None:
    uid = apply(kubectl, namespace, "deleteme")
    wait_phase(kubectl, namespace, "deleteme", "Confirmed")
    kubectl("delete", "order", "deleteme", "-n", namespace, "--timeout=60s")
    gone = kubectl("get", "order", "deleteme", "-n", namespace, check=False)
    assert "NotFound" in gone.stderr
    assert participants.effects("payment", uid) == {"charge": 1, "refund": 1}
    assert participants.effects("inventory", uid) == {"reserve": 1, "release": 1}


def test_an_open_breaker_defers_orders_until_the_participant_recovers(
    kubectl: Kubectl, namespace: str, faults: Participants, operator: Component
) -> None:
    faults.faults("inventory", unavailable=True)
    names = [f"outage-{n}" for n in range(3)]
    uids = [apply(kubectl, namespace, name) for name in names]
    wait_for(lambda: breaker_state(operator, "inventory") == 2, what="the breaker to open")

    def deferred() -> dict[str, Any] | None:
        order = get(kubectl, namespace, names[-1])
        conditions = {c["type"]: c for c in order.get("status", {}).get("conditions", [])}
        reserved = conditions.get("InventoryReserved", {})
        return order if reserved.get("reason") == "CircuitOpen" else None

    # One snapshot: a failed half-open trial may turn the reason to Retrying later.
    order = wait_for(deferred, what="an order deferred by the open breaker")
    assert isinstance(order, dict)
    assert order["status"]["phase"] == "ReservingInventory"
    assert "circuit breaker is open" in condition(order, "InventoryReserved")["message"]
    assert condition(order, "Reconciling")["status"] == "True"

    faults.faults("inventory", unavailable=False)
    for name in names:
        wait_phase(kubectl, namespace, name, "Confirmed")
    assert breaker_state(operator, "inventory") == 0
    for uid in uids:
        assert faults.effects("inventory", uid) == {"reserve": 1}
        assert faults.effects("payment", uid) == {"charge": 1}


def test_operator_killed_between_the_call_and_the_status_write(
    kubectl: Kubectl, namespace: str, faults: Participants, operator: Component
) -> None:
    faults.faults("inventory", holdResponses=True)
    uid = apply(kubectl, namespace, "crash")
    wait_for(lambda: faults.ledger("inventory", uid), what="the reservation to be applied")
    before = get(kubectl, namespace, "crash")["status"]
    # The participant reserved; the operator has not heard back, so wrote nothing.
    assert before["phase"] == "ReservingInventory"
    assert "reservationId" not in before
    operator.kill()
    faults.faults("inventory", holdResponses=False)
    operator.restart()

    order = wait_phase(kubectl, namespace, "crash", "Confirmed")
    [reserved] = faults.ledger("inventory", uid)
    assert order["status"]["reservationId"] == reserved["reservationId"]
    assert faults.effects("inventory", uid) == {"reserve": 1}
    assert faults.effects("payment", uid) == {"charge": 1}
