"""The e2e harness: one real control plane per test run, a namespace per test.

The session starts etcd + kube-apiserver (built from the pinned Go modules, or
from KUBEBUILDER_ASSETS), installs the CRD, and runs the real reference
participants and the real operator process pointed at them. Each test gets its
own namespace and, when it asks, its own facade process bound to that namespace.

On a failing test the harness prints the operator's, the participants' and the
facade's log tails and the namespace's Events, the way kubebuilder's e2e does.

Least privilege is proven by use: the session applies exactly ``manifests/rbac``,
and the operator and every facade authenticate with tokens of their own
ServiceAccounts (``korder-operator``, ``korder-api`` in ``korder-system``), never as
the admin. A facade's test namespace gets the RoleBinding to the ``korder-api``
ClusterRole that a shop creates for each namespace a facade serves.

``KORDER_E2E_KUBECONFIG`` points the suite at an existing cluster instead (a kind
cluster on a laptop); KUBECONFIG alone is ignored on purpose, so a developer's
real cluster is never a test target by accident.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from korder.localcluster import binaries, processes, system
from korder.localcluster.controlplane import ControlPlane, free_port
from tests.support.waiting import wait_for

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
    with local_cluster(tmp_path_factory.mktemp("controlplane")) as c:
        yield c


@contextlib.contextmanager
def local_cluster(state: Path) -> Iterator[system.Cluster]:
    """A fresh control plane in ``state`` (etcd without fsync) with the CRD installed."""
    bins = binaries.resolve()
    with ControlPlane(bins, state_dir=state, kubeconfig=state / "kubeconfig", ephemeral=True):
        c = system.Cluster(state / "kubeconfig", bins.kubectl)
        c.install_crds()
        yield c


@pytest.fixture(scope="session")
def kubectl(cluster: system.Cluster) -> Kubectl:
    return Kubectl(cluster)


@dataclass(frozen=True)
class Identities:
    """Kubeconfigs of korder's ServiceAccounts, with exactly the RBAC of manifests/rbac."""

    operator: Path
    api: Path


@pytest.fixture(scope="session")
def identities(cluster: system.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Identities:
    cluster.install_rbac()
    folder = tmp_path_factory.mktemp("identities")
    return Identities(
        operator=cluster.service_account_kubeconfig("korder-operator", folder / "operator"),
        api=cluster.service_account_kubeconfig("korder-api", folder / "api"),
    )


@dataclass
class Component:
    """A korder process started for the tests, with its log file."""

    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    module: str = ""
    env: dict[str, str] = field(default_factory=dict)
    health_url: str = ""
    #: The operator's Prometheus endpoint.
    metrics_url: str = ""

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last status write, as a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Start the same module again, with the same environment and log file."""
        self.proc = _spawn_healthy(self.module, self.log, self.env, self.health_url, self)


def _spawn_healthy(
    module: str, log: Path, env: dict[str, str], health_url: str, component: Component | None
) -> subprocess.Popen[bytes]:
    proc = processes.spawn([sys.executable, "-m", module], log=log, env=env)
    try:
        processes.wait_healthy(proc, health_url, module)
    except processes.NotHealthyError as exc:
        tail = component.tail() if component else log.read_text(errors="replace")[-4000:]
        processes.stop([proc])
        raise AssertionError(f"{exc}:\n{tail}") from exc
    return proc


def _start_component(module: str, log: Path, env: dict[str, str], health_url: str) -> Component:
    proc = _spawn_healthy(module, log, env, health_url, None)
    return Component(proc, log, health_url.rsplit("/", 1)[0], module, env, health_url)


@dataclass
class Participants:
    """The reference participants' process, and a reader of their ledgers."""

    component: Component

    def url(self, service: str) -> str:
        return f"{self.component.url}/{service}"

    def ledger(self, service: str, order_id: str | None = None) -> list[dict[str, Any]]:
        params = {"orderId": order_id} if order_id else {}
        response = httpx.get(f"{self.url(service)}/ledger", params=params, timeout=5.0)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries

    def effects(self, service: str, order_id: str) -> dict[str, int]:
        """How many effects of each type the service applied for ``order_id``."""
        return dict(collections.Counter(e["type"] for e in self.ledger(service, order_id)))

    def faults(self, service: str, **switches: bool) -> None:
        """Switch faults on or off: ``unavailable=True``, ``holdResponses=True``."""
        httpx.put(f"{self.url(service)}/faults", json=switches, timeout=5.0).raise_for_status()

    def stock(self) -> dict[str, int]:
        stock: dict[str, int] = httpx.get(f"{self.url('inventory')}/stock", timeout=5.0).json()
        return stock


def start_participants(log: Path, **settings: str) -> Participants:
    """The reference participants as a real process on a free port, once they answer."""
    port = free_port()
    env = {**os.environ, "KORDER_PARTICIPANTS_PORT": str(port), **settings}
    health = f"http://127.0.0.1:{port}/health"
    return Participants(_start_component("korder.participants", log, env, health))


@pytest.fixture(scope="session")
def participants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Participants]:
    """The reference participants as a real process on a free port."""
    started = start_participants(tmp_path_factory.mktemp("participants") / "participants.log")
    yield started
    processes.stop([started.component.proc])


