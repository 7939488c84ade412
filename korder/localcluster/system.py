"""The whole system on one machine, for ``make run``.

Starts (or reuses) a cluster, installs the CRD, then runs the reference
participants, the operator (pointed at them) and the facade as child processes
until Ctrl-C or until one of them exits, and stops all of it. With KUBECONFIG set,
that cluster is used and no control plane starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from korder.localcluster import binaries, processes
from korder.localcluster.controlplane import ControlPlane

CRDS = binaries.REPO_ROOT / "crds"
MANIFESTS = binaries.REPO_ROOT / "manifests"
#: The namespace manifests/ deploys korder into, where its ServiceAccounts live.
SYSTEM_NAMESPACE = "korder-system"
LOCAL_DIR = binaries.REPO_ROOT / ".korder"
LOCAL_KUBECONFIG = LOCAL_DIR / "kubeconfig"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    kubectl: Path

    def kubectl_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            capture_output=True,
            text=True,
        )

    def install_crds(self) -> None:
        """Apply the CRD and wait until the API server serves it."""
        self.kubectl_run("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
        self.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))

    def install_rbac(self) -> None:
        """Apply korder's namespace and exactly the RBAC of ``manifests/rbac``."""
        namespace = MANIFESTS / "default" / "namespace.yaml"
        self.kubectl_run("apply", "--server-side", "-f", str(namespace))
        self.kubectl_run("apply", "--server-side", "-k", str(MANIFESTS / "rbac"))

    def service_account_kubeconfig(
        self, name: str, path: Path, namespace: str = SYSTEM_NAMESPACE, duration: str = "12h"
    ) -> Path:
        """Write a kubeconfig at ``path`` that authenticates as the ServiceAccount ``name``.

        The token comes from the TokenRequest API, which needs no controller-manager; the
        server and its CA are the admin kubeconfig's. A component started with it has
        exactly the rights RBAC gives that ServiceAccount, as it would in a pod.
        """
        token = self.kubectl_run(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        admin = yaml.safe_load(self.kubeconfig.read_text())
        context = next(
            c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"]
        )
        cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
        user = f"system:serviceaccount:{namespace}:{name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [
                {
                    "name": user,
                    "context": {"cluster": cluster["name"], "user": user, "namespace": namespace},
                }
            ],
            "current-context": user,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


@contextlib.contextmanager
def cluster(
    state_dir: Path = LOCAL_DIR / "controlplane", kubeconfig: Path = LOCAL_KUBECONFIG
) -> Iterator[Cluster]:
    """The cluster in KUBECONFIG if set, else a local control plane for the block's life."""
    configured = os.environ.get("KUBECONFIG")
    if configured:
        kubectl = Path(os.environ.get("KORDER_KUBECTL", "kubectl"))
        yield Cluster(kubeconfig=Path(configured), kubectl=kubectl)
        return
    bins = binaries.resolve()
    with ControlPlane(bins, state_dir=state_dir, kubeconfig=kubeconfig):
        yield Cluster(kubeconfig=kubeconfig, kubectl=bins.kubectl)


def component_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubeconfig), **extra}


def participant_urls(port: str) -> dict[str, str]:
    """The operator's settings that point it at the reference participants on ``port``.

    A URL already set in the environment wins: that is a shop's real service.
    """
    urls = {}
    for service in ("inventory", "payment", "shipping"):
        name = f"KORDER_{service.upper()}_URL"
        urls[name] = os.environ.get(name, f"http://127.0.0.1:{port}/{service}")
    return urls


def run() -> int:
    """``make run``: everything, in the foreground, until Ctrl-C."""
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        with cluster() as c:
            c.install_crds()
            # The operator's Lease in korder's own namespace, as in a cluster: where the
            # console's and `kubectl korder top`'s breakers are read from.
            namespace = MANIFESTS / "default" / "namespace.yaml"
            c.kubectl_run("apply", "--server-side", "-f", str(namespace))
            # The order clients' ClusterRoles, so a token with one of them can be tried.
            roles = MANIFESTS / "rbac" / "order_client_role.yaml"
            c.kubectl_run("apply", "--server-side", "-f", str(roles))
            print(f"\nexport KUBECONFIG={c.kubeconfig}\n", file=sys.stderr, flush=True)
            participants_port = os.environ.get("KORDER_PARTICIPANTS_PORT", "8001")
            # make run is a laptop's: requests without a token act as the façade, unless
            # KORDER_ALLOW_UNAUTHENTICATED=false asks for tokens as a cluster would.
            local = os.environ.get("KORDER_ALLOW_UNAUTHENTICATED", "true")
            env = component_env(
                c.kubeconfig,
                KORDER_ALLOW_UNAUTHENTICATED=local,
                KORDER_OPERATOR_LEASE_NAMESPACE=SYSTEM_NAMESPACE,
                **participant_urls(participants_port),
            )
            python = sys.executable
            probe_port = env.get("KORDER_OPERATOR_PROBE_PORT", "8081")
            port = env.get("PORT", "8000")
            # Each component is started once the one it talks to answers, and "up" is
            # printed only when all of them do, so the first request never races start-up.
            components = [
                ("korder.participants", f"http://127.0.0.1:{participants_port}/health"),
                ("korder.operator", f"http://127.0.0.1:{probe_port}/healthz"),
                ("korder.api", f"http://127.0.0.1:{port}/health"),
            ]
            children: list[subprocess.Popen[bytes]] = []
            try:
                for module, health_url in components:
                    children.append(processes.spawn([python, "-m", module], env=env))
                    processes.wait_healthy(children[-1], health_url, module)
            except processes.NotHealthyError as exc:
                processes.stop(children)
                print(f"korder did not start: {exc}", file=sys.stderr, flush=True)
                return 1
            print(
                f"korder is up: REST API on http://127.0.0.1:{port}, reference participants "
                f"on http://127.0.0.1:{participants_port} (Ctrl-C stops everything)",
                file=sys.stderr,
                flush=True,
            )
            try:
                while not stopping and all(p.poll() is None for p in children):
                    time.sleep(0.5)
            finally:
                processes.stop(children)
            failed = [p for p in children if p.returncode not in (0, -signal.SIGTERM)]
            return 1 if failed and not stopping else 0
    except KeyboardInterrupt:
        return 0
