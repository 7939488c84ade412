"""A real Kubernetes control plane (etcd + kube-apiserver) as local processes.

The way controller-runtime's envtest does it: etcd and kube-apiserver on free
loopback ports, generated certificates, RBAC authorization, an admin client
certificate, and a kubeconfig written for kubectl, Kopf and our clients. No
controller-manager runs, so there is no garbage collection and deleted namespaces
stay Terminating.

Used by :mod:`korder.localcluster.system` (``make run``) and the e2e test session.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
import yaml

from korder.localcluster import certificates, processes
from korder.localcluster.binaries import Binaries

log = logging.getLogger(__name__)

FEATURE_GATES = "ShardedListAndWatch=true"
#: The Services' virtual addresses; the local cluster's kube-proxy makes them real (see
#: :mod:`.node`: a range that nothing on these machines routes).
SERVICE_CIDR = "10.96.0.0/24"


class ControlPlaneError(RuntimeError):
    """The control plane did not come up."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ControlPlane:
    """etcd and kube-apiserver, started by :meth:`start` and stopped by :meth:`stop`.

    ``state_dir`` holds certificates, logs, pids and (unless ``ephemeral``) etcd's
    data, which then survives a restart. ``ephemeral`` also turns fsync off in etcd:
    fast, and only for tests whose data may be lost.
    """

    binaries: Binaries
    state_dir: Path
    kubeconfig: Path
    ephemeral: bool = False
    ready_timeout: float = 90.0
    #: The address kube-apiserver listens on and advertises in the ``kubernetes`` Service.
    #: Loopback for the bare control plane; the local cluster's node address, which its
    #: pods can reach, for ``make cluster-up``.
    address: str = "127.0.0.1"
    service_cidr: str = SERVICE_CIDR
    #: With a controller-manager minting service-account tokens, pods need the
    #: ServiceAccount admission plugin; without one it would refuse every pod.
    service_accounts: bool = False
    extra_args: tuple[str, ...] = ()
    api_url: str = field(init=False, default="")
    certs: certificates.CertificateFiles | None = field(init=False, default=None)
    _procs: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    _argv: dict[str, list[str | Path]] = field(init=False, default_factory=dict)
    _etcd_url: str = field(init=False, default="")

    @property
    def _pidfile(self) -> Path:
        return self.state_dir / "pids"

    def _clean_stale_state(self) -> None:
        """Undo what a killed run left: its processes, its certificates, its logs."""
        processes.kill_stale(self._pidfile, str(self.state_dir))
        keep = set() if self.ephemeral else {"etcd-data"}
        if self.state_dir.exists():
            for entry in self.state_dir.iterdir():
                if entry.name in keep:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self._clean_stale_state()
        service_ip = str(next(ipaddress.ip_network(self.service_cidr).hosts()))
        server_ips = sorted({"127.0.0.1", self.address, service_ip})
        certs = self.certs = certificates.generate(self.state_dir / "pki", server_ips)
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = self._etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd_args: list[str | Path] = [
            self.binaries.etcd,
            "--name=korder",
            f"--data-dir={self.state_dir / 'etcd-data'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=korder={peer_url}",
            "--log-level=warn",
        ]
        if self.ephemeral:
            etcd_args.append("--unsafe-no-fsync")
        try:
            self._spawn("etcd", etcd_args)
            self._wait_etcd(etcd_url)
            self.api_url = f"https://{self.address}:{api_port}"
            admission = (
                []
                if self.service_accounts
                # No controller-manager mints service-account tokens here.
                else ["--disable-admission-plugins=ServiceAccount"]
            )
            self._spawn(
                "kube-apiserver",
                [
                    self.binaries.kube_apiserver,
                    f"--etcd-servers={etcd_url}",
                    f"--bind-address={self.address}",
                    f"--advertise-address={self.address}",
                    f"--secure-port={api_port}",
                    f"--cert-dir={self.state_dir / 'pki'}",
                    f"--tls-cert-file={certs.server_cert}",
                    f"--tls-private-key-file={certs.server_key}",
                    f"--client-ca-file={certs.ca_cert}",
                    f"--service-account-key-file={certs.service_account_pub}",
                    f"--service-account-signing-key-file={certs.service_account_key}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    f"--service-cluster-ip-range={self.service_cidr}",
                    "--authorization-mode=RBAC",
                    "--allow-privileged=true",
                    *admission,
                    f"--feature-gates={FEATURE_GATES}",
                    "--profiling=false",
                    *self.extra_args,
                ],
            )
            self._write_kubeconfig(certs)
            self._wait_ready(certs)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str | Path]) -> None:
        proc = processes.spawn(argv, log=self.state_dir / f"{name}.log")
        self._procs[name] = proc
        self._argv[name] = argv
        with self._pidfile.open("a") as f:
            f.write(f"{proc.pid}\n")

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` (``etcd`` or ``kube-apiserver``), as a crash would.

        For the chaos run, which restarts the components under load; :meth:`restart`
        brings it back with the same ports, data and certificates.
        """
        proc = self._procs[name]
        proc.kill()
        proc.wait()

    def restart(self, name: str) -> None:
        """Start ``name`` again as it was started, and return once it is ready."""
        if self._procs[name].poll() is None:
            self.kill(name)
        self._spawn(name, self._argv[name])
        assert self.certs is not None
        if name == "etcd":
            self._wait_etcd(self._etcd_url)
        else:
            self._wait_ready(self.certs)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = (self.state_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_etcd(self, url: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ControlPlaneError(f"etcd not healthy within {self.ready_timeout}s")

    def _wait_ready(self, certs: certificates.CertificateFiles) -> None:
        context = ssl.create_default_context(cafile=str(certs.ca_cert))
        context.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
        deadline = time.monotonic() + self.ready_timeout
        last = ""
        with httpx.Client(verify=context, timeout=2.0) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                try:
                    response = client.get(f"{self.api_url}/readyz")
                    if response.status_code == 200:
                        log.info("control plane ready", extra={"url": self.api_url})
                        return
                    last = response.text[-500:]
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready within {self.ready_timeout}s: {last}")

    def _write_kubeconfig(self, certs: certificates.CertificateFiles) -> None:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "korder-local",
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority-data": b64(certs.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "korder-admin",
                    "user": {
                        "client-certificate-data": b64(certs.admin_cert),
                        "client-key-data": b64(certs.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "korder-local",
                    "context": {
                        "cluster": "korder-local",
                        "user": "korder-admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "korder-local",
        }
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        processes.stop(list(self._procs.values()))
        self._procs.clear()
        self._pidfile.unlink(missing_ok=True)

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
