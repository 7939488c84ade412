"""``/orders`` over HTTP against the real facade, API server and operator.

These tests need no saga: they use orders the operator has only admitted
(Pending), which is also the wrong phase for process and fulfil.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.e2e.api import assert_problem, create, created, get, wait_for_status
from tests.e2e.conftest import Component, Kubectl
from tests.support.orders import VALID_SPEC, spec
from tests.support.waiting import wait_for

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
    # Payment declines a total over 10,000.00: bob's order ends Failed.
    expensive = [{"productId": "PROD-003", "quantity": 2, "price": "6000.00"}]
    bob = created(facade, body=spec(customer={"id": "bob"}, items=expensive))["id"]
    for order_id in ids:
        wait_for_status(facade, order_id, "Confirmed")
    wait_for_status(facade, bob, "Failed")

    everyone = httpx.get(f"{facade.url}/orders").json()
    assert {o["id"] for o in everyone["orders"]} == {*ids, bob}
    assert everyone.get("continue") is None

    alice = httpx.get(f"{facade.url}/orders", params={"customerId": "alice"}).json()
    assert {o["id"] for o in alice["orders"]} == set(ids)
    confirmed = httpx.get(f"{facade.url}/orders", params={"status": "Confirmed"}).json()
    assert {o["id"] for o in confirmed["orders"]} == set(ids)
    failed = httpx.get(f"{facade.url}/orders", params={"status": "Failed"}).json()
    assert [o["id"] for o in failed["orders"]] == [bob]
    both = {"status": "Failed", "customerId": "alice"}
    assert httpx.get(f"{facade.url}/orders", params=both).json()["orders"] == []

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
    stale = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": '"1"'})
    assert_problem(stale, 412, "precondition-failed")
    assert get(facade, order_id)["shippingAddress"] == VALID_SPEC["shippingAddress"]

    # The operator may write between our read and our write (that is what If-Match
    # guards against), so the write with the current ETag is tried until it lands.
    used: list[str] = []

    def put_with_the_current_etag() -> httpx.Response | None:
        etag = httpx.get(url).headers["ETag"]
        used.append(etag)
        response = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": etag})
        if response.status_code == 412:
            return None
        return response

    fresh = wait_for(put_with_the_current_etag, what="a PUT with the current ETag")
    assert isinstance(fresh, httpx.Response)
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["ETag"] != used[-1]
    assert get(facade, order_id)["shippingAddress"] == NEW_ADDRESS
    # The ETag that PUT used is stale now, whatever the operator does.
    again = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": used[-1]})
    assert_problem(again, 412, "precondition-failed")
    star = httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers={"If-Match": "*"})
    assert star.status_code == 200


def test_actions_from_a_wrong_phase_are_409(operator: Component, facade: Component) -> None:
    expensive = [{"productId": "PROD-003", "quantity": 2, "price": "6000.00"}]
    failed = created(facade, body=spec(items=expensive))["id"]
    confirmed = created(facade)["id"]
    wait_for_status(facade, failed, "Failed")
    wait_for_status(facade, confirmed, "Confirmed")

    express = {"carrier": "EXPRESS"}
    assert_problem(httpx.post(f"{facade.url}/orders/{failed}/process"), 409, "wrong-phase")
    fulfil = httpx.post(f"{facade.url}/orders/{failed}/fulfill", json=express)
    assert_problem(fulfil, 409, "wrong-phase")
    assert_problem(httpx.delete(f"{facade.url}/orders/{failed}"), 409, "wrong-phase")
    fulfil = httpx.post(f"{facade.url}/orders/{confirmed}/fulfill", json=express)
    problem = assert_problem(fulfil, 409, "wrong-phase")
    assert "Confirmed" in problem["detail"]
    bad_carrier = httpx.post(f"{facade.url}/orders/{confirmed}/fulfill", json={"carrier": "PIGEON"})
    assert_problem(bad_carrier, 422, "validation")
    for order_id in (failed, confirmed):
        order = get(facade, order_id)
        assert order["processRequested"] is False
        assert order["fulfillment"] is None
        assert order["cancelRequested"] is False


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
    wait_for_status(facade, order_id, "Confirmed")
    stored = kubectl.json("get", "order", order_id, "-n", namespace)
    uid = stored["metadata"]["uid"]
    history = stored["status"]["history"]
    assert len(history) >= 3, "the saga recorded its steps"

    def mirrored() -> dict[str, Any] | None:
        # The operator posts an Event where the saga comes to rest, after the status write.
        events = kubectl.json(
            "get", "events", "-n", namespace, f"--field-selector=involvedObject.uid={uid}"
        )
        reasons = {e["reason"] for e in events["items"]}
        return events if "OrderConfirmed" in reasons else None

    events = wait_for(mirrored, what="the operator's Events")
    assert isinstance(events, dict)
    # One happening that history does not hold: it is shown, in its place in time.
    accepted = datetime.fromisoformat(history[0]["time"])
    note_time = (accepted - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kubectl(
        "create",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{order_id}.note", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": "korder.dev/v1alpha1",
                    "kind": "Order",
                    "name": order_id,
                    "namespace": namespace,
                    "uid": uid,
                },
                "reason": "OperatorNote",
                "message": "Checked by hand.",
                "type": "Warning",
                "firstTimestamp": note_time,
                "lastTimestamp": note_time,
                "source": {"component": "e2e"},
            }
        ),
    )

    response = httpx.get(f"{facade.url}/orders/{order_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["orderId"] == order_id
    from_history = [(e["type"], e["message"]) for e in body["events"] if e["source"] == "history"]
    assert from_history == [(h["type"], h["message"]) for h in history]
    from_events = [e for e in body["events"] if e["source"] == "event"]
    assert [(e["type"], e["severity"]) for e in from_events] == [("OperatorNote", "Warning")]
    pairs = [(e["type"], e["message"]) for e in body["events"]]
    assert len(pairs) == len(set(pairs)), "each happening once"
    assert pairs[0] == ("OperatorNote", "Checked by hand."), "oldest first"
    assert_problem(httpx.get(f"{facade.url}/orders/ord-nope/events"), 404, "order-not-found")
