"""``/orders`` over HTTP against the real facade, API server and operator.

These tests need no saga: they use orders the operator has only admitted
(Pending), which is also the wrong phase for process and fulfil.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.e2e.api import assert_problem, create, created, get, wait_for_status
from tests.e2e.conftest import Component, Kubectl, wait_for
from tests.e2e.orders import VALID_SPEC, spec

NEW_ADDRESS = {
    "street": "2 Difference Road",
    "city": "Cambridge",
    "postalCode": "CB2",
    "country": "GB",
}


def test_create_answers_201_with_location_etag_and_the_order(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    response = create(facade, spec(notes="leave at the door", currency="EUR"))
    assert response.status_code == 201, response.text
    order = response.json()
    assert response.headers["Location"] == f"/orders/{order['id']}"
    assert response.headers["ETag"].strip('"').isdigit()
    assert "Idempotent-Replayed" not in response.headers
    assert order["customer"] == VALID_SPEC["customer"]
    assert order["items"] == VALID_SPEC["items"]
    assert order["shippingAddress"] == VALID_SPEC["shippingAddress"]
    assert order["paymentMethod"] == "credit_card"
    assert order["currency"] == "EUR"
    assert order["notes"] == "leave at the door"
    assert order["status"] == "Pending"
    stored = kubectl.json("get", "order", order["id"], "-n", namespace)
    assert stored["metadata"]["labels"]["korder.dev/customer"] == "cust-1"


def test_get_returns_the_order_with_total_as_a_string_and_an_etag(
    kubectl: Kubectl, namespace: str, operator: Component, facade: Component
) -> None:
    order = created(facade)

    def with_total() -> dict[str, Any] | None:
        got = get(facade, order["id"])
        return got if got["total"] else None

    seen = wait_for(with_total, what="the operator's total")
    assert isinstance(seen, dict)
    assert seen["total"] == "44.98"

    def etag_is_the_resource_version() -> bool:
        # Compared until the operator is done writing, so the two reads see one version.
        etag = httpx.get(f"{facade.url}/orders/{order['id']}").headers["ETag"]
        stored = kubectl.json("get", "order", order["id"], "-n", namespace)
        return bool(etag == f'"{stored["metadata"]["resourceVersion"]}"')

    wait_for(etag_is_the_resource_version, what="the ETag to be the resourceVersion")


def test_unknown_or_impossible_order_ids_are_404(facade: Component) -> None:
    for order_id in ("ord-does-not-exist", "UPPER", "a..b", "x" * 300):
        assert_problem(httpx.get(f"{facade.url}/orders/{order_id}"), 404, "order-not-found")
    assert_problem(httpx.post(f"{facade.url}/orders/ord-missing/process"), 404, "order-not-found")


def test_list_filters_by_status_and_customer_and_pages(
    operator: Component, facade: Component
) -> None:
    ids = [created(facade, body=spec(customer={"id": "alice"}))["id"] for _ in range(3)]
    bob = created(facade, body=spec(customer={"id": "bob"}))["id"]
    for order_id in [*ids, bob]:
        wait_for_status(facade, order_id, "Pending")

    everyone = httpx.get(f"{facade.url}/orders").json()
    assert {o["id"] for o in everyone["orders"]} == {*ids, bob}
    assert everyone.get("continue") is None

    alice = httpx.get(f"{facade.url}/orders", params={"customerId": "alice"}).json()
    assert {o["id"] for o in alice["orders"]} == set(ids)

    pending = httpx.get(f"{facade.url}/orders", params={"status": "Pending"}).json()
    assert len(pending["orders"]) == 4
    confirmed = httpx.get(f"{facade.url}/orders", params={"status": "Confirmed"}).json()
    assert confirmed["orders"] == []

    seen: list[str] = []
    params: dict[str, Any] = {"customerId": "alice", "limit": 2}
    first = httpx.get(f"{facade.url}/orders", params=params).json()
    assert len(first["orders"]) == 2
    assert first["continue"]
    seen += [o["id"] for o in first["orders"]]
    second = httpx.get(
        f"{facade.url}/orders", params={**params, "continue": first["continue"]}
    ).json()
    seen += [o["id"] for o in second["orders"]]
    assert second.get("continue") is None
    assert sorted(seen) == sorted(ids)


def test_list_refuses_bad_filters_and_tokens(facade: Component) -> None:
    url = f"{facade.url}/orders"
    assert_problem(httpx.get(url, params={"status": "Shipped"}), 422, "validation")
    assert_problem(httpx.get(url, params={"customerId": "no spaces"}), 422, "validation")
    assert_problem(httpx.get(url, params={"limit": 0}), 422, "validation")
    assert_problem(httpx.get(url, params={"continue": "garbage"}), 400, "invalid-continue-token")


def test_put_changes_addresses_and_notes_and_keeps_the_rest(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    order = created(facade, body=spec(notes="old note"))
    before = httpx.get(f"{facade.url}/orders/{order['id']}").headers["ETag"]
    body = {"shippingAddress": NEW_ADDRESS, "billingAddress": NEW_ADDRESS}
    response = httpx.put(f"{facade.url}/orders/{order['id']}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["shippingAddress"] == NEW_ADDRESS
    assert response.json()["billingAddress"] == NEW_ADDRESS
    assert response.json().get("notes") is None, "PUT replaces: a note left out is removed"
    stored = kubectl.json("get", "order", order["id"], "-n", namespace)["spec"]
    assert stored["shippingAddress"] == NEW_ADDRESS
    assert "notes" not in stored
    assert stored["items"] == VALID_SPEC["items"]
    assert response.headers["ETag"] != before, "the PUT made a new version"

    # Sending the immutable fields back unchanged is fine: a client PUTs what it read.
    same = {
        **body,
        "notes": "ring twice",
        "items": VALID_SPEC["items"],
        "customer": VALID_SPEC["customer"],
    }
    assert httpx.put(f"{facade.url}/orders/{order['id']}", json=same).status_code == 200


def test_put_refuses_a_change_of_immutable_fields(facade: Component) -> None:
    order = created(facade)
    items = [{**VALID_SPEC["items"][0], "quantity": 5}]
    response = httpx.put(
        f"{facade.url}/orders/{order['id']}",
        json={"shippingAddress": NEW_ADDRESS, "items": items, "paymentMethod": "paypal"},
    )
    problem = assert_problem(response, 422, "immutable-field")
    assert {e["field"] for e in problem["errors"]} == {"items", "paymentMethod"}
    assert get(facade, order["id"])["shippingAddress"] == VALID_SPEC["shippingAddress"]
    assert_problem(
        httpx.put(
            f"{facade.url}/orders/{order['id']}",
            json={"shippingAddress": NEW_ADDRESS, "status": "Fulfilled"},
        ),
        422,
        "validation",
    )


def test_put_honours_if_match(facade: Component) -> None:
    order_id = created(facade)["id"]
    url = f"{facade.url}/orders/{order_id}"
    etag = httpx.get(url).headers["ETag"]
    stale = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": '"1"'})
    assert_problem(stale, 412, "precondition-failed")
    fresh = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": etag})
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["ETag"] != etag
    again = httpx.put(
        url, json={"shippingAddress": NEW_ADDRESS, "notes": "x"}, headers={"If-Match": etag}
    )
    assert_problem(again, 412, "precondition-failed")
    star = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": "*"})
    assert star.status_code == 200


def test_process_and_fulfil_of_a_pending_order_are_409(facade: Component) -> None:
    order_id = created(facade)["id"]
    assert_problem(httpx.post(f"{facade.url}/orders/{order_id}/process"), 409, "wrong-phase")
    fulfil = httpx.post(f"{facade.url}/orders/{order_id}/fulfill", json={"carrier": "EXPRESS"})
    assert_problem(fulfil, 409, "wrong-phase")
    bad_carrier = httpx.post(f"{facade.url}/orders/{order_id}/fulfill", json={"carrier": "PIGEON"})
    assert_problem(bad_carrier, 422, "validation")
    order = get(facade, order_id)
    assert order["processRequested"] is False
    assert order["fulfillment"] is None


def test_delete_requests_cancellation_and_keeps_the_resource(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    order_id = created(facade)["id"]
    response = httpx.delete(f"{facade.url}/orders/{order_id}")
    assert response.status_code == 202, response.text
    assert response.json()["cancelRequested"] is True
    stored = kubectl.json("get", "order", order_id, "-n", namespace)
    assert stored["spec"]["cancelRequested"] is True
    assert stored["metadata"].get("deletionTimestamp") is None
    # Cancelling twice is the same cancellation; a change after it is refused.
    assert httpx.delete(f"{facade.url}/orders/{order_id}").status_code == 202
    change = httpx.put(f"{facade.url}/orders/{order_id}", json={"shippingAddress": NEW_ADDRESS})
    assert_problem(change, 409, "wrong-phase")


def test_events_merge_history_and_kubernetes_events_oldest_first_once_each(
    kubectl: Kubectl, namespace: str, operator: Component, facade: Component
) -> None:
    order_id = created(facade)["id"]
    wait_for_status(facade, order_id, "Pending")
    stored = kubectl.json("get", "order", order_id, "-n", namespace)
    history = [
        {
            "type": "Accepted",
            "time": "2026-01-01T10:00:00Z",
            "phase": "Pending",
            "message": "Order accepted.",
        },
        {
            "type": "InventoryReserved",
            "time": "2026-01-01T10:00:02Z",
            "phase": "ProcessingPayment",
            "message": "Reserved.",
            "data": {"reservationId": "r-1"},
        },
    ]
    kubectl(
        "patch",
        "order",
        order_id,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"history": history}}),
    )
    involved = {
        "apiVersion": "korder.dev/v1alpha1",
        "kind": "Order",
        "name": order_id,
        "namespace": namespace,
        "uid": stored["metadata"]["uid"],
    }

    def event(name: str, reason: str, message: str, at: str, kind: str = "Normal") -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": kind,
                "firstTimestamp": at,
                "lastTimestamp": at,
                "source": {"component": "korder"},
            }
        )

    # A mirror of a history entry (dropped), and one that history does not hold (kept).
    kubectl(
        "create",
        "-f",
        "-",
        stdin=event("e1", "InventoryReserved", "Reserved.", "2026-01-01T10:00:02Z"),
    )
    kubectl(
        "create",
        "-f",
        "-",
        stdin=event("e2", "PaymentRetry", "Payment timed out.", "2026-01-01T10:00:01Z", "Warning"),
    )

    response = httpx.get(f"{facade.url}/orders/{order_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["orderId"] == order_id
    seen = [(e["type"], e["source"]) for e in body["events"]]
    assert seen == [
        ("Accepted", "history"),
        ("PaymentRetry", "event"),
        ("InventoryReserved", "history"),
    ]
    assert body["events"][1]["severity"] == "Warning"
    assert body["events"][2]["data"] == {"reservationId": "r-1"}
    assert_problem(httpx.get(f"{facade.url}/orders/ord-nope/events"), 404, "order-not-found")
