"""``make cluster-up`` and ``make cluster-down``: the local cluster in the background.

``cluster-up`` starts ``python -m korder.localcluster cluster-serve`` in a session of
its own (so it outlives make), shows its progress from its log, and returns once the
cluster is ready, or fails with the log's tail. ``cluster-serve`` runs
:class:`~korder.localcluster.node.LocalCluster`: its children die with it (even when it
is SIGKILLed), and on SIGTERM it stops them and cleans up. ``cluster-down`` sends that
SIGTERM and waits; when the server is already gone (killed), it cleans up itself.

Called by :mod:`korder.localcluster.__main__`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from korder.localcluster import node

PIDFILE = node.CLUSTER_DIR / "daemon.pid"
LOG = node.CLUSTER_DIR / "daemon.log"
#: Written by the server once the cluster is ready, removed when it stops.
READY = node.CLUSTER_DIR / "ready"
#: Long enough for a cold build of every Go component (about 10 minutes here).
UP_TIMEOUT = 40 * 60.0


def _server_pid() -> int | None:
    """The running server's pid, if the pidfile names a live ``cluster-serve``."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(PIDFILE.read_text().strip())
        if b"cluster-serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def serve() -> int:
    """Run the cluster until SIGTERM or SIGINT, or until one of its components exits."""
    cluster = node.LocalCluster()
    # The readiness polls would log every request; the progress lines say enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        # Once: the cleanup that follows must not be interrupted by a second signal.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        cluster.start()
        READY.write_text(f"{node.KUBECONFIG}\n")
        print(f"cluster ready; export KUBECONFIG={node.KUBECONFIG}", file=sys.stderr, flush=True)
        while cluster.alive():
            time.sleep(1.0)
        print("a component of the cluster exited; stopping", file=sys.stderr, flush=True)
        return 1
    except node.ClusterError as exc:
        print(f"the cluster did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        READY.unlink(missing_ok=True)
        cluster.stop()
        print("cluster stopped", file=sys.stderr, flush=True)


def up() -> int:
    node.CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    if _server_pid() is not None:
        if READY.exists():
            print(f"the cluster is already up: export KUBECONFIG={node.KUBECONFIG}")
            return 0
        print("a cluster is starting already; make cluster-down first", file=sys.stderr)
        return 1
    READY.unlink(missing_ok=True)
    with LOG.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "korder.localcluster", "cluster-serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: make's end, or a Ctrl-C at the terminal, does not stop it.
            start_new_session=True,
        )
    PIDFILE.write_text(f"{server.pid}\n")
    started = time.monotonic()
    shown = 0
    with LOG.open("rb") as log:
        while True:
            chunk = log.read()
            if chunk:
                sys.stderr.write(chunk.decode(errors="replace"))
                sys.stderr.flush()
                shown += len(chunk)
            if READY.exists():
                print(
                    f"cluster up in {time.monotonic() - started:.0f}s: "
                    f"export KUBECONFIG={node.KUBECONFIG}",
                    flush=True,
                )
                return 0
            if server.poll() is not None:
                sys.stderr.write(log.read().decode(errors="replace"))
                print(f"cluster-serve exited with {server.returncode}", file=sys.stderr)
                return 1
            if time.monotonic() - started > UP_TIMEOUT:
                print(f"the cluster was not ready within {UP_TIMEOUT:.0f}s", file=sys.stderr)
                down()
                return 1
            time.sleep(0.5)


def down(timeout: float = 120.0) -> int:
    pid = _server_pid()
    if pid is not None:
        print("stopping the cluster", file=sys.stderr, flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _server_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.3)
        if _server_pid() is not None:
            print(f"cluster-serve still running after {timeout:.0f}s; SIGKILL", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(1.0)
    # Whatever a killed server left (its shims and containers, mounts, the bridge, rules).
    if node.cleanup(node.STATE_DIR, keep_logs=True):
        print("cleaned up what the cluster left", file=sys.stderr)
    for leftover in (PIDFILE, READY, node.KUBECONFIG):
        leftover.unlink(missing_ok=True)
    print("cluster down", file=sys.stderr)
    return 0