def start_operator(
    kubeconfig: Path, participants: Participants, log: Path, **settings: str
) -> Component:
    """An operator process on free ports, calling ``participants``, once it answers /healthz."""
    port, metrics_port = free_port(), free_port()
    env = system.component_env(
        kubeconfig,
        KORDER_OPERATOR_PROBE_PORT=str(port),
        KORDER_OPERATOR_METRICS_PORT=str(metrics_port),
        KORDER_INVENTORY_URL=participants.url("inventory"),
        KORDER_PAYMENT_URL=participants.url("payment"),
        KORDER_SHIPPING_URL=participants.url("shipping"),
        **settings,
    )
    component = _start_component("korder.operator", log, env, f"http://127.0.0.1:{port}/healthz")
    component.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    return component


@pytest.fixture(scope="session")
def operator(
    identities: Identities,
    participants: Participants,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Component]:
    """The operator as a real process, calling the session's participants.

    It authenticates as the ``korder-operator`` ServiceAccount.

    Retries and the breakers' reset are short so the tests that wait for them
    finish in seconds; the call timeout is long so a held answer is never
    mistaken for a lost one before the test acts on it.
    """
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    component = start_operator(
        identities.operator,
        participants,
        log,
        KORDER_RETRY_CAP_SECONDS="2",
        KORDER_BREAKER_RESET_SECONDS="2",
        KORDER_PARTICIPANT_TIMEOUT_SECONDS="20",
        # The Lease lives in korder's own namespace, where manifests/rbac lets it write one.
        KORDER_OPERATOR_LEASE_NAMESPACE="korder-system",
    )
    yield component
    processes.stop([component.proc])


#: A short Lease, so a takeover in the tests takes seconds (``make bench`` measures
#: the failover with the defaults).
LEASE = {
    "KORDER_OPERATOR_LEASE_SECONDS": "4",
    "KORDER_OPERATOR_RENEW_DEADLINE_SECONDS": "3",
    "KORDER_OPERATOR_RETRY_PERIOD_SECONDS": "0.5",
}


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[system.Cluster]:
    """A control plane of this test module's own, for operators under test: the suite's
    operator watches every namespace of the shared one, and would act beside them."""
    if os.environ.get("KORDER_E2E_KUBECONFIG"):
        pytest.skip("needs a cluster where no other operator runs")
    with local_cluster(tmp_path_factory.mktemp("own-controlplane")) as c:
        yield c


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
    kubectl: Kubectl, identities: Identities, namespace: str, tmp_path: Path
) -> Iterator[FacadeFactory]:
    """Start a facade in this test's namespace with extra settings (``KORDER_...=value``).

    It authenticates as the ``korder-api`` ServiceAccount, bound to the shipped
    ``korder-api`` ClusterRole in this namespace only. ``kubeconfig`` points it at
    another API server; ``healthy=False`` only waits for it to answer at all (for a
    facade whose API server is down on purpose).
    """
    started: list[Component] = []
    bound: list[str] = []

    def start(kubeconfig: Path | None = None, healthy: bool = True, **settings: str) -> Component:
        if not bound:
            bound.append(bind_api(kubectl, namespace))
        log = tmp_path / f"api-{len(started)}.log"
        if healthy:
            component = start_api(kubeconfig or identities.api, namespace, log, **settings)
        else:
            port = free_port()
            env = system.component_env(
                kubeconfig or identities.api,
                PORT=str(port),
                KORDER_NAMESPACE=namespace,
                **{"KORDER_ALLOW_UNAUTHENTICATED": "true", **settings},
            )
            url = f"http://127.0.0.1:{port}/health"
            proc = processes.spawn([sys.executable, "-m", "korder.api"], log=log, env=env)
            component = Component(proc, log, url.rsplit("/", 1)[0])
            wait_for(lambda: _answers(url), timeout=60, what="korder.api to answer")
        started.append(component)
        return component

    yield start
    processes.stop([c.proc for c in started])


