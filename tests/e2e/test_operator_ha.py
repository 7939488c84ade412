"""Two operator replicas: exactly one acts, and the other takes over when it dies.

These tests run on a control plane of their own: the suite's operator watches
every namespace of the shared one, and would act beside the replicas under test.
The participants are the suite's (their ledgers are keyed by the orders' UIDs).
The Lease is short here (4 s) so a takeover takes seconds; ``make bench`` measures
the failover with the default settings.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from korder.localcluster import processes, system
from tests.e2e.conftest import LEASE, Component, Kubectl, Participants, start_operator
from tests.support.orders import orders_yaml
from tests.support.waiting import wait_for


@pytest.fixture
def replicas(
    own_cluster: system.Cluster, participants: Participants, tmp_path: Path
) -> Iterator[dict[str, Component]]:
    """Two operator replicas, ``a`` started (and leading) before ``b``."""
    started: dict[str, Component] = {}
    for identity in ("a", "b"):
        started[identity] = start_operator(
            own_cluster.kubeconfig,
            participants,
            tmp_path / f"operator-{identity}.log",
            KORDER_OPERATOR_IDENTITY=identity,
            KORDER_RETRY_CAP_SECONDS="1",
            KORDER_PARTICIPANT_TIMEOUT_SECONDS="30",
            **LEASE,
        )
        if identity == "a":
            wait_for(functools.partial(leading, started["a"]), timeout=20, what="a to lead")
    yield started
    processes.stop([c.proc for c in started.values()])


def leading(replica: Component) -> bool:
    try:
        answer = httpx.get(replica.health_url, timeout=2.0).json()
    except httpx.HTTPError:
        return False
    return bool(answer["leader"])


def leader_metric(replica: Component) -> float:
    for line in httpx.get(replica.metrics_url, timeout=2.0).text.splitlines():
        if line.startswith("korder_operator_leader "):
            return float(line.split()[1])
    raise AssertionError("no korder_operator_leader metric")


def acted(replica: Component) -> list[str]:
    """The saga notes a replica logged (every transition is logged with its reason)."""
    notes = []
    for line in replica.log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if "reason" in entry and "phase" in entry:
            notes.append(str(entry["reason"]))
    return notes


def test_one_replica_acts_and_the_other_finishes_its_orders_when_it_dies(
    own_cluster: system.Cluster,
    replicas: dict[str, Component],
    participants: Participants,
    tmp_path: Path,
) -> None:
    kubectl = Kubectl(own_cluster)
    a, b = replicas["a"], replicas["b"]
    assert leading(a)
    assert not leading(b)
    assert (leader_metric(a), leader_metric(b)) == (1.0, 0.0)
    # Both ready: the standby reaches the API server, so it could take over.
    for replica in (a, b):
        ready = httpx.get(replica.health_url.replace("/healthz", "/readyz"), timeout=2.0)
        assert (ready.status_code, ready.json()["leader"]) == (200, replica is a)
    namespace = f"ha-{time.monotonic_ns() % 10**8}"
    kubectl("create", "namespace", namespace)

    # The charges are made but their answers held: every order is mid-step when a dies.
    participants.faults("payment", holdResponses=True)
    try:
        count = 20
        kubectl("apply", "-f", "-", stdin=orders_yaml("ha", count, namespace))

        def all_charging() -> bool:
            items = kubectl.json("get", "orders", "-n", namespace)["items"]
            phases = [o.get("status", {}).get("phase") for o in items]
            return phases.count("ProcessingPayment") == count

        wait_for(all_charging, timeout=60, what="every order to be charging")
        assert acted(a), "the leader acted"
        assert acted(b) == [], "the replica without the Lease did nothing"

        a.kill()
        killed = time.monotonic()
        participants.faults("payment", holdResponses=False)
        wait_for(lambda: leading(b), timeout=30, what="replica b to take over")
        failover = time.monotonic() - killed
    finally:
        participants.faults("payment", holdResponses=False)
    print(f"failover: b leads {failover:.1f}s after a was killed (Lease of 4 s)")

    def all_confirmed() -> bool:
        items = kubectl.json("get", "orders", "-n", namespace)["items"]
        return all(o.get("status", {}).get("phase") == "Confirmed" for o in items)

    wait_for(all_confirmed, timeout=60, what="every order to be Confirmed by b")
    assert "OrderConfirmed" in acted(b)
    for order in kubectl.json("get", "orders", "-n", namespace)["items"]:
        uid = order["metadata"]["uid"]
        assert participants.effects("inventory", uid) == {"reserve": 1}, order["metadata"]["name"]
        assert participants.effects("payment", uid) == {"charge": 1}, order["metadata"]["name"]


def test_a_leader_that_loses_the_lease_stops_at_once(
    own_cluster: system.Cluster, replicas: dict[str, Component]
) -> None:
    kubectl = Kubectl(own_cluster)
    a = replicas["a"]
    assert leading(a)
    # Another holder appears in the Lease (as if a's renewals had not arrived in time).
    patch = json.dumps({"spec": {"holderIdentity": "someone-else"}})
    kubectl("patch", "lease", "korder-operator", "-n", "default", "--type=merge", "-p", patch)
    code = a.proc.wait(timeout=10)
    assert code == 3, a.tail()
    assert "no longer holds the Lease" in a.log.read_text()
