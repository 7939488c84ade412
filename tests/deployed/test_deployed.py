"""korder as pods: the façade's REST API, rollouts, operator failover, probes, policy.

The tests marked ``smoke`` are the short check ``make test`` runs on a fresh local
cluster (one order to Confirmed, one rolling update with zero failed requests); the
others run in ``make test-deployed``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from korder.localcluster import daemon, node
from tests.deployed.conftest import (
    NAMESPACE,
    Kubectl,
    Ledgers,
    PortForward,
    lease_holder,
    pods,
    ready,
)
from tests.support.orders import spec
from tests.support.waiting import wait_for

pytestmark = pytest.mark.deployed

COMPONENTS = {"api": 3, "operator": 2, "participants": 1}
SERVICE_ACCOUNTS = {
    "api": "korder-api",
    "operator": "korder-operator",
    "participants": "korder-participants",
}


#: The bearer token every request of these tests sends: the shipped façade requires one.
HEADERS: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def caller(kubectl: Kubectl) -> None:
    """A ServiceAccount holding the shipped korder-order-editor in korder's namespace, and
    its token, as a shop's client would get one (``kubectl create token``)."""
    kubectl("create", "serviceaccount", "korder-smoke", "-n", NAMESPACE, check=False)
    kubectl(
        "create", "rolebinding", "korder-smoke", "-n", NAMESPACE,
        "--clusterrole=korder-order-editor", f"--serviceaccount={NAMESPACE}:korder-smoke",
        check=False,
    )  # fmt: skip
    token = kubectl("create", "token", "korder-smoke", "-n", NAMESPACE).stdout.strip()
    HEADERS["Authorization"] = f"Bearer {token}"


def order_status(url: str, order_id: str) -> str:
    response = httpx.get(f"{url}/orders/{order_id}", headers=HEADERS, timeout=10.0)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def wait_confirmed(url: str, order_ids: list[str], timeout: float = 120.0) -> None:
    pending = set(order_ids)

    def all_confirmed() -> bool:
        for order_id in list(pending):
            status = order_status(url, order_id)
            assert status not in ("Failed", "Cancelled"), f"{order_id} ended {status}"
            if status == "Confirmed":
                pending.discard(order_id)
        return not pending

    wait_for(all_confirmed, timeout, f"{len(pending)} orders to reach Confirmed")


def create_order(url: str) -> str:
    response = httpx.post(f"{url}/orders", json=spec(), headers=HEADERS, timeout=10.0)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass
class Stream:
    """Orders posted one after another on fresh connections, as independent clients do."""

    url: str
    pause: float = 0.1
    acknowledged: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = httpx.post(
                    f"{self.url}/orders", json=spec(), headers=HEADERS, timeout=10.0
                )
                if response.status_code == 201:
                    self.acknowledged.append(str(response.json()["id"]))
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))
            time.sleep(self.pause)

    def __enter__(self) -> Stream:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def container_pid(kubectl: Kubectl, pod_name: str) -> int:
    """The host pid of the pod's first container's process, from the node's containerd."""
    pod = kubectl.json("get", "pod", "-n", NAMESPACE, pod_name)
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    tasks = subprocess.run(
        [*node.LocalCluster().ctr, "tasks", "ls"], capture_output=True, text=True, check=True
    ).stdout
    for line in tasks.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container_id:
            return int(pid)
    raise AssertionError(f"no task {container_id} in the node's containerd:\n{tasks}")


def orders_by_name(kubectl: Kubectl, names: list[str]) -> list[dict[str, Any]]:
    listed = kubectl.json("get", "orders", "-n", NAMESPACE)["items"]
    wanted = set(names)
    return [o for o in listed if o["metadata"]["name"] in wanted]


@pytest.mark.smoke
def test_every_component_is_ready_with_its_replicas(kubectl: Kubectl) -> None:
    for component, replicas in COMPONENTS.items():
        found = pods(kubectl, component)
        assert len(found) == replicas, [p["metadata"]["name"] for p in found]
        assert all(ready(p) for p in found), component


