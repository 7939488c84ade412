"""Finding or building kube-apiserver, etcd and kubectl.

Order of preference:
1. ``KUBEBUILDER_ASSETS`` (controller-runtime envtest's convention), when it points
   at a folder holding ``kube-apiserver`` and ``etcd``;
2. the build cache, filled by ``hack/controlplane/build.sh`` from the pinned Go
   modules (a cold build takes minutes; a warm one is a file check).

kubectl comes from the same folder when it is there, else from ``PATH``.

The local cluster's node components (kube-controller-manager, kube-scheduler, kubelet,
kube-proxy and the pause program) come from a second module, ``hack/node``, built by
the same script into their own cache entry (:func:`resolve_node`), so that adding them
never rebuilds the control plane that ``make test`` and ``make run`` use. Prometheus'
promtool, which checks the monitoring component's rules, comes from a third, ``hack/promtool``
(:func:`resolve_promtool`), and Jaeger, the trace backend of the tracing e2e test, from a
fourth, ``hack/jaeger`` (:func:`resolve_jaeger`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"


class BinariesUnavailableError(RuntimeError):
    """The control plane's binaries could not be found or built."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path

    @classmethod
    def in_folder(cls, folder: Path) -> Binaries | None:
        etcd, apiserver = folder / "etcd", folder / "kube-apiserver"
        if not (etcd.is_file() and apiserver.is_file()):
            return None
        kubectl = folder / "kubectl"
        if not kubectl.is_file():
            on_path = shutil.which("kubectl")
            if on_path is None:
                raise BinariesUnavailableError(f"no kubectl in {folder} nor on PATH")
            kubectl = Path(on_path)
        return cls(etcd=etcd, kube_apiserver=apiserver, kubectl=kubectl)


@dataclass(frozen=True)
class NodeBinaries:
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    kube_proxy: Path
    #: The static program the pods' sandbox image is made of (see :mod:`.images`).
    pause: Path

    @classmethod
    def in_folder(cls, folder: Path) -> NodeBinaries | None:
        found = cls(
            kube_controller_manager=folder / "kube-controller-manager",
            kube_scheduler=folder / "kube-scheduler",
            kubelet=folder / "kubelet",
            kube_proxy=folder / "kube-proxy",
            pause=folder / "pause",
        )
        paths = (
            found.kube_controller_manager,
            found.kube_scheduler,
            found.kubelet,
            found.kube_proxy,
            found.pause,
        )
        return found if all(p.is_file() for p in paths) else None


def _build(module: str) -> Path:
    """Run the build script for ``module``; the folder of binaries it printed last."""
    # The script prints progress on stderr (inherited, so it shows) and the folder last.
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), module], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise BinariesUnavailableError(
            f"{BUILD_SCRIPT} {module} failed with exit code {result.returncode}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def resolve_node() -> NodeBinaries:
    """The node components, building them into the cache when needed."""
    folder = _build("node")
    found = NodeBinaries.in_folder(folder)
    if found is None:
        raise BinariesUnavailableError(f"{BUILD_SCRIPT} node did not leave binaries in {folder}")
    return found


def resolve_promtool() -> Path:
    """Prometheus' promtool (for the monitoring checks), building it into the cache when needed."""
    promtool = _build("promtool") / "promtool"
    if not promtool.is_file():
        raise BinariesUnavailableError(f"{BUILD_SCRIPT} promtool did not leave {promtool}")
    return promtool


def resolve_jaeger() -> Path:
    """Jaeger's all-in-one binary (for the tracing e2e test), building it when needed."""
    jaeger = _build("jaeger") / "jaeger"
    if not jaeger.is_file():
        raise BinariesUnavailableError(f"{BUILD_SCRIPT} jaeger did not leave {jaeger}")
    return jaeger


def resolve() -> Binaries:
    """The binaries to run, building them into the cache when needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        found = Binaries.in_folder(Path(assets))
        if found:
            return found
        print(
            f"KUBEBUILDER_ASSETS={assets} lacks kube-apiserver or etcd; using the build cache",
            file=sys.stderr,
        )
    folder = _build("controlplane")
    found = Binaries.in_folder(folder)
    if found is None:
        raise BinariesUnavailableError(f"{BUILD_SCRIPT} did not leave binaries in {folder}")
    return found
