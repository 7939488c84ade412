"""A saga stalled by a participant down past its deadline, resumed by a retry.

On a control plane of its own: the operator here has a short saga deadline (6 s;
the suite's keeps the default), so a participant that is down stalls an order in
seconds. The participants are a process of this module's own, with their state in
a file, so the test can SIGKILL them (down: connection refused) and start them
again on the same ledgers. A retry through the REST API, and one through the
``kubectl korder`` plugin, each resume the step the order stalled on; the ledgers
then show one reservation and one charge, and ``status.history`` who asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from korder.localcluster import processes, system
from tests.e2e.conftest import (
    LEASE,
    Component,
    Participants,
    start_api,
    start_operator,
    start_participants,
)
from tests.e2e.plugin import korder
from tests.support.orders import order_yaml, spec
from tests.support.waiting import wait_for

DEADLINE_SECONDS = "6"


@pytest.fixture(scope="module")
def participants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Participants]:
    """The reference participants, their ledgers in a file: killed and started again."""
    folder = tmp_path_factory.mktemp("retry-participants")
    started = start_participants(
        folder / "participants.log",
        KORDER_PARTICIPANTS_STATE=str(folder / "participants.db"),
        KORDER_LOG_LEVEL="WARNING",
    )
    yield started
    processes.stop([started.component.proc])


@pytest.fixture(scope="module")
def operator(
    own_cluster: system.Cluster,
    participants: Participants,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Component]:
    """An operator with a short saga deadline, the only one on this control plane."""
    component = start_operator(
        own_cluster.kubeconfig,
        participants,
        tmp_path_factory.mktemp("retry-operator") / "operator.log",
        KORDER_SAGA_DEADLINE_SECONDS=DEADLINE_SECONDS,
        KORDER_RETRY_CAP_SECONDS="1",
        KORDER_BREAKER_RESET_SECONDS="1",
        KORDER_PARTICIPANT_TIMEOUT_SECONDS="5",
        **LEASE,
    )
    yield component
    processes.stop([component.proc])


@pytest.fixture
def namespace(own_cluster: system.Cluster, request: pytest.FixtureRequest) -> str:
    name: str = request.node.name.lower().replace("_", "-")[:40].strip("-")
    own_cluster.kubectl_run("create", "namespace", name)
    return name


@pytest.fixture
def facade(own_cluster: system.Cluster, namespace: str, tmp_path: Path) -> Iterator[Component]:
    component = start_api(own_cluster.kubeconfig, namespace, tmp_path / "api.log")
    yield component
    processes.stop([component.proc])


def read(cluster: system.Cluster, namespace: str, name: str) -> dict[str, Any]:
    done = cluster.kubectl_run("get", "order", name, "-n", namespace, "-o", "json")
    order: dict[str, Any] = json.loads(done.stdout)
    return order


def condition(order: dict[str, Any], type_: str) -> tuple[str, str] | None:
    for c in order.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c["reason"]
    return None


def wait_stalled(cluster: system.Cluster, namespace: str, name: str) -> dict[str, Any]:
    def stalled() -> dict[str, Any] | None:
        order = read(cluster, namespace, name)
        return order if condition(order, "Stalled") == ("True", "DeadlineExceeded") else None

    found = wait_for(stalled, timeout=90, what=f"order {name} to stall on its deadline")
    assert isinstance(found, dict)
    return found


def history_types(order: dict[str, Any]) -> list[str]:
    return [e["type"] for e in order["status"].get("history") or []]


def test_a_participant_down_past_the_deadline_stalls_and_a_rest_retry_confirms_once(
    own_cluster: system.Cluster,
    operator: Component,
    participants: Participants,
    facade: Component,
    namespace: str,
) -> None:
    participants.component.kill()  # every participant down: the reservation cannot be made
    try:
        created = httpx.post(
            f"{facade.url}/orders",
            json=spec(),
            headers={"Idempotency-Key": "stall-1"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        name = created.json()["id"]
        stalled = wait_stalled(own_cluster, namespace, name)
    finally:
        participants.component.restart()
    assert stalled["status"]["phase"] == "ReservingInventory", "stalled in its step, not failed"
    assert condition(stalled, "InventoryReserved") == ("Unknown", "DeadlineExceeded")
    assert condition(stalled, "Reconciling") == ("False", "ReservingInventory")
    assert "DeadlineExceeded" in history_types(stalled)
    assert "Compensating" not in {e["phase"] for e in stalled["status"]["history"]}
    view = httpx.get(f"{facade.url}/orders/{name}", timeout=10).json()
    assert "deadline" in view["stalled"]

    url = f"{facade.url}/orders/{name}/retry"
    headers = {"Idempotency-Key": "retry-1", "Prefer": "wait=60"}
    body = {"requestedBy": "ops@example.com"}
    retried = httpx.post(url, json=body, headers=headers, timeout=90)
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "Confirmed", retried.text
    assert retried.json()["retry"]["attempt"] == 1
    replay = httpx.post(url, json=body, headers=headers, timeout=90)
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"

    order = read(own_cluster, namespace, name)
    uid = order["metadata"]["uid"]
    assert order["spec"]["retry"]["attempt"] == 1, "the replay asked for nothing more"
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}
    resumed = next(e for e in order["status"]["history"] if e["type"] == "SagaResumed")
    assert resumed["data"]["requestedBy"] == "ops@example.com"
    assert resumed["data"]["attempt"] == "1"
    assert order["status"]["lastRetry"]["resumedAt"] == resumed["time"]
    types = history_types(order)
    assert (
        types.index("DeadlineExceeded") < types.index("SagaResumed") < types.index("OrderConfirmed")
    )
    assert condition(order, "Stalled") == ("False", "Confirmed")

    again = httpx.post(url, json={}, timeout=30)
    assert again.status_code == 409, again.text
    assert again.json()["type"] == "https://korder.dev/problems/not-retryable"
    assert "Confirmed" in again.json()["detail"]


def test_payment_down_stalls_after_the_reservation_and_the_plugin_retry_charges_once(
    own_cluster: system.Cluster,
    operator: Component,
    participants: Participants,
    namespace: str,
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "order.yaml"
    manifest.write_text(order_yaml("gitops-1", spec()))
    participants.faults("payment", unavailable=True)
    try:
        own_cluster.kubectl_run("apply", "-n", namespace, "-f", str(manifest))
        stalled = wait_stalled(own_cluster, namespace, "gitops-1")
    finally:
        participants.faults("payment", unavailable=False)
    assert stalled["status"]["phase"] == "ProcessingPayment"
    assert condition(stalled, "InventoryReserved") == ("True", "Succeeded")

    listed = korder(own_cluster.kubeconfig, "get", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert "Stalled: DeadlineExceeded" in listed.stdout

    done = korder(own_cluster.kubeconfig, "retry", "gitops-1", "-n", namespace)
    assert done.returncode == 0, done.stderr
    assert "retry requested (attempt 1, by " in done.stdout
    wait_for(
        lambda: read(own_cluster, namespace, "gitops-1")["status"]["phase"] == "Confirmed",
        timeout=60,
        what="the retried order to confirm",
    )
    order = read(own_cluster, namespace, "gitops-1")
    uid = order["metadata"]["uid"]
    assert participants.effects("inventory", uid) == {"reserve": 1}
    assert participants.effects("payment", uid) == {"charge": 1}
    resumed = next(e for e in order["status"]["history"] if e["type"] == "SagaResumed")
    # The plugin names the user the API server authenticated (the admin certificate's).
    who = resumed["data"]["requestedBy"]
    assert who
    assert who != "unknown"
    assert f"by {who}" in done.stdout
    shown = korder(own_cluster.kubeconfig, "history", "gitops-1", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    for event in ("DeadlineExceeded", "SagaResumed", "OrderConfirmed"):
        assert event in shown.stdout