@pytest.mark.smoke
def test_one_order_through_the_pods_to_confirmed(
    forward: Callable[[str, int], PortForward],
) -> None:
    facade = forward("svc/korder-api", 8000)
    order_id = create_order(facade.url)
    wait_confirmed(facade.url, [order_id], timeout=60)


@pytest.mark.smoke
def test_a_rolling_update_of_the_facade_fails_no_request(
    kubectl: Kubectl, facade_service_url: str
) -> None:
    before = {p["metadata"]["name"] for p in pods(kubectl, "api")}
    mark = uuid.uuid4().hex[:8]
    with Stream(facade_service_url) as stream:
        time.sleep(2)
        kubectl("set", "env", "-n", NAMESPACE, "deployment/korder-api", f"KORDER_ROLLOUT={mark}")
        kubectl("rollout", "status", "-n", NAMESPACE, "deployment/korder-api", "--timeout=240s")
        time.sleep(2)
    after = pods(kubectl, "api")
    # Every replica was replaced, and the new ones carry the change.
    assert not before & {p["metadata"]["name"] for p in after}
    for pod in after:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["KORDER_ROLLOUT"] == mark
    print(f"\nrolling update: {len(stream.acknowledged)} orders, {len(stream.failures)} failed")
    assert stream.acknowledged, "the stream sent nothing"
    assert stream.failures == []
    wait_confirmed(facade_service_url, stream.acknowledged)


def test_kubectl_logs_and_exec_reach_the_pods(kubectl: Kubectl) -> None:
    (participants,) = pods(kubectl, "participants")
    name = participants["metadata"]["name"]
    uid = kubectl("exec", "-n", NAMESPACE, name, "--", "id", "-u").stdout.strip()
    assert uid == "65532"
    logs = kubectl("logs", "-n", NAMESPACE, name, "--tail=200").stdout
    assert "/health" in logs


