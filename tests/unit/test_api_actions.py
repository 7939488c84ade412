"""The actions' phase rules through the HTTP routes, over a fake Kubernetes API client.

The saga moves orders through phases; here a test sets the phase itself, so each
action's 202 and 409 are checked without an operator. The fake stands in for
lightkube's client, below the real Kubernetes layer (:mod:`korder.kube.orders`),
and honours what that layer relies on: merge patches guarded by the resourceVersion.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from korder.api.main import create_app
from tests.support.orders import spec


class FakeKube:
    """lightkube's AsyncClient, as far as the routes' reads and merge patches use it."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.conflicts_to_inject = 0

    def put(self, name: str, phase: str, **spec_changes: Any) -> None:
        self.version += 1
        self.objects[name] = {
            "metadata": {"name": name, "resourceVersion": str(self.version), "uid": name},
            "spec": spec(**spec_changes),
            "status": {"phase": phase, "total": "44.98"},
        }

    async def get(self, _res: object, name: str, namespace: str | None = None) -> dict[str, Any]:
        if name not in self.objects:
            raise _api_error(404, "NotFound")
        return copy.deepcopy(self.objects[name])

    async def patch(
        self, _res: object, name: str, patch: dict[str, Any], **_: object
    ) -> dict[str, Any]:
        current = self.objects[name]
        if self.conflicts_to_inject:
            # Someone else (the operator) wrote in between.
            self.conflicts_to_inject -= 1
            self.version += 1
            current["metadata"]["resourceVersion"] = str(self.version)
        if patch["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise _api_error(409, "Conflict")
        for key, value in patch.get("spec", {}).items():
            if value is None:
                current["spec"].pop(key, None)
            else:
                current["spec"][key] = value
        current["metadata"].setdefault("annotations", {}).update(
            patch["metadata"].get("annotations", {})
        )
        self.version += 1
        current["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(current)


def _api_error(code: int, reason: str) -> ApiError:
    return ApiError(status=Status(code=code, reason=reason, message=reason))


@pytest.fixture
def fake() -> FakeKube:
    return FakeKube()


@pytest.fixture
def client(fake: FakeKube) -> TestClient:
    app = create_app()
    app.state.kube = fake  # every call of the Kubernetes layer goes to the fake
    return TestClient(app)


ACTIONS = {
    "process": ("post", "/orders/o/process", None),
    "fulfill": ("post", "/orders/o/fulfill", {"carrier": "EXPRESS"}),
    "cancel": ("delete", "/orders/o", None),
}


@pytest.mark.parametrize(
    ("action", "phase", "expected"),
    [
        ("process", "Confirmed", 202),
        ("process", "Pending", 409),
        ("process", "Processing", 409),
        ("process", "Failed", 409),
        ("fulfill", "Processing", 202),
        ("fulfill", "Confirmed", 409),
        ("fulfill", "Fulfilled", 409),
        ("cancel", "Confirmed", 202),
        ("cancel", "Processing", 202),
        ("cancel", "Fulfilled", 409),
        ("cancel", "Failed", 409),
    ],
)
def test_action_by_phase(
    fake: FakeKube, client: TestClient, action: str, phase: str, expected: int
) -> None:
    fake.put("o", phase)
    method, path, body = ACTIONS[action]
    response = client.request(method, path, json=body)
    assert response.status_code == expected, response.text
    stored = fake.objects["o"]["spec"]
    if expected == 409:
        assert response.json()["type"] == "https://korder.dev/problems/wrong-phase"
        assert phase in response.json()["detail"] or "cancel" in response.json()["detail"]
        assert not stored.get("processRequested")
        assert not stored.get("fulfillment")
        assert not stored.get("cancelRequested")
    else:
        assert response.headers["ETag"] == f'"{fake.objects["o"]["metadata"]["resourceVersion"]}"'


def test_put_after_fulfilment_is_409(fake: FakeKube, client: TestClient) -> None:
    fake.put("o", "Fulfilled", fulfillment={"carrier": "STANDARD"})
    address = spec()["shippingAddress"]
    response = client.put("/orders/o", json={"shippingAddress": address})
    assert response.status_code == 409


def test_a_write_retries_when_the_order_changed_under_it(
    fake: FakeKube, client: TestClient
) -> None:
    fake.put("o", "Confirmed")
    fake.conflicts_to_inject = 2
    response = client.post("/orders/o/process", headers={"Idempotency-Key": "k"})
    assert response.status_code == 202
    assert fake.objects["o"]["spec"]["processRequested"] is True


def test_a_write_that_never_wins_is_409_not_a_loop(fake: FakeKube, client: TestClient) -> None:
    fake.put("o", "Confirmed")
    fake.conflicts_to_inject = 1000
    response = client.post("/orders/o/process")
    assert response.status_code == 409
    assert response.json()["type"] == "https://korder.dev/problems/concurrent-modification"


def test_a_replayed_action_answers_its_first_status_even_from_another_phase(
    fake: FakeKube, client: TestClient
) -> None:
    fake.put("o", "Confirmed")
    first = client.post("/orders/o/process", headers={"Idempotency-Key": "p"})
    assert first.status_code == 202
    fake.objects["o"]["status"]["phase"] = "Processing"  # the saga moved on
    replay = client.post("/orders/o/process", headers={"Idempotency-Key": "p"})
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["status"] == "Processing", "the order as it is now"
    fresh = client.post("/orders/o/process", headers={"Idempotency-Key": "q"})
    assert fresh.status_code == 409, "a new key is a new request, and the phase is wrong now"


def test_a_put_removes_what_it_leaves_out_and_keeps_the_rest(
    fake: FakeKube, client: TestClient
) -> None:
    fake.put("o", "Confirmed", notes="ring twice", billingAddress=spec()["shippingAddress"])
    address = {**spec()["shippingAddress"], "city": "Paris"}
    response = client.put("/orders/o", json={"shippingAddress": address})
    assert response.status_code == 200, response.text
    stored = fake.objects["o"]["spec"]
    assert stored["shippingAddress"]["city"] == "Paris"
    assert "notes" not in stored
    assert "billingAddress" not in stored
    assert stored["items"] == spec()["items"]


def test_a_put_that_changes_an_immutable_field_names_it(fake: FakeKube, client: TestClient) -> None:
    fake.put("o", "Confirmed")
    body = {
        "shippingAddress": spec()["shippingAddress"],
        "currency": "EUR",
        "items": spec()["items"],
    }
    response = client.put("/orders/o", json=body)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["currency"]


STOPPED = {
    "type": "PaymentCaptured",
    "status": "Unknown",
    "reason": "DeadlineExceeded",
    "message": "capture-payment: saga deadline of 300s exceeded; last error: 503",
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


def test_retry_of_a_stalled_order_asks_once(fake: FakeKube, client: TestClient) -> None:
    fake.put("o", "ProcessingPayment")
    fake.objects["o"]["status"]["conditions"] = [STOPPED]
    response = client.post("/orders/o/retry", json={"requestedBy": "alice"})
    assert response.status_code == 202, response.text
    asked = fake.objects["o"]["spec"]["retry"]
    assert (asked["attempt"], asked["requestedBy"]) == (1, "alice")
    assert response.json()["retry"]["attempt"] == 1
    # Not acted on yet: asking again is the same retry, not a second one.
    assert client.post("/orders/o/retry").status_code == 202
    assert fake.objects["o"]["spec"]["retry"]["attempt"] == 1
    # Once the operator acted on it, a new retry is the next attempt.
    fake.objects["o"]["status"]["lastRetry"] = {"attempt": 1}
    assert client.post("/orders/o/retry").status_code == 202
    assert fake.objects["o"]["spec"]["retry"]["attempt"] == 2


@pytest.mark.parametrize("phase", ["Confirmed", "Failed", "ProcessingPayment", "Cancelled"])
def test_retry_of_an_order_that_is_not_stalled_is_409(
    fake: FakeKube, client: TestClient, phase: str
) -> None:
    fake.put("o", phase)
    response = client.post("/orders/o/retry", headers={"Idempotency-Key": "r-1"})
    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == "https://korder.dev/problems/not-retryable"
    assert phase in problem["detail"]
    assert "retry" not in fake.objects["o"]["spec"]
