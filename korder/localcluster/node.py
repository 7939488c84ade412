"""A real single-node Kubernetes cluster on this machine (``make cluster-up``).

The local control plane (:mod:`.controlplane`) grown into a cluster that runs pods:
kube-controller-manager, kube-scheduler, kubelet and kube-proxy (iptables mode) from
``hack/node``, containerd with runc and the CNI bridge plugin from Debian's packages.
There is no cluster DNS: korder reaches the API server through the ``kubernetes``
Service's environment variables and its participants through theirs (see
``manifests/overlays/local``), so nothing in a pod needs a name resolved.

Network discipline: every address is on this machine. The node is the bridge
``korder0`` with ``NODE_IP``, which the API server binds and advertises, so pods reach
it through the ``kubernetes`` Service and ``kubectl logs/exec`` reach the kubelet; the
pods get addresses of ``POD_CIDR`` on that bridge, Services ``SERVICE_CIDR``; both
overlap nothing the machine routes (checked before start). A filter chain drops every
packet a pod would send off the bridge (no masquerading either), pods get a resolver
that answers nothing, and no image is ever pulled (containerd's store is filled from
local archives, :mod:`.images`).

State lives in ``.korder/cluster/`` (fresh on every start: etcd runs without fsync);
containerd runs with its own config, root, state and socket there, independent of the
host's ``/etc/containerd``. What a killed run leaves (containerd's shims and their
containers, mounts, the bridge, iptables chains, the pods' network namespaces) is
cleaned by :func:`cleanup` before the next start and by ``make cluster-down``.

Used by :mod:`.daemon` (``make cluster-up`` and ``make cluster-down``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from korder.localcluster import binaries, images, processes
from korder.localcluster.controlplane import SERVICE_CIDR, ControlPlane, free_port
from korder.localcluster.system import LOCAL_DIR

BRIDGE = "korder0"
POD_CIDR = "10.244.0.0/24"
#: The node's own address: the bridge's, and the pods' gateway.
NODE_IP = "10.244.0.1"
NODE_NAME = "korder-node"
#: ``.korder/cluster/``: the kubeconfig and the daemon's pid and log (:mod:`.daemon`), and
#: ``run/``, everything the running cluster writes, wiped on every start.
CLUSTER_DIR = LOCAL_DIR / "cluster"
STATE_DIR = CLUSTER_DIR / "run"
KUBECONFIG = CLUSTER_DIR / "kubeconfig"
CNI_BIN = Path("/usr/lib/cni")
#: Our filter chain in FORWARD: pods talk to the node and to one another, nowhere else.
ISOLATION_CHAIN = "KORDER-ISOLATION"
#: What a host lacking them installs (``make cluster-tools``).
HOST_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "podman": "podman",
    str(CNI_BIN / "bridge"): "containernetworking-plugins",
    str(CNI_BIN / "host-local"): "containernetworking-plugins",
    str(CNI_BIN / "loopback"): "containernetworking-plugins",
}


class ClusterError(RuntimeError):
    """The local cluster cannot start, or did not come up."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result


