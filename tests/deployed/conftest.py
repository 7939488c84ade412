"""The harness of the suite against korder's pods (``make test-deployed``).

Unlike ``tests/e2e``, nothing of korder runs here as a process of the test: the façade,
the operator and the participants are the pods that ``make cluster-deploy`` put on the
local single-node cluster (``make cluster-up``), in ``korder-system``. The tests reach
them only through addresses on this machine: ``kubectl port-forward`` on 127.0.0.1, and
the Services' addresses, which kube-proxy maps onto the pods' bridge.

``KORDER_DEPLOYED_KUBECONFIG`` names the cluster (the Makefile sets it to the local
cluster's); without it the suite is skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from korder.localcluster import processes
from tests.support.waiting import wait_for

NAMESPACE = "korder-system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("KORDER_DEPLOYED_KUBECONFIG"):
        return
    skip = pytest.mark.skip(reason="KORDER_DEPLOYED_KUBECONFIG is not set (make test-deployed)")
    for item in items:
        if "tests/deployed" in str(item.path):
            item.add_marker(skip)


@dataclass(frozen=True)
class Kubectl:
    """kubectl on the deployed cluster."""

    kubeconfig: Path
    binary: str

    def argv(self, *args: str) -> list[str]:
        return [self.binary, f"--kubeconfig={self.kubeconfig}", *args]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self(*args, "-o", "json").stdout)
        return data


@pytest.fixture(scope="session")
def kubectl() -> Kubectl:
    return Kubectl(
        Path(os.environ["KORDER_DEPLOYED_KUBECONFIG"]), os.environ.get("KORDER_KUBECTL", "kubectl")
    )


@dataclass
class PortForward:
    """``kubectl port-forward`` of one pod (or the pod a Service picks) to 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    url: str

    def close(self) -> None:
        processes.stop([self.proc], timeout=5)


def port_forward(kubectl: Kubectl, target: str, port: int, log: Path) -> PortForward:
    # Port 0 on our side: kubectl picks a free port and says which.
    argv = kubectl.argv("port-forward", "-n", NAMESPACE, "--address=127.0.0.1", target, f":{port}")
    proc = processes.spawn(argv, log=log)
    found = wait_for(
        lambda: re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", log.read_text(errors="replace")),
        timeout=30,
        what=f"port-forward to {target}",
    )
    assert isinstance(found, re.Match)
    return PortForward(proc, f"http://127.0.0.1:{found.group(1)}")


@pytest.fixture
def forward(kubectl: Kubectl, tmp_path: Path) -> Iterator[Callable[[str, int], PortForward]]:
    opened: list[PortForward] = []

    def open_(target: str, port: int) -> PortForward:
        opened.append(port_forward(kubectl, target, port, tmp_path / f"pf-{len(opened)}.log"))
        return opened[-1]

    yield open_
    for pf in opened:
        pf.close()


@pytest.fixture(scope="session")
def facade_service_url(kubectl: Kubectl) -> str:
    """The façade's Service address: kube-proxy spreads it over the ready replicas."""
    service = kubectl.json("get", "service", "-n", NAMESPACE, "korder-api")
    return f"http://{service['spec']['clusterIP']}:8000"


def pods(kubectl: Kubectl, component: str) -> list[dict[str, Any]]:
    listed = kubectl.json(
        "get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/component={component}"
    )
    return [p for p in listed["items"] if not p["metadata"].get("deletionTimestamp")]


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def lease_holder(kubectl: Kubectl) -> str:
    lease = kubectl.json("get", "lease", "-n", NAMESPACE, "korder-operator")
    return str(lease["spec"].get("holderIdentity") or "")


@dataclass
class Ledgers:
    """The participants' ledgers, read through a port-forward to their pod."""

    url: str

    def of(self, service: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/{service}/ledger", timeout=10.0)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries

    def violations(self, orders: list[dict[str, Any]]) -> list[str]:
        """Each Confirmed order reserved and charged exactly once; no key applied twice."""
        effects: dict[str, dict[str, int]] = {}
        keys: dict[str, int] = {}
        for service in ("inventory", "payment", "shipping"):
            for entry in self.of(service):
                counts = effects.setdefault(entry["orderId"], {})
                counts[entry["type"]] = counts.get(entry["type"], 0) + 1
                keys[entry["key"]] = keys.get(entry["key"], 0) + 1
        found = [f"key {k} applied {n} times" for k, n in keys.items() if n > 1]
        for order in orders:
            seen = effects.get(order["metadata"]["uid"], {})
            if seen != {"reserve": 1, "charge": 1}:
                found.append(f"{order['metadata']['name']} has effects {seen}")
        return found


@pytest.fixture
def ledgers(forward: Callable[[str, int], PortForward]) -> Ledgers:
    return Ledgers(forward("svc/korder-participants", 8001).url)
