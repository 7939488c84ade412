"""The e2e harness: one real control plane per test run, a namespace per test.

The session starts etcd + kube-apiserver (built from the pinned Go modules, or
from KUBEBUILDER_ASSETS), installs the CRD, and runs the real operator process.
Each test gets its own namespace and, when it asks, its own facade process bound
to that namespace. On a failing test the harness prints the operator's and the
facade's log tails and the namespace's Events, the way kubebuilder's e2e does.

``KORDER_E2E_KUBECONFIG`` points the suite at an existing cluster instead (a kind
cluster on a laptop); KUBECONFIG alone is ignored on purpose, so a developer's
real cluster is never a test target by accident.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from korder.localcluster import binaries, processes, system
from korder.localcluster.controlplane import ControlPlane, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Kubectl:
    """kubectl bound to the test cluster's kubeconfig."""

    cluster: system.Cluster

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.cluster.kubectl), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self(*args, "-o", "json").stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[system.Cluster]:
    external = os.environ.get("KORDER_E2E_KUBECONFIG")
    if external:
        c = system.Cluster(Path(external), binaries.resolve().kubectl)
        c.install_crds()
        yield c
        return
    state = tmp_path_factory.mktemp("controlplane")
    bins = binaries.resolve()
    with ControlPlane(bins, state_dir=state, kubeconfig=state / "kubeconfig", ephemeral=True):
        c = system.Cluster(state / "kubeconfig", bins.kubectl)
        c.install_crds()
        yield c


@pytest.fixture(scope="session")
def kubectl(cluster: system.Cluster) -> Kubectl:
    return Kubectl(cluster)


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Component:
    """A korder process started for the tests, with its log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _start_component(module: str, log: Path, env: dict[str, str], health_url: str) -> Component:
    proc = processes.spawn([sys.executable, "-m", module], log=log, env=env)
    component = Component(proc, log, health_url.rsplit("/", 1)[0])

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{module} exited with {proc.returncode}:\n{component.tail()}")
        try:
            return httpx.get(health_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout=60, what=f"{module} to become healthy")
    return component


@pytest.fixture(scope="session")
def operator(
    cluster: system.Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Component]:
    port = free_port()
    env = system.component_env(cluster.kubeconfig, KORDER_OPERATOR_PROBE_PORT=str(port))
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    component = _start_component("korder.operator", log, env, f"http://127.0.0.1:{port}/healthz")
    yield component
    processes.stop([component.proc])


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for this test (left behind: no controller-manager deletes them)."""
    base = request.node.name.lower().replace("_", "-")
    base = "".join(ch for ch in base if ch.isalnum() or ch == "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


FacadeFactory = Callable[..., Component]


@pytest.fixture
def start_facade(
    cluster: system.Cluster, namespace: str, tmp_path: Path
) -> Iterator[FacadeFactory]:
    """Start a facade in this test's namespace with extra settings (``KORDER_...=value``).

    ``kubeconfig`` points it at another API server; ``healthy=False`` only waits for it
    to answer at all (for a facade whose API server is down on purpose).
    """
    started: list[Component] = []

    def start(kubeconfig: Path | None = None, healthy: bool = True, **settings: str) -> Component:
        port = free_port()
        env = system.component_env(
            kubeconfig or cluster.kubeconfig,
            PORT=str(port),
            KORDER_NAMESPACE=namespace,
            **settings,
        )
        log = tmp_path / f"api-{len(started)}.log"
        url = f"http://127.0.0.1:{port}/health"
        if healthy:
            component = _start_component("korder.api", log, env, url)
        else:
            proc = processes.spawn([sys.executable, "-m", "korder.api"], log=log, env=env)
            component = Component(proc, log, url.rsplit("/", 1)[0])
            wait_for(lambda: _answers(url), timeout=60, what="korder.api to answer")
        started.append(component)
        return component

    yield start
    processes.stop([c.proc for c in started])


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


@pytest.fixture
def facade(start_facade: FacadeFactory) -> Component:
    """The REST facade as its own process, creating Orders in this test's namespace."""
    return start_facade()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        sections = []
        funcargs = getattr(item, "funcargs", {})
        for name in ("operator", "facade"):
            component = funcargs.get(name)
            if isinstance(component, Component):
                sections.append((f"{name} log (tail)", component.tail()))
        ns, kc = funcargs.get("namespace"), funcargs.get("kubectl")
        if isinstance(ns, str) and isinstance(kc, Kubectl):
            events = kc("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False)
            orders = kc("get", "orders", "-n", ns, "-o", "yaml", check=False)
            sections += [
                ("events", events.stdout + events.stderr),
                ("orders", orders.stdout[-6000:]),
            ]
        for title, text in sections:
            report.sections.append((f"e2e: {title}", text))
    return report
