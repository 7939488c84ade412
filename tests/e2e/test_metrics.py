"""Each process's /metrics, scraped and parsed as Prometheus would, while an order goes through.

The names and types are the ones the README documents; the counters must move by
what one order through the facade does (the session's operator and participants
are shared by other tests, so each check is on the difference between a scrape
before and after).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.e2e.api import create
from tests.e2e.conftest import Component, Participants

pytestmark = pytest.mark.usefixtures("operator")

OPERATOR = {
    "korder_orders": "gauge",
    "korder_orders_past_deadline": "gauge",
    "korder_order_phase_transitions": "counter",
    "korder_saga_duration_seconds": "histogram",
    "korder_saga_step_duration_seconds": "histogram",
    "korder_saga_call_duration_seconds": "histogram",
    "korder_saga_retries": "counter",
    "korder_participant_calls": "counter",
    "korder_circuit_breaker_state": "gauge",
    "korder_circuit_breaker_transitions": "counter",
    "korder_operator_leader": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
}
FACADE = {
    "korder_api_requests": "counter",
    "korder_api_request_duration_seconds": "histogram",
    "korder_api_idempotent_replays": "counter",
    "korder_api_wait_duration_seconds": "histogram",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "process_open_fds": "gauge",
    "python_info": "gauge",
    "python_gc_collections": "counter",
}
PARTICIPANTS = {
    "korder_participants_requests": "counter",
    "korder_participants_request_duration_seconds": "histogram",
    "korder_participants_idempotent_replays": "counter",
    "korder_participants_faults_injected": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds": "counter",
    "python_info": "gauge",
}


class Scrape:
    """One scrape of a /metrics endpoint, parsed by prometheus_client's own parser."""

    def __init__(self, url: str) -> None:
        response = httpx.get(url, timeout=5.0)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = list(text_string_to_metric_families(response.text))
        self.types = {f.name: f.type for f in families}
        self.samples: list[Sample] = [s for f in families for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(
            s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()
        )


def scrape(component: Component, path: str = "/metrics") -> Scrape:
    return Scrape(component.metrics_url or f"{component.url}{path}")


def moved(before: Scrape, after: Scrape, name: str, **labels: Any) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_every_process_exports_its_documented_metrics_and_they_move_with_an_order(
    operator: Component, facade: Component, participants: Participants
) -> None:
    operator_before, facade_before = scrape(operator), scrape(facade)
    participants_before = scrape(participants.component)
    for names, found in (
        (OPERATOR, operator_before),
        (FACADE, facade_before),
        (PARTICIPANTS, participants_before),
    ):
        assert {name: found.types.get(name) for name in names} == names

    response = create(facade, key="metrics-e2e", Prefer="wait=60")
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "Confirmed"
    assert create(facade, key="metrics-e2e").headers["Idempotent-Replayed"] == "true"

    operator_after, facade_after = scrape(operator), scrape(facade)
    participants_after = scrape(participants.component)
    transitions = "korder_order_phase_transitions_total"
    for left, entered in (
        ("Pending", "ReservingInventory"),
        ("ReservingInventory", "ProcessingPayment"),
        ("ProcessingPayment", "Confirmed"),
    ):
        labels = {"from": left, "to": entered}
        assert moved(operator_before, operator_after, transitions, **labels) >= 1, labels
    assert moved(operator_before, operator_after, "korder_saga_duration_seconds_count") >= 1
    for step in ("reserve-inventory", "capture-payment"):
        labels = {"step": step, "outcome": "succeeded"}
        for name in ("korder_saga_call_duration_seconds", "korder_saga_step_duration_seconds"):
            assert moved(operator_before, operator_after, f"{name}_count", **labels) >= 1, name
    calls = "korder_participant_calls_total"
    assert moved(operator_before, operator_after, calls, outcome="success") >= 2
    assert operator_after.value("korder_orders", phase="Confirmed") >= 1
    assert operator_after.value("korder_operator_leader") == 1

    route = {"method": "POST", "route": "/orders"}
    requests = "korder_api_requests_total"
    assert moved(facade_before, facade_after, requests, **route, status="201") == 2
    assert moved(facade_before, facade_after, "korder_api_idempotent_replays_total", **route) == 1
    waits = "korder_api_wait_duration_seconds_count"
    assert moved(facade_before, facade_after, waits, action="create", outcome="settled") == 1
    assert facade_after.value("process_resident_memory_bytes") > 0

    served = "korder_participants_requests_total"
    timed = "korder_participants_request_duration_seconds_count"
    for template in ("/inventory/reservations", "/payment/charges"):
        call = {"method": "POST", "route": template}
        assert moved(participants_before, participants_after, served, **call, status="201") >= 1
        assert moved(participants_before, participants_after, timed, **call) >= 1


def test_a_participant_counts_the_faults_it_injected_and_its_replays(
    participants: Participants,
) -> None:
    """Direct calls (no operator in the way, which would retry): an outage, a replay."""
    url, before = participants.url("payment"), scrape(participants.component)
    charge = {"orderId": "metrics-e2e", "amount": "1.00", "currency": "USD",
              "paymentMethod": "credit_card"}  # fmt: skip
    key = {"Idempotency-Key": f"metrics-e2e-{id(before)}"}
    participants.faults("payment", unavailable=True)
    try:
        down = httpx.post(f"{url}/charges", json=charge, headers=key, timeout=5.0)
    finally:
        participants.faults("payment", unavailable=False)
    assert down.status_code == 503
    for _ in range(2):
        assert httpx.post(f"{url}/charges", json=charge, headers=key, timeout=5.0).is_success
    after = scrape(participants.component)
    route = {"route": "/payment/charges"}
    faults = "korder_participants_faults_injected_total"
    assert moved(before, after, faults, **route, fault="unavailable") == 1
    replays = "korder_participants_idempotent_replays_total"
    assert moved(before, after, replays, **route, method="POST") == 1
    requests = "korder_participants_requests_total"
    assert moved(before, after, requests, **route, method="POST", status="503") == 1
