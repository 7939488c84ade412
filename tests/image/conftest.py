"""The image tests' harness: the built image run as containers, next to a real control plane.

``make test-image`` builds the image (``make docker-build``) and passes its name in
``KORDER_IMAGE`` and the engine in ``CONTAINER_TOOL`` (podman here). Containers share the
host's network (``--network=host``) and bind 127.0.0.1 only; they run the way a restricted
pod does: a read-only root filesystem, a tmpfs on /tmp, and the image's own non-root user.
The control plane is the e2e suite's (:func:`tests.e2e.conftest.cluster`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from korder.localcluster import binaries, system
from tests.e2e.conftest import cluster  # noqa: F401 - cluster is a fixture here
from tests.support.waiting import wait_for

pytestmark = pytest.mark.image

CONTAINERS_CONF = binaries.REPO_ROOT / "hack" / "image" / "containers.conf"
#: Where a container finds its kubeconfig.
KUBECONFIG_IN_CONTAINER = "/etc/korder/kubeconfig"


@dataclass
class Container:
    """One running container of the image."""

    engine: Engine
    name: str

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.engine.run("exec", self.name, *command, check=False)

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def wait_answers(self, url: str, timeout: float = 60.0) -> httpx.Response:
        """The first 200 answer of ``url``; fails with the container's log after ``timeout``."""

        def answered() -> httpx.Response | None:
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.HTTPError:
                return None
            return response if response.status_code == 200 else None

        try:
            found = wait_for(answered, timeout=timeout, what=f"{url} to answer 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.name} log:\n{self.logs()}") from exc
        assert isinstance(found, httpx.Response)
        return found


@dataclass
class Engine:
    """The container engine (podman, or docker), running the image under test."""

    tool: str
    image: str
    env: dict[str, str]
    started: list[str] = field(default_factory=list)

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.tool, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.tool} {' '.join(args)} failed:\n{result.stderr}")
        return result

    def start(
        self,
        *role: str,
        env: dict[str, str] | None = None,
        kubeconfig: Path | None = None,
        options: list[str] | None = None,
    ) -> Container:
        """Run the image detached, read-only with a tmpfs /tmp, as its own user."""
        name = f"korder-test-{uuid.uuid4().hex[:8]}"
        args = [
            "run", "--detach", "--name", name, "--network=host",
            "--read-only", "--tmpfs", "/tmp:rw,nosuid,nodev,size=64m",
        ]  # fmt: skip
        if kubeconfig is not None:
            args += ["--volume", f"{kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro"]
            args += ["--env", f"KUBECONFIG={KUBECONFIG_IN_CONTAINER}"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        self.run(*args, *(options or []), self.image, *role)
        self.started.append(name)
        return Container(self, name)

    def remove_all(self) -> None:
        if self.started:
            self.run("rm", "--force", *self.started, check=False)
            self.started.clear()


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("KORDER_IMAGE")
    if not name:
        pytest.skip("KORDER_IMAGE is not set: run `make test-image`, which builds the image")
    return name


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    tool = os.environ.get("CONTAINER_TOOL", "podman")
    env = dict(os.environ)
    if tool == "podman":
        env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


@pytest.fixture
def engine(image: str, engine_env: dict[str, str]) -> Iterator[Engine]:
    tool = os.environ.get("CONTAINER_TOOL", "podman")
    if shutil.which(tool) is None:
        raise AssertionError(f"{tool} is not installed: `make image-tools` installs podman")
    e = Engine(tool, image, engine_env)
    yield e
    e.remove_all()


@pytest.fixture
def kubeconfig(cluster: system.Cluster, tmp_path: Path) -> Path:  # noqa: F811 - the fixture
    """The cluster's kubeconfig, readable by the image's user (the original is 0600, root's)."""
    copy = tmp_path / "kubeconfig"
    copy.write_text(cluster.kubeconfig.read_text())
    copy.chmod(0o644)
    return copy


@pytest.fixture
def namespace(cluster: system.Cluster) -> str:  # noqa: F811 - the fixture
    name = f"image-{uuid.uuid4().hex[:6]}"
    cluster.kubectl_run("create", "namespace", name)
    return name


def unreachable_kubeconfig(kubeconfig: Path, port: int) -> Path:
    """A copy of ``kubeconfig`` whose API server is a closed port."""
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    broken = kubeconfig.with_name("unreachable-kubeconfig")
    broken.write_text(yaml.safe_dump(config))
    broken.chmod(0o644)
    return broken
