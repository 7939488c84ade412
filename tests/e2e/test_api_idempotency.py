"""Idempotency-Key over HTTP: replays, reuse, bad keys, and twins racing.

The saga-independent half: what the facade and the API server guarantee on their
own. The tests that need the saga (a replay after it finished, the ledgers) live
in ``test_api_saga.py``.
"""

from __future__ import annotations

import asyncio
import json

import httpx

from korder.api import idempotency
from tests.e2e.api import assert_problem, create, create_concurrently, created
from tests.e2e.conftest import Component, FacadeFactory, Kubectl
from tests.e2e.test_api_orders import NEW_ADDRESS
from tests.support.orders import order_yaml, spec


def test_create_with_a_key_replays_the_first_outcome(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    first = create(facade, key="order-2026-0001")
    assert first.status_code == 201, first.text
    order = first.json()
    assert order["id"].startswith("ord-")
    stored = kubectl.json("get", "order", order["id"], "-n", namespace)["metadata"]
    assert stored["annotations"]["korder.dev/idempotency-key"] == "order-2026-0001"
    assert len(stored["annotations"]["korder.dev/request-fingerprint"]) == 64

    # Same key, same request (other key order, quoted key as the draft writes it).
    body = dict(reversed(list(spec().items())))
    again = create(facade, body=body, key='"order-2026-0001"')
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["id"] == order["id"]
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.count("\n") == 1


def test_same_key_with_another_request_is_422(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    assert create(facade, key="k-1").status_code == 201
    other = create(facade, body=spec(notes="different"), key="k-1")
    assert_problem(other, 422, "idempotency-key-reused")
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.count("\n") == 1


def test_bad_keys_are_400_and_make_nothing(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    url = f"{facade.url}/orders"
    for bad in (b"", b"k" * 256, "caf\xe9".encode("latin-1"), b'""'):
        response = httpx.post(url, json=spec(), headers={b"Idempotency-Key": bad})
        assert_problem(response, 400, "idempotency-key-invalid")
    assert create(facade, key="k" * 255).status_code == 201, "255 characters is the limit"
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.count("\n") == 1


def test_a_required_key_is_400_when_missing(start_facade: FacadeFactory) -> None:
    strict = start_facade(KORDER_IDEMPOTENCY_KEY_REQUIRED="true")
    assert_problem(create(strict), 400, "idempotency-key-missing")
    order = created(strict, key="present")
    assert_problem(
        httpx.delete(f"{strict.url}/orders/{order['id']}"), 400, "idempotency-key-missing"
    )
    assert httpx.get(f"{strict.url}/orders/{order['id']}").status_code == 200, "reads need none"


async def test_fifty_concurrent_creates_with_one_key_make_one_order(
    kubectl: Kubectl, namespace: str, facade: Component, start_facade: FacadeFactory
) -> None:
    # Two facade processes, as two replicas behind a load balancer: no shared memory.
    responses = await create_concurrently([facade, start_facade()], 50, "burst")
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len({r.headers["Location"] for r in responses}) == 1
    firsts = [r for r in responses if "Idempotent-Replayed" not in r.headers]
    assert len(firsts) == 1, "exactly one request created the order; the rest replayed it"
    # The same order in every answer; only the saga's progress may differ between them.
    progress = {"status", "total", "reservationId", "paymentId", "failureReason"}
    bodies = {
        json.dumps({k: v for k, v in r.json().items() if k not in progress}) for r in responses
    }
    assert len(bodies) == 1
    names = kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.split()
    assert len(names) == 1


def test_updates_and_actions_replay_by_key(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    order_id = created(facade)["id"]
    url = f"{facade.url}/orders/{order_id}"
    key = {"Idempotency-Key": "put-1"}
    first = httpx.put(url, json={"shippingAddress": NEW_ADDRESS, "notes": "a"}, headers=key)
    assert first.status_code == 200
    # A stale If-Match does not matter for a replay: the write it guards was done.
    replay = httpx.put(
        url,
        json={"notes": "a", "shippingAddress": NEW_ADDRESS},
        headers={**key, "If-Match": '"1"'},
    )
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = httpx.put(url, json={"shippingAddress": NEW_ADDRESS, "notes": "b"}, headers=key)
    assert_problem(other, 422, "idempotency-key-reused")

    cancel = httpx.delete(url, headers={"Idempotency-Key": "cancel-1"})
    assert cancel.status_code == 202
    again = httpx.delete(url, headers={"Idempotency-Key": "cancel-1"})
    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    # The same key on another action is another request.
    assert_problem(
        httpx.post(f"{url}/process", headers={"Idempotency-Key": "cancel-1"}),
        422,
        "idempotency-key-reused",
    )
    annotations = kubectl.json("get", "order", order_id, "-n", namespace)["metadata"]["annotations"]
    records = json.loads(annotations["korder.dev/idempotency-records"])
    assert [(r["key"], r["status"]) for r in records] == [("put-1", 200), ("cancel-1", 202)]


async def test_concurrent_twins_of_an_action_write_once(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    order_id = created(facade)["id"]
    async with httpx.AsyncClient(base_url=facade.url, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.put(
                    f"/orders/{order_id}",
                    json={"shippingAddress": NEW_ADDRESS, "notes": "twin"},
                    headers={"Idempotency-Key": "twin"},
                )
                for _ in range(10)
            )
        )
    assert {r.status_code for r in responses} == {200}
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    annotations = kubectl.json("get", "order", order_id, "-n", namespace)["metadata"]["annotations"]
    records = json.loads(annotations["korder.dev/idempotency-records"])
    assert [r["key"] for r in records] == ["twin"]


def test_a_create_key_never_replays_an_order_it_did_not_make(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    # An order applied by hand under the very name the key maps to.
    taken = idempotency.resource_name("taken")
    kubectl("apply", "-n", namespace, "-f", "-", stdin=order_yaml(taken))
    response = create(facade, key="taken")
    assert_problem(response, 409, "idempotency-key-collision")
    stored = kubectl.json("get", "order", taken, "-n", namespace)["metadata"]
    assert "korder.dev/idempotency-key" not in (stored.get("annotations") or {})


def test_writes_with_a_key_to_a_missing_order_are_404(facade: Component) -> None:
    key = {"Idempotency-Key": "k"}
    url = f"{facade.url}/orders/ord-missing"
    assert_problem(httpx.delete(url, headers=key), 404, "order-not-found")
    assert_problem(
        httpx.put(url, json={"shippingAddress": NEW_ADDRESS}, headers=key), 404, "order-not-found"
    )
    fulfil = httpx.post(f"{url}/fulfill", json={"carrier": "STANDARD"}, headers=key)
    assert_problem(fulfil, 404, "order-not-found")