def test_each_role_runs_as_its_service_account_under_the_restricted_profile(
    kubectl: Kubectl,
) -> None:
    namespace = kubectl.json("get", "namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for component, account in SERVICE_ACCOUNTS.items():
        for pod in pods(kubectl, component):
            assert pod["spec"]["serviceAccountName"] == account
            security = pod["spec"]["containers"][0]["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
    # The participants hold no token at all; the operator's token is its own.
    (participants,) = pods(kubectl, "participants")
    mounts = participants["spec"]["containers"][0].get("volumeMounts", [])
    assert not [m for m in mounts if "serviceaccount" in m["mountPath"]]
    # The façade may patch an Order but never its status (manifests/rbac).
    for extra, expected in (([], "yes"), (["--subresource=status"], "no")):
        can = kubectl(
            "auth",
            "can-i",
            "--as=system:serviceaccount:korder-system:korder-api",
            "patch",
            "orders.korder.dev",
            *extra,
            "-n",
            NAMESPACE,
            check=False,
        )
        assert can.stdout.strip() == expected, extra
    # A pod that breaks the profile is refused in korder's namespace.
    refused = kubectl(
        "run",
        "-n",
        NAMESPACE,
        f"privileged-{uuid.uuid4().hex[:6]}",
        "--image=korder:dev",
        "--image-pull-policy=Never",
        "--dry-run=server",
        '--overrides={"spec":{"containers":[{"name":"c","image":"korder:dev",'
        '"securityContext":{"privileged":true}}]}}',
        check=False,
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


def test_the_standby_operator_takes_over_mid_saga(
    kubectl: Kubectl, facade_service_url: str, ledgers: Ledgers
) -> None:
    operators = {p["metadata"]["name"] for p in pods(kubectl, "operator")}
    leader = lease_holder(kubectl)
    assert leader in operators, (leader, operators)
    # Payment applies its charges but holds the answers: the leader dies between a
    # participant's effect and its own status write.
    httpx.put(
        f"{ledgers.url}/payment/faults", json={"holdResponses": True}, timeout=10
    ).raise_for_status()
    try:
        names = [create_order(facade_service_url) for _ in range(5)]

        def charged() -> bool:
            charged_ids = {e["orderId"] for e in ledgers.of("payment") if e["type"] == "charge"}
            return all(o["metadata"]["uid"] in charged_ids for o in orders_by_name(kubectl, names))

        wait_for(charged, 60, "every order charged, the answers held")
        deleted = time.monotonic()
        kubectl("delete", "pod", "-n", NAMESPACE, leader, "--wait=false")
        new_leader = wait_for(
            lambda: (h := lease_holder(kubectl)) and h != leader and h,
            90,
            "another replica to hold the Lease",
        )
        failover = time.monotonic() - deleted
    finally:
        httpx.put(
            f"{ledgers.url}/payment/faults", json={"holdResponses": False}, timeout=10
        ).raise_for_status()
    print(f"\noperator failover: {leader} -> {new_leader} in {failover:.1f}s")
    assert new_leader in operators
    wait_confirmed(facade_service_url, names)
    assert ledgers.violations(orders_by_name(kubectl, names)) == []
    # The Deployment replaces the deleted replica, which stands by.
    wait_for(
        lambda: len([p for p in pods(kubectl, "operator") if ready(p)]) == 2,
        120,
        "two ready operator replicas again",
    )


@pytest.mark.skipif(not daemon.READY.exists(), reason="needs the local cluster's node")
def test_a_replica_failing_its_liveness_probe_is_restarted_and_no_order_is_lost(
    kubectl: Kubectl, facade_service_url: str
) -> None:
    # The leader stops answering anything (SIGSTOP), as a wedged process would: the
    # kubelet's liveness probe fails and the container is restarted; the standby takes
    # the Lease once it stands still. Only on the local cluster, whose node is this machine.
    leader = lease_holder(kubectl)
    restarts = {
        p["metadata"]["name"]: p["status"]["containerStatuses"][0]["restartCount"]
        for p in pods(kubectl, "operator")
    }
    stopped = time.monotonic()
    # From the node: a container's PID 1 ignores SIGSTOP sent from inside its namespace.
    os.kill(container_pid(kubectl, leader), signal.SIGSTOP)
    names = [create_order(facade_service_url) for _ in range(3)]

    def restarted() -> bool:
        pod = kubectl.json("get", "pod", "-n", NAMESPACE, leader)
        return bool(pod["status"]["containerStatuses"][0]["restartCount"] > restarts[leader])

    wait_for(restarted, 120, f"the kubelet to restart {leader}")
    print(f"\nliveness restart of {leader} after {time.monotonic() - stopped:.0f}s")
    wait_confirmed(facade_service_url, names)
    events = kubectl(
        "get", "events", "-n", NAMESPACE, f"--field-selector=involvedObject.name={leader}"
    ).stdout
    assert "Liveness probe failed" in events
    wait_for(lambda: all(ready(p) for p in pods(kubectl, "operator")), 120, "the operators ready")


@pytest.mark.skipif(not daemon.READY.exists(), reason="needs the local cluster's node")
def test_the_node_keeps_every_packet_on_this_machine() -> None:
    """Read-only checks of the node's network: nothing is sent to see whether it leaks."""
    forward = subprocess.run(
        ["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout
    assert f"-j {node.ISOLATION_CHAIN}" in forward
    rules = subprocess.run(
        ["iptables", "-w", "-S", node.ISOLATION_CHAIN], capture_output=True, text=True, check=True
    ).stdout
    assert f"-A {node.ISOLATION_CHAIN} -i {node.BRIDGE} -j DROP" in rules
    assert f"-A {node.ISOLATION_CHAIN} -o {node.BRIDGE} -j DROP" in rules
    # A Service address kube-proxy has no rule for stays on the bridge, never the default route.
    route = subprocess.run(
        ["ip", "route", "get", "10.96.0.254"], capture_output=True, text=True, check=True
    ).stdout
    assert f"dev {node.BRIDGE}" in route
    # No masquerading of the pods' range (the bridge plugin's ipMasq is off).
    nat = subprocess.run(
        ["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert node.POD_CIDR not in nat