def preflight() -> None:
    """Refuse to start where the cluster cannot work or would clash with the machine."""
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (network namespaces, mounts, iptables)")
    missing = sorted(
        {
            pkg
            for tool, pkg in HOST_TOOLS.items()
            if not (shutil.which(tool) or Path(tool).is_file())
        }
    )
    if missing:
        raise ClusterError(
            f"missing packages: {' '.join(missing)} (make cluster-tools installs them)"
        )
    ours = [ipaddress.ip_network(POD_CIDR), ipaddress.ip_network(SERVICE_CIDR)]
    routes = json.loads(_run("ip", "-j", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dev == BRIDGE or dst in ("", "default") or ":" in dst:
            continue
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(dst, strict=False)
            if net.prefixlen == 0:
                continue
            clash = [str(o) for o in ours if o.overlaps(net)]
            if clash:
                raise ClusterError(f"the machine routes {dst} via {dev}; it overlaps {clash}")


# --- cleaning up -------------------------------------------------------------------


def _processes_naming(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # Field 4 of stat is the parent's pid; the name (field 2) may hold spaces.
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve())
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            # mountinfo escapes spaces and the like as octal (\040).
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def _pod_netns() -> list[str]:
    """The network namespaces that hold an address of our pod range."""
    found = []
    listing = _run("ip", "-j", "netns", "list", check=False).stdout
    for ns in json.loads(listing or "[]"):
        name = ns.get("name", "")
        addrs = _run("ip", "-n", name, "-j", "addr", check=False).stdout
        with contextlib.suppress(ValueError):
            for link in json.loads(addrs or "[]"):
                for addr in link.get("addr_info", []):
                    ip = addr.get("local", "")
                    if ":" not in ip and ipaddress.ip_address(ip) in ipaddress.ip_network(POD_CIDR):
                        found.append(name)
    return sorted(set(found))


def _remove_chains() -> bool:
    """Remove our isolation chain and every ``KUBE-`` chain (kube-proxy's and the
    kubelet's: this machine runs no other Kubernetes), with the rules that jump to
    them, from IPv4's and IPv6's tables.

    kube-proxy's ``--cleanup`` leaves the kubelet's chains (``KUBE-FIREWALL`` drops
    non-local packets to 127.0.0.0/8), so both go the same way here.
    """
    did = False
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            listing = _run(tool, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            ours = {
                line.split()[1]
                for line in listing
                if line.startswith("-N ")
                and (line.split()[1].startswith("KUBE-") or line.split()[1] == ISOLATION_CHAIN)
            }
            if not ours:
                continue
            did = True
            for line in listing:
                # -S quotes comments the way a shell would.
                words = shlex.split(line)
                jumps = "-j" in words and words[words.index("-j") + 1] in ours
                if words[0] == "-A" and words[1] not in ours and jumps:
                    _run(tool, "-w", "-t", table, "-D", *words[1:], check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-F", chain, check=False)
            for chain in ours:
                _run(tool, "-w", "-t", table, "-X", chain, check=False)
    return did


def cleanup(state_dir: Path, keep_logs: bool = False) -> bool:
    """Undo whatever a run (orderly or killed) left; True when there was something.

    ``keep_logs`` leaves ``logs/`` for reading after a stop; the next start removes it.
    """
    marker = str(state_dir.resolve())
    did = False
    # containerd's shims outlive containerd on purpose; each is the subreaper of its
    # containers, so its children are the containers' first processes: killing those
    # ends each container's PID namespace, then the shim goes.
    survivors = _processes_naming(marker)
    if survivors:
        did = True
        for pid in survivors:
            _kill_all(_children(pid))
        _kill_all(survivors)
        time.sleep(0.5)
    for name in _pod_netns():
        did = True
        _run("ip", "netns", "delete", name, check=False)
    for point in sorted(_mounts_under(state_dir), key=len, reverse=True):
        did = True
        _run("umount", "-l", point, check=False)
    if _run("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        did = True
        _run("ip", "link", "delete", BRIDGE, check=False)
    if _remove_chains():
        did = True
    if state_dir.exists():
        for entry in state_dir.iterdir():
            if keep_logs and entry.name == "logs":
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    return did


# --- configuration files -----------------------------------------------------------


def _cni_config(state: Path) -> dict[str, object]:
    return {
        "cniVersion": "1.0.0",
        "name": "korder",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # Never: a pod's packets are for this machine and its pods only.
                "ipMasq": False,
                # A pod reaching itself through its Service comes back over its own port.
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    # The leases live with the rest of the state, so a new start begins empty.
                    "dataDir": str(state / "cni" / "ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }


def _containerd_config(state: Path, pause_ref: str) -> str:
    c = state / "containerd"
    return f"""\
version = 2
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{c / "containerd.sock"}"
[ttrpc]
  address = "{c / "containerd.sock.ttrpc"}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_ref}"
  # Writing oom_score_adj is denied on these machines.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc, not crun: crun fails on this host's cgroup v1 layout.
        BinaryName = "{shutil.which("runc") or "runc"}"
        Root = "{c / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{state / "cni" / "net.d"}"
"""


def _kubelet_config(state: Path, ca: Path, port: int, healthz: int) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        # Only the API server (with the admin's client certificate) can talk to it.
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{state / 'containerd' / 'containerd.sock'}",
        # This machine: cgroup v1, no systemd as PID 1, no cgroup of our own to carve up.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        # A resolver on the pod's own loopback, where nothing answers: no name lookup ever
        # leaves a pod (there is no cluster DNS, and the host's resolver is off-machine).
        "resolvConf": str(state / "resolv.conf"),
        "clusterDomain": "cluster.local",
        # Images cannot be pulled again, so they are never collected.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # The disk is shared with everything else on the machine: evict only when it is
        # really full.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "registerNode": True,
        "rotateCertificates": False,
        "serializeImagePulls": False,
    }


def _kube_proxy_config(kubeconfig: Path, healthz: int, metrics: int) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz}",
        "metricsBindAddress": f"127.0.0.1:{metrics}",
        # NodePorts on the node's bridge address only, never on eth0.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Leave the host's conntrack settings alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }


# --- the cluster -------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class LocalCluster:
    """The single-node cluster, started by :meth:`start` and stopped by :meth:`stop`."""

    state_dir: Path = STATE_DIR
    kubeconfig: Path = KUBECONFIG
    progress: Callable[[str], None] = _say
    ready_timeout: float = 180.0
    controlplane: ControlPlane | None = field(init=False, default=None)
    _procs: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)
    _node: binaries.NodeBinaries | None = field(init=False, default=None)

    @property
    def ctr(self) -> list[str]:
        """``ctr`` on our containerd, in the CRI's namespace."""
        sock = self.state_dir / "containerd" / "containerd.sock"
        return ["ctr", "--address", str(sock), "--namespace", "k8s.io"]

    def start(self) -> None:
        preflight()
        bins = binaries.resolve()
        self._node = node = binaries.resolve_node()
        if cleanup(self.state_dir):
            self.progress("cleaned up what an earlier run left")
        pause_ref, pause_archive = images.pause_image(node.pause)
        state = self.state_dir
        for sub in ("logs", "cni/net.d", "kubelet", "containerd"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        try:
            self._network()
            self.progress("starting etcd and kube-apiserver")
            pki = state / "controlplane" / "pki"
            self.controlplane = ControlPlane(
                bins,
                state_dir=state / "controlplane",
                kubeconfig=self.kubeconfig,
                ephemeral=True,
                address=NODE_IP,
                service_cidr=SERVICE_CIDR,
                service_accounts=True,
                extra_args=(
                    # kubectl logs/exec: the API server calls the kubelet as the admin.
                    f"--kubelet-client-certificate={pki / 'admin.crt'}",
                    f"--kubelet-client-key={pki / 'admin.key'}",
                    "--kubelet-preferred-address-types=InternalIP",
                ),
            )
            self.controlplane.start()
            certs = self.controlplane.certs
            assert certs is not None
            self.progress(f"API server on {self.controlplane.api_url}; starting containerd")
            self._containerd(pause_ref, pause_archive)
            self.progress("starting kube-controller-manager, kube-scheduler, kubelet, kube-proxy")
            self._spawn(
                "kube-controller-manager",
                [
                    node.kube_controller_manager,
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                    f"--service-account-private-key-file={certs.service_account_key}",
                    f"--root-ca-file={certs.ca_cert}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--use-service-account-credentials=false",
                    "--controllers=*,-bootstrapsigner,-tokencleaner,-csrsigning",
                ],
            )
            self._spawn(
                "kube-scheduler",
                [
                    node.kube_scheduler,
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                ],
            )
            (state / "resolv.conf").write_text(
                "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
            )
            kubelet_config = state / "kubelet-config.yaml"
            kubelet_config.write_text(
                yaml.safe_dump(_kubelet_config(state, certs.ca_cert, free_port(), free_port()))
            )
            self._spawn(
                "kubelet",
                [
                    node.kubelet,
                    f"--config={kubelet_config}",
                    f"--kubeconfig={self.kubeconfig}",
                    f"--root-dir={state / 'kubelet'}",
                    f"--cert-dir={state / 'kubelet' / 'pki'}",
                    f"--hostname-override={NODE_NAME}",
                    f"--node-ip={NODE_IP}",
                ],
            )
            proxy_config = state / "kube-proxy-config.yaml"
            proxy_config.write_text(
                yaml.safe_dump(_kube_proxy_config(self.kubeconfig, free_port(), free_port()))
            )
            self._spawn("kube-proxy", [node.kube_proxy, f"--config={proxy_config}"])
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _network(self) -> None:
        """The node's bridge with its address, before anything binds it; the isolation."""
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        # The Service range onto the bridge too: kube-proxy rewrites a Service address to a
        # pod's, and a packet it has no rule for yet must not take the default route.
        _run("ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)
        cni = self.state_dir / "cni" / "net.d" / "10-korder.conflist"
        cni.write_text(json.dumps(_cni_config(self.state_dir), indent=2))
        _run("iptables", "-w", "-N", ISOLATION_CHAIN)
        # Pod to pod on the bridge, and replies to the node, pass; whatever a pod sends
        # towards any other interface (eth0 and its default route above all) is dropped.
        _run("iptables", "-w", "-A", ISOLATION_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN")
        _run("iptables", "-w", "-A", ISOLATION_CHAIN, "-i", BRIDGE, "-j", "DROP")
        _run("iptables", "-w", "-A", ISOLATION_CHAIN, "-o", BRIDGE, "-j", "DROP")
        _run("iptables", "-w", "-I", "FORWARD", "1", "-j", ISOLATION_CHAIN)

    def _containerd(self, pause_ref: str, pause_archive: Path) -> None:
        config = self.state_dir / "containerd" / "config.toml"
        config.write_text(_containerd_config(self.state_dir, pause_ref))
        self._spawn("containerd", ["containerd", f"--config={config}"])
        deadline = time.monotonic() + 30
        while _run(*self.ctr, "version", check=False).returncode != 0:
            self._check_alive()
            if time.monotonic() > deadline:
                raise ClusterError("containerd did not answer on its socket within 30s")
            time.sleep(0.2)
        images.import_archive(self.ctr, pause_archive, pause_ref, pause_ref)

    def _spawn(self, name: str, argv: list[str | Path]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        self._procs.append(processes.spawn(argv, log=log))

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                name = Path(str(proc.args[0])).name  # type: ignore[index]
                log = self.state_dir / "logs" / f"{name}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise ClusterError(f"{name} exited with {proc.returncode}:\n{tail}")

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.controlplane is not None
        return _run(
            str(self.controlplane.binaries.kubectl),
            f"--kubeconfig={self.kubeconfig}",
            *args,
            check=False,
        )

    def _wait_ready(self) -> None:
        """The node Ready, and what pods need from the controllers in ``default``."""
        deadline = time.monotonic() + self.ready_timeout
        checks = [
            (
                "node Ready",
                [
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                ],
                "True",
            ),
            (
                "service account default",
                ["get", "serviceaccount", "default", "-o", "name"],
                "serviceaccount/default",
            ),
            (
                "kube-root-ca.crt",
                ["get", "configmap", "kube-root-ca.crt", "-o", "name"],
                "configmap/kube-root-ca.crt",
            ),
        ]
        for what, args, expected in checks:
            while self.kubectl(*args).stdout.strip() != expected:
                self._check_alive()
                if self.controlplane is not None:
                    self.controlplane._check_alive()
                if time.monotonic() > deadline:
                    raise ClusterError(f"no {what} within {self.ready_timeout}s")
                time.sleep(0.5)
            self.progress(f"{what}")

    def alive(self) -> bool:
        try:
            self._check_alive()
            if self.controlplane is not None:
                self.controlplane._check_alive()
        except Exception:
            return False
        return True

    def stop(self) -> None:
        processes.stop(self._procs)
        self._procs.clear()
        if self.controlplane is not None:
            self.controlplane.stop()
        cleanup(self.state_dir, keep_logs=True)
