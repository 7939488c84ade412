"""Who may do what, decided by the cluster: tokens of real ServiceAccounts with real Roles.

The façade runs with authentication on, as the manifests ship it, bound (as a shop
binds it) in two tenant namespaces. Each caller is a ServiceAccount of the test with
one of the shipped ClusterRoles (``korder-order-viewer``, ``korder-order-editor``)
bound in one namespace; its token comes from the TokenRequest API, as ``kubectl
create token`` gives it, and the façade checks it with the API server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.api import assert_problem, wait_for_status
from tests.e2e.conftest import (
    Account,
    AccountFactory,
    Component,
    FacadeFactory,
    Kubectl,
    bind_api,
)
from tests.support.orders import spec
from tests.support.waiting import wait_for

EDITOR, VIEWER = "korder-order-editor", "korder-order-viewer"


@dataclass(frozen=True)
class Tenants:
    """A façade that requires tokens, serving namespace ``a`` (its default) and ``b``."""

    facade: Component
    a: str
    b: str

    def url(self, namespace: str, path: str = "") -> str:
        return f"{self.facade.url}/namespaces/{namespace}/orders{path}"


@pytest.fixture
def tenants(
    operator: Component, start_facade: FacadeFactory, kubectl: Kubectl, namespace: str
) -> Tenants:
    del operator  # running: the orders made here go through their saga
    other = f"{namespace[:50]}-b-{uuid.uuid4().hex[:4]}"
    kubectl("create", "namespace", other)
    facade = start_facade(KORDER_ALLOW_UNAUTHENTICATED="false", KORDER_AUTH_CACHE_SECONDS="2")
    bind_api(kubectl, other)
    return Tenants(facade, namespace, other)


def _post(
    url: str, account: Account | None, key: str | None = None, **body: object
) -> httpx.Response:
    headers = account.headers if account else {}
    if key:
        headers = {**headers, "Idempotency-Key": key}
    return httpx.post(url, json={**spec(), **body}, headers=headers, timeout=30)


def test_no_token_or_a_bad_one_is_401_with_a_bearer_challenge(tenants: Tenants) -> None:
    missing = httpx.get(f"{tenants.facade.url}/orders")
    assert_problem(missing, 401, "unauthenticated")
    assert missing.headers["www-authenticate"] == 'Bearer realm="korder"'
    assert "kubectl create token" in missing.json()["detail"]

    forged = httpx.get(
        f"{tenants.facade.url}/orders", headers={"Authorization": "Bearer not.a.real.token"}
    )
    assert_problem(forged, 401, "unauthenticated")
    assert 'error="invalid_token"' in forged.headers["www-authenticate"]

    basic = httpx.get(f"{tenants.facade.url}/orders", headers={"Authorization": "Basic YTpi"})
    assert_problem(basic, 401, "unauthenticated")
    assert 'error="invalid_request"' in basic.headers["www-authenticate"]

    # A write without a token makes nothing, whatever its body.
    assert_problem(_post(f"{tenants.facade.url}/orders", None), 401, "unauthenticated")
    # Probes and metrics stay open: the kubelet and Prometheus send no token.
    assert httpx.get(f"{tenants.facade.url}/health").status_code == 200
    assert httpx.get(f"{tenants.facade.url}/metrics").status_code == 200


def test_a_viewer_reads_but_may_not_create_or_act(
    tenants: Tenants, account: AccountFactory
) -> None:
    editor = account(tenants.a, "editor", EDITOR)
    viewer = account(tenants.a, "viewer", VIEWER)
    made = _post(tenants.url(tenants.a), editor)
    assert made.status_code == 201, made.text
    order_id = made.json()["id"]
    assert made.headers["location"] == f"/namespaces/{tenants.a}/orders/{order_id}"

    read = httpx.get(tenants.url(tenants.a, f"/{order_id}"), headers=viewer.headers)
    assert read.status_code == 200, read.text
    assert read.json()["namespace"] == tenants.a
    # /orders is the façade's default namespace: the same order.
    listed = httpx.get(f"{tenants.facade.url}/orders", headers=viewer.headers)
    assert [o["id"] for o in listed.json()["orders"]] == [order_id]

    refused = _post(tenants.url(tenants.a), viewer)
    problem = assert_problem(refused, 403, "forbidden")
    assert problem["missing"] == {
        "verb": "create", "group": "korder.dev", "resource": "orders", "namespace": tenants.a,
    }  # fmt: skip
    assert viewer.user in problem["detail"]
    assert "cannot create" in problem["detail"]
    for method, path, verb in (
        ("DELETE", f"/{order_id}", "delete"),
        ("POST", f"/{order_id}/process", "patch"),
    ):
        answer = httpx.request(method, tenants.url(tenants.a, path), headers=viewer.headers)
        assert assert_problem(answer, 403, "forbidden")["missing"]["verb"] == verb
    # Nothing the viewer asked for happened.
    wait_for_status(tenants.facade, order_id, "Confirmed", headers=editor.headers)
    after = httpx.get(tenants.url(tenants.a, f"/{order_id}"), headers=viewer.headers).json()
    assert after["cancelRequested"] is False
    assert after["processRequested"] is False


def test_an_editor_of_one_namespace_cannot_see_anothers_orders(
    tenants: Tenants, account: AccountFactory
) -> None:
    """403, not 404, and the same 403 whether the order exists or not.

    The permission is decided on the namespace before any order is read, so the
    answer tells the caller that they may not look there and nothing more: a 404 for
    a missing order beside a 403 for a present one would reveal which ids exist.
    """
    editor_a = account(tenants.a, "editor", EDITOR)
    editor_b = account(tenants.b, "editor", EDITOR)
    made = _post(tenants.url(tenants.b), editor_b)
    assert made.status_code == 201, made.text
    theirs = made.json()["id"]

    for path in (f"/{theirs}", "/ord-does-not-exist", f"/{theirs}/events", ""):
        answer = httpx.get(tenants.url(tenants.b, path), headers=editor_a.headers)
        problem = assert_problem(answer, 403, "forbidden")
        assert problem["missing"]["namespace"] == tenants.b
    cancel = httpx.delete(tenants.url(tenants.b, f"/{theirs}"), headers=editor_a.headers)
    assert_problem(cancel, 403, "forbidden")
    # In their own namespace the list does not show the other tenant's order.
    own = httpx.get(tenants.url(tenants.a), headers=editor_a.headers)
    assert own.status_code == 200, own.text
    assert own.json()["orders"] == []
    # Listing across namespaces needs list at the cluster scope.
    across = httpx.get(
        f"{tenants.facade.url}/orders", params={"allNamespaces": "true"}, headers=editor_a.headers
    )
    assert assert_problem(across, 403, "forbidden")["missing"]["namespace"] == ""
    # The owner still has it, untouched.
    mine = httpx.get(tenants.url(tenants.b, f"/{theirs}"), headers=editor_b.headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["cancelRequested"] is False


def test_listing_across_namespaces_for_a_caller_allowed_cluster_wide(
    tenants: Tenants, account: AccountFactory, kubectl: Kubectl, namespace: str
) -> None:
    editor_a = account(tenants.a, "editor", EDITOR)
    editor_b = account(tenants.b, "editor", EDITOR)
    auditor = account(tenants.a, "auditor", VIEWER, cluster_wide=True)
    ids = {
        _post(tenants.url(ns), who).json()["id"]: ns
        for ns, who in ((tenants.a, editor_a), (tenants.b, editor_b))
    }
    # The façade itself may list across namespaces only where a shop binds it to.
    kubectl(
        "create", "clusterrolebinding", f"{namespace}-api-list-all",
        "--clusterrole=korder-api-list-all-namespaces",
        "--serviceaccount=korder-system:korder-api",
    )  # fmt: skip
    try:
        every = httpx.get(
            f"{tenants.facade.url}/orders",
            params={"allNamespaces": "true", "limit": 500},
            headers=auditor.headers,
        )
        assert every.status_code == 200, every.text
        seen = {o["id"]: o["namespace"] for o in every.json()["orders"]}
        assert {i: seen.get(i) for i in ids} == ids
    finally:
        kubectl("delete", "clusterrolebinding", f"{namespace}-api-list-all")


def test_one_key_from_two_callers_makes_two_orders(
    tenants: Tenants, account: AccountFactory
) -> None:
    alice = account(tenants.a, "alice", EDITOR)
    bob = account(tenants.a, "bob", EDITOR)
    key = f"checkout-{uuid.uuid4().hex}"
    first = _post(tenants.url(tenants.a), alice, key)
    assert first.status_code == 201, first.text
    # Bob's request is another one (another customer): not a 422, not Alice's order.
    other = spec()
    other["customer"] = {**other["customer"], "id": "CUST-BOB"}
    second = _post(tenants.url(tenants.a), bob, key, customer=other["customer"])
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["customer"]["id"] == "CUST-BOB"
    # Each replays their own.
    again = _post(tenants.url(tenants.a), alice, key)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    bob_again = _post(tenants.url(tenants.a), bob, key, customer=other["customer"])
    assert bob_again.json()["id"] == second.json()["id"]
    # Neither name tells whose it is: no user name, no key in it.
    for answer, who in ((first, "alice"), (second, "bob")):
        assert who not in answer.json()["id"]
        assert key not in answer.json()["id"]

    # Keys of actions are the caller's too: Bob's cancel with Alice's process key is his own.
    order_path = f"/{first.json()['id']}"
    wait_for_status(tenants.facade, first.json()["id"], "Confirmed", headers=alice.headers)
    process = httpx.post(
        tenants.url(tenants.a, f"{order_path}/process"),
        headers={**alice.headers, "Idempotency-Key": "act-1"},
    )
    assert process.status_code == 202, process.text
    cancel = httpx.delete(
        tenants.url(tenants.a, order_path), headers={**bob.headers, "Idempotency-Key": "act-1"}
    )
    assert cancel.status_code == 202, cancel.text
    assert "idempotent-replayed" not in cancel.headers
    assert cancel.json()["cancelRequested"] is True


def test_a_revoked_permission_counts_within_the_cache_time(
    tenants: Tenants, account: AccountFactory, kubectl: Kubectl
) -> None:
    editor = account(tenants.a, "editor", EDITOR)
    assert httpx.get(tenants.url(tenants.a), headers=editor.headers).status_code == 200
    kubectl("delete", "rolebinding", "editor", "-n", tenants.a)

    def refused() -> bool:
        answer = httpx.get(tenants.url(tenants.a), headers=editor.headers)
        return answer.status_code == 403

    # KORDER_AUTH_CACHE_SECONDS is 2 here; the authorizer's own cache adds a little.
    wait_for(refused, timeout=15, what="the removed RoleBinding to count")
