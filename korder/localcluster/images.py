"""Images for the local cluster's containerd: the pause image, and korder's own.

The node never pulls: no registry is reachable from these machines, and nothing may be
sent off the machine anyway. So every image a pod runs is put into containerd's store
first, from an OCI archive that podman writes (``podman save --format oci-archive``),
with ``ctr images import``.

- The pause (sandbox) image is made here, ``FROM scratch`` with the static ``pause``
  program built from ``hack/node/pause``; its tag is the program's digest, and the
  archive is cached in ``~/.cache/korder/images/`` like the base image.
- :func:`load` puts a podman image (``make docker-build``'s) into the node, under the
  name the kubelet asks containerd for (``korder:dev`` is ``docker.io/library/korder:dev``
  to the CRI, while podman calls it ``localhost/korder:dev``).

Called by :mod:`.node` (the pause image, at start-up) and by ``python -m
korder.localcluster load-image`` (``make cluster-load``, ``make deploy`` on the cluster).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from korder.localcluster.binaries import REPO_ROOT

#: podman's settings for this repository (runc, ulimits the host accepts).
CONTAINERS_CONF = REPO_ROOT / "hack" / "image" / "containers.conf"
CONTAINERFILE = (
    "FROM scratch\n"
    "COPY pause /pause\n"
    # The nobody user: the sandbox needs no privilege at all.
    "USER 65535:65535\n"
    'ENTRYPOINT ["/pause"]\n'
)


class ImageError(RuntimeError):
    """An image could not be built, saved or imported."""


def cache_dir() -> Path:
    root = Path(os.environ.get("KORDER_CACHE_DIR", Path.home() / ".cache" / "korder"))
    return root / "images"


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(["podman", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise ImageError(f"podman {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return result


def pause_image(pause_binary: Path) -> tuple[str, Path]:
    """The pause image's reference and its OCI archive, built once per program digest."""
    digest = hashlib.sha256(pause_binary.read_bytes() + CONTAINERFILE.encode()).hexdigest()[:12]
    ref = f"localhost/korder-pause:{digest}"
    archive = cache_dir() / f"korder-pause-{digest}.tar"
    if archive.is_file():
        return ref, archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as context:
        (Path(context) / "pause").write_bytes(pause_binary.read_bytes())
        (Path(context) / "pause").chmod(0o755)
        (Path(context) / "Containerfile").write_text(CONTAINERFILE)
        _podman("build", "--quiet", "--tag", ref, context)
    partial = archive.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    _podman("save", "--format", "oci-archive", "--output", str(partial), ref)
    partial.rename(archive)
    return ref, archive


def normalized(ref: str) -> str:
    """The name the CRI gives ``ref``: docker's rules (``korder:dev`` is
    ``docker.io/library/korder:dev``), ``:latest`` when there is neither tag nor digest."""
    first, _, rest = ref.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = "docker.io", ref
        if "/" not in path:
            path = f"library/{path}"
    else:
        domain, path = first, rest
    last = path.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        path += ":latest"
    return f"{domain}/{path}"


def podman_name(ref: str) -> str:
    """The name podman stores ``ref`` under: a bare name lives under ``localhost/``."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"localhost/{ref}"


def import_archive(ctr: list[str], archive: Path, source: str, target: str) -> None:
    """``ctr images import`` the archive, then name ``source`` (its name inside) ``target``."""
    steps = [["images", "import", str(archive)]]
    if source != target:
        steps += [["images", "rm", target], ["images", "tag", source, target]]
    for args in steps:
        result = subprocess.run([*ctr, *args], capture_output=True, text=True)
        # The old name may not be there yet; every other step must work.
        if result.returncode != 0 and args[1] != "rm":
            raise ImageError(f"ctr {' '.join(args)} failed:\n{result.stderr[-2000:]}")


def load(ctr: list[str], ref: str) -> str:
    """Put the podman image ``ref`` into containerd; return the name pods find it by."""
    source = podman_name(ref)
    target = normalized(ref)
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "image.tar"
        _podman("save", "--format", "oci-archive", "--output", str(archive), source)
        import_archive(ctr, archive, normalized(source), target)
    return target
