"""The REST API over the whole saga: the seed's demo flows, Prefer: wait, and no double effects.

The participants' ledgers (keyed by the order's UID) prove what the saga did: one
reservation and one charge per order, whatever the clients retried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import httpx
import pytest

from tests.e2e.api import assert_problem, create, create_concurrently, created, get, wait_for_status
from tests.e2e.conftest import Component, Kubectl, Participants
from tests.e2e.test_api_orders import NEW_ADDRESS
from tests.support.orders import spec

EXPENSIVE = [{"productId": "PROD-004", "name": "Yacht", "quantity": 1, "price": "10000.01"}]


class Stack(NamedTuple):
    """The whole system of a saga test: cluster, participants, facade (the operator runs)."""

    kubectl: Kubectl
    namespace: str
    participants: Participants
    facade: Component


@pytest.fixture
def stack(
    kubectl: Kubectl,
    namespace: str,
    operator: Component,
    participants: Participants,
    facade: Component,
) -> Stack:
    return Stack(kubectl, namespace, participants, facade)


def _uid(kubectl: Kubectl, namespace: str, order_id: str) -> str:
    uid: str = kubectl.json("get", "order", order_id, "-n", namespace)["metadata"]["uid"]
    return uid


def test_demo_flow_create_update_process_events_fulfil(
    stack: Stack,
) -> None:
    kubectl, namespace, participants, facade = stack
    response = create(facade, Prefer="wait=60")
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "wait=60"
    order = response.json()
    assert order["status"] == "Confirmed", "the wait returned the saga's outcome"
    assert order["total"] == "44.98"
    url = f"{facade.url}/orders/{order['id']}"

    update = httpx.put(url, json={"shippingAddress": NEW_ADDRESS, "notes": "gift"})
    assert update.status_code == 200, update.text
    assert update.json()["notes"] == "gift"

    process = httpx.post(f"{url}/process", headers={"Prefer": "wait=60"})
    assert process.status_code == 202, process.text
    assert process.json()["status"] == "Processing"
    assert process.json()["processRequested"] is True

    fulfil = httpx.post(
        f"{url}/fulfill", json={"carrier": "EXPRESS"}, headers={"Prefer": "wait=60"}
    )
    assert fulfil.status_code == 202, fulfil.text
    shipped = fulfil.json()
    assert shipped["status"] == "Fulfilled"
    assert shipped["shipment"]["carrier"] == "EXPRESS"
    assert shipped["shipment"]["trackingNumber"]
    assert shipped["fulfillment"] == {"carrier": "EXPRESS"}

    events = httpx.get(f"{url}/events").json()["events"]
    phases = [e["phase"] for e in events if e["phase"]]
    assert phases[-1] == "Fulfilled"
    assert phases.index("Confirmed") < phases.index("Processing") < phases.index("Fulfilled")
    # Oldest first, as instants: history has milliseconds, Events microseconds.
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times == sorted(times)

    # Once fulfilled: no cancellation, no change; the order stays as it is.
    assert_problem(httpx.delete(url), 409, "wrong-phase")
    assert_problem(httpx.put(url, json={"shippingAddress": NEW_ADDRESS}), 409, "wrong-phase")
    assert get(facade, order["id"])["status"] == "Fulfilled"
    uid = _uid(kubectl, namespace, order["id"])
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}
    assert participants.effects("shipping", uid) == {"ship": 1}


def test_cancel_compensates_and_keeps_the_order(
    stack: Stack,
) -> None:
    kubectl, namespace, participants, facade = stack
    order = created(facade, Prefer="wait=60")
    assert order["status"] == "Confirmed"
    cancel = httpx.delete(f"{facade.url}/orders/{order['id']}", headers={"Prefer": "wait=60"})
    assert cancel.status_code == 202, cancel.text
    assert cancel.headers["Preference-Applied"] == "wait=60"
    assert cancel.json()["status"] == "Cancelled"
    assert get(facade, order["id"])["status"] == "Cancelled", "the resource stays, for the record"
    uid = _uid(kubectl, namespace, order["id"])
    assert participants.effects("inventory", uid) == {"reserve": 1, "release": 1}
    assert participants.effects("payment", uid) == {"charge": 1, "refund": 1}
    assert_problem(httpx.post(f"{facade.url}/orders/{order['id']}/process"), 409, "wrong-phase")


def test_a_declined_order_fails_and_compensates(
    stack: Stack,
) -> None:
    kubectl, namespace, participants, facade = stack
    order = created(facade, body=spec(items=EXPENSIVE), Prefer="wait=60")
    assert order["status"] == "Failed"
    assert order["failureReason"]
    uid = _uid(kubectl, namespace, order["id"])
    assert participants.effects("inventory", uid) == {"reserve": 1, "release": 1}
    assert participants.effects("payment", uid) == {}
    assert_problem(httpx.post(f"{facade.url}/orders/{order['id']}/process"), 409, "wrong-phase")


async def test_fifty_concurrent_creates_reserve_and_charge_once(
    stack: Stack,
) -> None:
    kubectl, namespace, participants, facade = stack
    responses = await create_concurrently(facade, 50, "fifty")
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    order_id = responses[0].json()["id"]
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.split() == [
        f"order.korder.dev/{order_id}"
    ]
    wait_for_status(facade, order_id, "Confirmed")
    uid = _uid(kubectl, namespace, order_id)
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}


def test_replays_after_the_saga_finished_have_no_second_effect(
    stack: Stack,
) -> None:
    kubectl, namespace, participants, facade = stack
    first = create(facade, key="replay-create", Prefer="wait=60")
    assert first.status_code == 201
    order_id = first.json()["id"]
    url = f"{facade.url}/orders/{order_id}"
    process = httpx.post(
        f"{url}/process", headers={"Idempotency-Key": "replay-process", "Prefer": "wait=60"}
    )
    assert process.status_code == 202
    assert process.json()["status"] == "Processing"
    uid = _uid(kubectl, namespace, order_id)
    effects = {s: participants.effects(s, uid) for s in ("inventory", "payment")}

    create_again = create(facade, key="replay-create")
    assert create_again.status_code == 201
    assert create_again.headers["Idempotent-Replayed"] == "true"
    assert create_again.json()["id"] == order_id
    assert create_again.json()["status"] == "Processing", "the order as it is now"

    # A new process request would be 409 now (the order is Processing); the replay is not.
    process_again = httpx.post(f"{url}/process", headers={"Idempotency-Key": "replay-process"})
    assert process_again.status_code == 202
    assert process_again.headers["Idempotent-Replayed"] == "true"
    assert_problem(
        httpx.post(f"{url}/process", headers={"Idempotency-Key": "another"}), 409, "wrong-phase"
    )
    assert {s: participants.effects(s, uid) for s in ("inventory", "payment")} == effects
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.count("\n") == 1


def test_a_wait_that_runs_out_answers_with_the_order_as_it_is(
    operator: Component, participants: Participants, facade: Component
) -> None:
    participants.faults("payment", unavailable=True)
    try:
        response = create(facade, Prefer="wait=2")
        assert response.status_code == 201
        assert response.headers["Preference-Applied"] == "wait=2"
        order: dict[str, Any] = response.json()
        assert order["status"] in {"Pending", "ReservingInventory", "ProcessingPayment"}
    finally:
        participants.faults("payment", unavailable=False)
    wait_for_status(facade, order["id"], "Confirmed")
    plain = create(facade, Prefer="respond-async")
    assert plain.status_code == 201
    assert "Preference-Applied" not in plain.headers


def test_the_facade_creates_orders_with_the_sagas_finalizer(stack: Stack) -> None:
    order = created(stack.facade)
    obj = stack.kubectl.json(
        "get", "order", order["id"], "-n", stack.namespace, "--show-managed-fields"
    )
    assert obj["metadata"]["finalizers"] == ["korder.dev/saga"]
    # Written by the facade's create, so the operator needs no patch of its own for it.
    owners = [
        m["manager"]
        for m in obj["metadata"]["managedFields"]
        if "f:finalizers" in m.get("fieldsV1", {}).get("f:metadata", {})
    ]
    assert owners == ["korder-api"]
