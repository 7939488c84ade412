"""The facade's error shapes, without a cluster (the app's lifespan is not started)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from korder.api.main import create_app
from korder.api.problems import from_kube
from korder.kube import orders
from tests.support.orders import VALID_SPEC


def client() -> TestClient:
    app = create_app()
    # No cluster here: any route that reached the Kubernetes client would fail loudly.
    app.state.kube = None
    return TestClient(app, raise_server_exceptions=True)


def test_validation_error_is_problem_json_naming_the_field() -> None:
    body = {**VALID_SPEC, "items": [{**VALID_SPEC["items"][0], "price": "1.999"}]}
    response = client().post("/orders", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "https://korder.dev/problems/validation"
    assert problem["errors"][0]["field"] == "items.0.price"


def test_malformed_json_is_400() -> None:
    response = client().post(
        "/orders", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "https://korder.dev/problems/malformed-json"


def test_unknown_route_is_problem_json() -> None:
    response = client().get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_an_order_whose_total_cannot_be_an_amount_is_422() -> None:
    items = [{"productId": "PROD-001", "quantity": 1000, "price": "9999999999.99"}]
    response = client().post("/orders", json={**VALID_SPEC, "items": items})
    assert response.status_code == 422
    assert "total" in response.json()["detail"]


def test_a_refused_identity_is_503_with_retry_after_never_500() -> None:
    problem = from_kube(orders.Refused("403 Forbidden: clusterrole korder-api not found"))
    assert problem.status == 503
    assert problem.headers["Retry-After"]
    assert "refused" in problem.detail
