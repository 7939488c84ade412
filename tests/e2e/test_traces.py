"""One trace per order, read back from a real Jaeger.

Jaeger's all-in-one (built from ``hack/jaeger`` into the cache, like the control plane)
runs with ``hack/jaeger/config.yaml`` on free loopback ports: in-memory storage, OTLP over
HTTP in and its query API out. A facade, an operator and the reference participants run
with the standard ``OTEL_*`` variables pointed at it, on a control plane of this module's
own (the suite's operator exports nothing and would act beside them). An order created
through the facade, with the test's own ``traceparent`` as a client would send it, is
followed to ``Confirmed``, and one declined by payment to ``Failed`` through its
compensation; then Jaeger's ``/api/traces/{id}`` must hold, in that one trace:

- spans of the facade, the operator and the participants;
- the facade's ``POST /orders`` server span, child of the test's span, and its
  ``create Order`` client span, whose context the Order's annotation carries;
- the operator's step spans (and the compensation's), descendants of ``POST /orders``,
  naming the order;
- for each participant call, the operator's client span, child of its step span, and
  the participant's own server span, child of that client span.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from korder import constants
from korder.localcluster import binaries, processes, system
from korder.localcluster.controlplane import free_port
from tests.e2e.api import create
from tests.e2e.conftest import (
    Component,
    Kubectl,
    Participants,
    start_api,
    start_operator,
    start_participants,
)
from tests.support.orders import spec
from tests.support.waiting import wait_for

#: Jaeger's configuration: loopback only, memory, OTLP/HTTP in, the query API out.
JAEGER_CONFIG = Path(__file__).resolve().parents[2] / "hack" / "jaeger" / "config.yaml"


@dataclass(frozen=True)
class Jaeger:
    otlp_url: str
    query_url: str
    log: Path

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans of ``trace_id``, each with its service's name; [] while there are none."""
        response = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=5.0)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        spans: list[dict[str, Any]] = []
        for found in response.json()["data"]:
            services = {pid: p["serviceName"] for pid, p in found["processes"].items()}
            for span in found["spans"]:
                spans.append({**span, "service": services[span["processID"]]})
        return spans


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    binary = binaries.resolve_jaeger()
    otlp, query = free_port(), free_port()
    env = {
        **os.environ,
        "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{otlp}",
        "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{query}",
        "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{free_port()}",
    }
    log = tmp_path_factory.mktemp("jaeger") / "jaeger.log"
    proc = processes.spawn([binary, "--config", JAEGER_CONFIG], log=log, env=env)
    started = Jaeger(f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}", log)
    try:
        processes.wait_healthy(proc, f"{started.query_url}/api/services", "jaeger")
        # The receiver starts after the query extension: wait for it to take OTLP too.
        wait_for(lambda: _takes_otlp(started.otlp_url), timeout=30, what="jaeger's OTLP receiver")
    except BaseException:
        print(log.read_text(errors="replace")[-4000:])
        processes.stop([proc])
        raise
    yield started
    processes.stop([proc])


def _takes_otlp(url: str) -> bool:
    try:
        # An empty export request is a valid one: 200 once the receiver listens.
        answer = httpx.post(
            f"{url}/v1/traces", content=b"", headers={"content-type": "application/x-protobuf"}
        )
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


@dataclass
class Traced:
    facade: Component
    operator: Component
    participants: Participants
    kubectl: Kubectl


@pytest.fixture(scope="module")
def traced(
    own_cluster: system.Cluster, jaeger: Jaeger, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traced]:
    """The three components, exporting to ``jaeger`` by the standard variables alone."""
    folder = tmp_path_factory.mktemp("traced")
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_url,
        # Spans leave in batches every 100 ms rather than 5 s: the test reads them back.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    participants = start_participants(folder / "participants.log", **otel)
    started = [participants.component]
    try:
        operator = start_operator(
            own_cluster.kubeconfig,
            participants,
            folder / "operator.log",
            KORDER_OPERATOR_LEADER_ELECTION="false",
            **otel,
        )
        started.append(operator)
        facade = start_api(own_cluster.kubeconfig, "default", folder / "api.log", **otel)
        started.append(facade)
        yield Traced(facade, operator, participants, Kubectl(own_cluster))
    finally:
        processes.stop([c.proc for c in started])


