"""Errors over HTTP: malformed and oversized bodies, an unreachable API server, health, metrics.

Every error is an RFC 9457 problem with a stable type; nothing a client sends is a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from korder.localcluster.controlplane import free_port
from tests.e2e.api import assert_problem, create
from tests.e2e.conftest import Component, FacadeFactory, Kubectl, bind_api
from tests.support.orders import spec
from tests.support.waiting import wait_for


def test_health_and_metrics(facade: Component) -> None:
    health = httpx.get(f"{facade.url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "apiServer": "reachable"}
    create(facade)
    create(facade, key="counted")
    create(facade, key="counted")
    metrics = httpx.get(f"{facade.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'korder_api_requests_total{method="POST",route="/orders",status="201"} 3.0' in text
    assert 'korder_api_idempotent_replays_total{method="POST",route="/orders"} 1.0' in text
    assert "korder_api_request_duration_seconds_bucket" in text


def test_malformed_json_is_400_and_a_wrong_content_type_is_422(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    url = f"{facade.url}/orders"
    json_type = {"content-type": "application/json"}
    assert_problem(
        httpx.post(url, content=b'{"customer": ', headers=json_type), 400, "malformed-json"
    )
    assert_problem(httpx.post(url, content=b"\xff\xfe", headers=json_type), 400, "malformed-json")
    assert_problem(httpx.post(url, content=b"[]", headers=json_type), 422, "validation")
    assert_problem(
        httpx.post(url, content=b"customer=1", headers={"content-type": "text/plain"}),
        422,
        "validation",
    )
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout == ""


def test_a_body_over_the_limit_is_413_before_it_is_parsed(
    kubectl: Kubectl, namespace: str, start_facade: FacadeFactory
) -> None:
    small = start_facade(KORDER_MAX_BODY_BYTES="2048")
    url = f"{small.url}/orders"
    # Valid JSON that would be a valid order if it were read: only its size refuses it.
    big = spec(notes="n" * 1990)
    assert_problem(httpx.post(url, json=big), 413, "payload-too-large")

    def chunks() -> Iterator[bytes]:
        yield b'{"notes": "'
        for _ in range(100):
            yield b"x" * 100
        yield b'"}'

    # Without a Content-Length (chunked), the body is refused as soon as it passes the limit.
    assert_problem(httpx.post(url, content=chunks()), 413, "payload-too-large")
    assert_problem(
        httpx.put(f"{url}/ord-x", content=b"{" + b" " * 4096 + b"}"), 413, "payload-too-large"
    )
    assert create(small).status_code == 201, "a body under the limit still works"
    assert kubectl("get", "orders", "-n", namespace, "-o", "name").stdout.count("\n") == 1


def test_an_unreachable_api_server_is_503_with_retry_after(
    kubectl: Kubectl, start_facade: FacadeFactory, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(kubectl.cluster.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    facade = start_facade(kubeconfig=dead, healthy=False)

    health = httpx.get(f"{facade.url}/health")
    assert health.status_code == 503
    assert health.json()["apiServer"] == "unreachable"
    # Not ready, but alive: the kubelet must not restart it for the API server's outage.
    assert httpx.get(f"{facade.url}/livez").json() == {"status": "ok"}
    for response in (
        create(facade),
        create(facade, key="while-down"),
        httpx.get(f"{facade.url}/orders"),
        httpx.get(f"{facade.url}/orders/ord-1"),
        httpx.get(f"{facade.url}/orders/ord-1/events"),
        httpx.put(
            f"{facade.url}/orders/ord-1", json={"shippingAddress": spec()["shippingAddress"]}
        ),
        httpx.delete(f"{facade.url}/orders/ord-1"),
        httpx.post(f"{facade.url}/orders/ord-1/process"),
    ):
        assert_problem(response, 503, "api-server-unavailable")
        assert response.headers["Retry-After"] == "5"


def test_a_facade_the_api_server_refuses_answers_503_not_500(
    kubectl: Kubectl, namespace: str, facade: Component
) -> None:
    """kube-apiserver refuses every ServiceAccount for a moment after a restart (its
    authorizer has not loaded RBAC yet), which the chaos run met as 500s. Here the
    RoleBinding goes away for real: the same 403, held long enough to look at."""
    account = "system:serviceaccount:korder-system:korder-api"
    kubectl("delete", "rolebinding", "korder-api", "-n", namespace)
    wait_for(
        lambda: kubectl(
            "auth", "can-i", f"--as={account}", "create", "orders.korder.dev", "-n", namespace,
            check=False,
        ).stdout.strip() == "no",
        timeout=10,
        what="the RoleBinding to be gone",
    )  # fmt: skip
    problem = assert_problem(create(facade, key="refused"), 503, "api-server-unavailable")
    assert "refused" in problem["detail"]
    assert kubectl.json("get", "orders", "-n", namespace)["items"] == []
    assert "refused the facade's ServiceAccount" in facade.tail()

    bind_api(kubectl, namespace)
    assert create(facade, key="refused").status_code == 201
