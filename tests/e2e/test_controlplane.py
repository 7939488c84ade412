"""The local control plane's lifecycle: what a killed run leaves must not break the next."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from korder.localcluster import binaries
from korder.localcluster.controlplane import ControlPlane
from tests.support.waiting import wait_for

STARTER = """
import sys, time
from pathlib import Path
from korder.localcluster import binaries
from korder.localcluster.controlplane import ControlPlane
state = Path(sys.argv[1])
plane = ControlPlane(binaries.resolve(), state_dir=state, kubeconfig=state / "kubeconfig")
plane.start()
print(plane.api_url, flush=True)
time.sleep(600)
"""


def _pids(state: Path) -> list[int]:
    return [int(p) for p in (state / "pids").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_a_killed_run_leaves_nothing_that_breaks_the_next_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert starter.stdout is not None
    first_url = starter.stdout.readline().strip()
    assert first_url.startswith("https://127.0.0.1:")
    children = _pids(state)
    assert len(children) == 2

    # SIGKILL the parent: no cleanup code of ours runs. The children go anyway.
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    starter.stdout.close()
    wait_for(
        lambda: not any(_alive(p) for p in children),
        timeout=30,
        what="etcd and kube-apiserver to die with their parent",
    )
    assert (state / "pids").exists(), "the killed run left its pid file behind"

    plane = ControlPlane(binaries.resolve(), state_dir=state, kubeconfig=state / "kubeconfig")
    with plane:
        context = ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
        context.load_cert_chain(state / "pki" / "admin.crt", state / "pki" / "admin.key")
        response = httpx.get(f"{plane.api_url}/readyz", verify=context)
        assert response.status_code == 200
        # etcd's data survived the kill: the API server still serves what it wrote before.
        namespaces = httpx.get(f"{plane.api_url}/api/v1/namespaces/default", verify=context)
        assert namespaces.status_code == 200
        second = _pids(state)
    # An orderly stop leaves no process and no pid file.
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in second):
        assert time.monotonic() < deadline, "stop() left a process running"
        time.sleep(0.1)
    assert not (state / "pids").exists()