def test_one_trace_per_order_from_the_post_through_the_operator_to_the_participants(
    traced: Traced, jaeger: Jaeger
) -> None:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    response = create(
        traced.facade,
        key="traced-order",
        Prefer="wait=60",
        traceparent=f"00-{trace_id}-{caller}-01",
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "Confirmed", response.text
    order = traced.kubectl.json("get", "orders", response.json()["id"], "-n", "default")
    uid = order["metadata"]["uid"]
    carried = json.loads(order["metadata"]["annotations"][constants.ANNOTATION_TRACE_CONTEXT])

    expected = {
        ("korder-api", "POST /orders"),
        ("korder-api", "create Order"),
        ("korder-operator", "reconcile Order"),
        ("korder-operator", "step reserve-inventory"),
        ("korder-operator", "step capture-payment"),
        ("korder-operator", "POST inventory"),
        ("korder-operator", "POST payment"),
        ("korder-participants", "POST /inventory/reservations"),
        ("korder-participants", "POST /payment/charges"),
    }
    spans = _wait_for_spans(jaeger, trace_id, expected)
    assert {s["traceID"] for s in spans} == {trace_id}
    by_id = {s["spanID"]: s for s in spans}
    post = _one(spans, "korder-api", "POST /orders")
    assert _parent(post) == caller  # the facade continued the caller's trace
    create_span = _one(spans, "korder-api", "create Order")
    assert _parent(create_span) == post["spanID"]
    # The annotation is the create span's context: the operator's way into this trace.
    assert carried["traceparent"].startswith(f"00-{trace_id}-{create_span['spanID']}-")

    for step, participant, route in (
        ("reserve-inventory", "inventory", "POST /inventory/reservations"),
        ("capture-payment", "payment", "POST /payment/charges"),
    ):
        step_span = _one(spans, "korder-operator", f"step {step}")
        assert post["spanID"] in _ancestors(step_span, by_id), step
        tags = _tags(step_span)
        assert tags["korder.order.uid"] == uid
        assert tags["korder.order.name"] == order["metadata"]["name"]
        assert tags["k8s.namespace.name"] == "default"
        assert tags["korder.saga.outcome"] == "succeeded"
        assert tags["korder.order.phase"]
        call = _one(spans, "korder-operator", f"POST {participant}")
        assert _parent(call) == step_span["spanID"]
        assert _tags(call)["span.kind"] == "client"
        served = _one(spans, "korder-participants", route)
        assert _parent(served) == call["spanID"]
        assert _tags(served)["span.kind"] == "server"


def test_a_compensation_is_in_the_order_trace_too(traced: Traced, jaeger: Jaeger) -> None:
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    dear = spec(items=[{"productId": "PROD-001", "quantity": 1, "price": "10000.01"}])
    response = create(
        traced.facade, dear, Prefer="wait=60", traceparent=f"00-{trace_id}-{caller}-01"
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "Failed", response.text

    expected = {
        ("korder-api", "POST /orders"),
        ("korder-operator", "step capture-payment"),
        ("korder-operator", "compensation release-inventory"),
        ("korder-participants", "POST /inventory/reservations/{reservation_id}/release"),
    }
    spans = _wait_for_spans(jaeger, trace_id, expected)
    by_id = {s["spanID"]: s for s in spans}
    post = _one(spans, "korder-api", "POST /orders")
    declined = _one(spans, "korder-operator", "step capture-payment")
    assert _tags(declined)["korder.saga.outcome"] == "rejected"
    release = _one(spans, "korder-operator", "compensation release-inventory")
    assert post["spanID"] in _ancestors(release, by_id)
    assert _tags(release)["korder.saga.compensation"] is True
    served = _one(
        spans, "korder-participants", "POST /inventory/reservations/{reservation_id}/release"
    )
    assert by_id[_parent(served)]["operationName"] == "POST inventory"
    assert _parent(by_id[_parent(served)]) == release["spanID"]


def _wait_for_spans(
    jaeger: Jaeger, trace_id: str, expected: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The trace's spans once every expected (service, name) is among them."""

    def complete() -> list[dict[str, Any]] | None:
        spans = jaeger.trace(trace_id)
        return spans if expected <= {(s["service"], s["operationName"]) for s in spans} else None

    try:
        found = wait_for(complete, timeout=30, what=f"trace {trace_id} in jaeger", interval=0.5)
    except AssertionError as exc:
        seen = sorted({(s["service"], s["operationName"]) for s in jaeger.trace(trace_id)})
        raise AssertionError(
            f"trace {trace_id}: missing {sorted(expected - set(seen))}; has {seen}"
        ) from exc
    assert isinstance(found, list)
    return found


def _one(spans: list[dict[str, Any]], service: str, name: str) -> dict[str, Any]:
    """The first span of ``service`` named ``name`` (a step run twice has two)."""
    matching = [s for s in spans if (s["service"], s["operationName"]) == (service, name)]
    assert matching, (service, name)
    return min(matching, key=lambda s: int(s["startTime"]))


def _parent(span: dict[str, Any]) -> str | None:
    parents = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return parents[0] if parents else None


def _ancestors(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    chain, parent = [], _parent(span)
    while parent is not None:
        chain.append(parent)
        parent = _parent(by_id[parent]) if parent in by_id else None
    return chain


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}