def start_api(kubeconfig: Path, namespace: str, log: Path, **settings: str) -> Component:
    """A facade process on a free port, serving ``namespace``, once it answers /health."""
    port = free_port()
    # The operator's Leases (the console's breakers) are where the suite's operator keeps them.
    # Requests without a token are let through, as in make run, unless a test turns that
    # off: who may call is test_api_access's subject, the rest test what a call does.
    settings = {
        "KORDER_OPERATOR_LEASE_NAMESPACE": system.SYSTEM_NAMESPACE,
        "KORDER_ALLOW_UNAUTHENTICATED": "true",
        **settings,
    }
    env = system.component_env(kubeconfig, PORT=str(port), KORDER_NAMESPACE=namespace, **settings)
    return _start_component("korder.api", log, env, f"http://127.0.0.1:{port}/health")


def bind_api(kubectl: Kubectl, namespace: str) -> str:
    """Grant the facade's ServiceAccount the ``korder-api`` ClusterRole in ``namespace``.

    What a shop does for each namespace a facade serves (manifests/rbac binds it in
    korder-system only). Returns once the authorizer honours it (it reads RBAC from a
    cache), so neither a facade's first request nor a test's ``auth can-i`` races it.
    """
    account = f"{system.SYSTEM_NAMESPACE}:korder-api"
    kubectl(
        "create", "rolebinding", "korder-api", "-n", namespace,
        "--clusterrole=korder-api", f"--serviceaccount={account}",
    )  # fmt: skip
    wait_for(
        lambda: kubectl(
            "auth", "can-i", f"--as=system:serviceaccount:{account}",
            "list", "orders.korder.dev", "-n", namespace, check=False,
        ).stdout.strip() == "yes",
        timeout=10,
        what="the RoleBinding to take effect",
    )  # fmt: skip
    return "korder-api"


@dataclass(frozen=True)
class Account:
    """A ServiceAccount of a test's with a role on orders: a caller of the façade.

    ``token`` is its bearer token (the TokenRequest API's, as ``kubectl create token``
    gives it); ``kubeconfig`` authenticates as it, for ``kubectl korder``.
    """

    user: str
    token: str
    kubeconfig: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


AccountFactory = Callable[..., Account]


@pytest.fixture
def account(cluster: system.Cluster, kubectl: Kubectl, tmp_path: Path) -> AccountFactory:
    """Make a ServiceAccount ``name`` in ``namespace`` holding ``clusterrole`` there
    (``cluster_wide=True``: in every namespace), once the authorizer honours it."""

    def make(namespace: str, name: str, clusterrole: str, cluster_wide: bool = False) -> Account:
        user = f"system:serviceaccount:{namespace}:{name}"
        kubectl("create", "serviceaccount", name, "-n", namespace)
        if cluster_wide:
            binding = f"{namespace}-{name}"
            kubectl(
                "create", "clusterrolebinding", binding,
                f"--clusterrole={clusterrole}", f"--serviceaccount={namespace}:{name}",
            )  # fmt: skip
            where = ["--all-namespaces"]
        else:
            kubectl(
                "create", "rolebinding", name, "-n", namespace,
                f"--clusterrole={clusterrole}", f"--serviceaccount={namespace}:{name}",
            )  # fmt: skip
            where = ["-n", namespace]
        wait_for(
            lambda: kubectl(
                "auth", "can-i", f"--as={user}", "get", "orders.korder.dev", *where, check=False
            ).stdout.strip() == "yes",
            timeout=10,
            what=f"{user}'s binding to take effect",
        )  # fmt: skip
        kubeconfig = cluster.service_account_kubeconfig(
            name, tmp_path / f"{namespace}-{name}.kubeconfig", namespace=namespace
        )
        config = yaml.safe_load(kubeconfig.read_text())
        return Account(user, config["users"][0]["user"]["token"], kubeconfig)

    return make


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
        for name in ("operator", "facade", "participants"):
            component = funcargs.get(name)
            if isinstance(component, Participants):
                component = component.component
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
