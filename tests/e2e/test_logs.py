"""The one log shape, read from the real processes' logs while an order goes through.

The facade, the operator and the participants write JSON lines (their stderr is a
file here, not a terminal); one order's request id, Idempotency-Key and id must be
found in them: the facade's lines carry the request's id and key and name the order,
the operator's (its own and Kopf's) name the order by namespace, name and uid, and
the participants' carry the key of the operator's call for it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.api import assert_problem, create
from tests.e2e.conftest import Component, Kubectl, Participants
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("operator")

SHAPE = ("time", "level", "component", "logger", "message")


def lines(component: Component) -> list[dict[str, Any]]:
    """Every line of the component's log, each of which must be one JSON object."""
    text = component.log.read_text(errors="replace")
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)  # not JSON: a line outside the shape
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def found(
    component: Component, match: Callable[[dict[str, Any]], bool], what: str
) -> list[dict[str, Any]]:
    """The lines that ``match``, once there is one (a process writes its log as it goes)."""

    def matching() -> list[dict[str, Any]] | None:
        return [e for e in lines(component) if match(e)] or None

    entries = wait_for(matching, timeout=30, what=what)
    assert isinstance(entries, list)
    return entries


def test_one_orders_request_id_key_and_id_are_in_every_components_lines(
    facade: Component,
    operator: Component,
    participants: Participants,
    kubectl: Kubectl,
    namespace: str,
) -> None:
    request_id, key = f"req-{uuid.uuid4().hex[:12]}", f"logs-{uuid.uuid4().hex[:8]}"
    headers = {"Prefer": "wait=60", "X-Request-ID": request_id}
    response = create(facade, None, key, **headers)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "Confirmed"
    assert response.headers["X-Request-ID"] == request_id
    order_id = response.json()["id"]
    uid = kubectl.json("get", "order", order_id, "-n", namespace)["metadata"]["uid"]

    (access,) = found(facade, lambda e: e.get("request_id") == request_id, "the access line")
    assert list(access)[: len(SHAPE)] == list(SHAPE)
    assert (access["component"], access["logger"], access["level"]) == (
        "api",
        "korder.access",
        "INFO",
    )
    assert access["idempotency_key"] == key
    assert (access["order"], access["namespace"]) == (order_id, namespace)
    assert (access["method"], access["route"], access["status"]) == ("POST", "/orders", 201)
    assert access["message"] == "POST /orders 201"
    assert not [e for e in lines(facade) if e["logger"].startswith("uvicorn.access")]

    def of_the_order(e: dict[str, Any]) -> bool:
        return e.get("order") == order_id and e.get("namespace") == namespace

    # The transition into Confirmed is the saga's last line about it.
    ours = found(operator, lambda e: of_the_order(e) and e.get("phase") == "Confirmed", "saga")
    kopfs = found(operator, lambda e: of_the_order(e) and e["logger"].startswith("kopf"), "Kopf")
    for entry in ours + kopfs:
        assert entry["component"] == "operator"
        assert entry["uid"] == uid
        assert list(entry)[: len(SHAPE)] == list(SHAPE)
        assert "object" not in entry
        assert "k8s_ref" not in entry

    calls = found(
        participants.component,
        lambda e: str(e.get("idempotency_key", "")).startswith(f"{uid}/"),
        "the participants' lines of the saga's calls",
    )
    routes = {(e["route"], e["status"]) for e in calls if e["logger"] == "korder.access"}
    assert {("/inventory/reservations", 201), ("/payment/charges", 201)} <= routes
    assert all(e["component"] == "participants" and e["request_id"] for e in calls)


def test_an_error_answer_carries_its_request_id_and_an_insane_one_is_replaced(
    facade: Component,
) -> None:
    missing = httpx.get(f"{facade.url}/orders/no-such-order", headers={"X-Request-ID": "r-404"})
    problem = assert_problem(missing, 404, "order-not-found")
    assert missing.headers["X-Request-ID"] == problem["requestId"] == "r-404"
    malformed = httpx.post(
        f"{facade.url}/orders",
        content=b"{",
        headers={"content-type": "application/json", "X-Request-ID": "not an id " * 20 + "!"},
    )
    problem = assert_problem(malformed, 400, "malformed-json")
    made = malformed.headers["X-Request-ID"]
    assert made == problem["requestId"]
    assert len(made) == 32
    (line,) = found(facade, lambda e: e.get("request_id") == made, "the refusal's line")
    assert (line["status"], line["route"]) == (400, "/orders")
