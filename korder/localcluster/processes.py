"""Child processes that never outlive the process that started them.

The control plane, the operator and the facade run as children of ``make run`` or
of the test session. If that parent dies (Ctrl-C, a failing test, even SIGKILL) the
children must go too, or the next start finds ports taken and a locked etcd. Linux's
``PR_SET_PDEATHSIG`` gives exactly that, so each child asks for SIGKILL when its
parent goes: SIGTERM is not enough, since kube-apiserver's graceful shutdown can
outlast the test that waits for it, and with the parent gone nobody waits for a
graceful exit anyway (etcd recovers from its WAL). :func:`stop` is the orderly path,
with SIGTERM first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that gets SIGKILL when this process dies.

    Output goes to ``log`` (appended) when given, else to this process's own stderr.
    """
    out: IO[bytes] | None = log.open("ab") if log else None
    try:
        return subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # Runs between fork and exec; no threads of ours run at that point.
            preexec_fn=_die_with_parent,
        )
    finally:
        if out:
            out.close()


class NotHealthyError(RuntimeError):
    """A child exited, or did not answer its health check in time."""


def wait_healthy(
    proc: subprocess.Popen[bytes], health_url: str, what: str, timeout: float = 60.0
) -> None:
    """Return once ``health_url`` answers 200; raise if ``proc`` exits or time runs out.

    Shared by ``make run``'s tooling, the e2e harness and the benchmarks, which all
    start korder's components and must not talk to them before they listen.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise NotHealthyError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(health_url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise NotHealthyError(f"{what} did not answer {health_url} within {timeout}s")
        time.sleep(0.2)


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    """SIGTERM the processes (last started first), then SIGKILL what is left after ``timeout``."""
    for proc in reversed(procs):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in reversed(procs):
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_stale(pidfile: Path, marker: str) -> None:
    """SIGKILL the processes listed in ``pidfile`` whose command line still names ``marker``.

    A run that was SIGKILLed leaves its children's pids behind; checking the command
    line keeps a recycled pid of an unrelated process safe.
    """
    if not pidfile.exists():
        return
    for line in pidfile.read_text().split():
        with contextlib.suppress(ValueError, OSError):
            pid = int(line)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            if marker in cmdline:
                os.kill(pid, signal.SIGKILL)
    pidfile.unlink()
