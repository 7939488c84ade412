"""The run's processes, restarted when they die, as a kubelet restarts a container.

``make run`` stops everything when one component dies, which is right for a
developer's terminal and wrong for a chaos run: an operator that loses its Lease
exits on purpose (status 3) and must come back, and a process the run SIGKILLs
must be started again. :class:`Supervisor` polls its processes and restarts any
that exited, unless a fault holds it down, and counts every exit by its status.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from korder.localcluster import processes

log = logging.getLogger(__name__)
#: How often the supervisor looks (a kubelet's restart is slower; a short one keeps runs short).
POLL_SECONDS = 0.3


@dataclass
class Managed:
    """A korder component: ``python -m module`` with its environment and log."""

    name: str
    module: str
    env: dict[str, str]
    log: Path
    health_url: str
    metrics_url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    #: Held down by a fault: not restarted until the fault lets go.
    held: bool = False
    exits: Counter[str] = field(default_factory=Counter)
    starts: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.proc = processes.spawn([sys.executable, "-m", self.module], env=self.env, log=self.log)
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last write, as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    async def healthy(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(processes.wait_healthy, self.proc, self.health_url, self.name)

    async def leading(self) -> bool:
        """Whether this operator replica holds the Lease (its /healthz says)."""
        if not self.alive:
            return False
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                answer = await client.get(self.health_url)
            return bool(answer.json().get("leader"))
        except (httpx.HTTPError, ValueError):
            return False


class Supervisor:
    def __init__(self, managed: list[Managed]) -> None:
        self.managed = managed
        self._task: asyncio.Task[None] | None = None

    def named(self, prefix: str) -> list[Managed]:
        return [m for m in self.managed if m.name.startswith(prefix)]

    async def start(self) -> None:
        for m in self.managed:
            m.spawn()
            await m.healthy()
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            for m in self.managed:
                if m.proc is None or m.held or m.proc.poll() is None:
                    continue
                code = m.proc.returncode
                m.exits[_exit_name(code)] += 1
                log.info("restarting %s after exit %s", m.name, code)
                m.spawn()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        processes.stop([m.proc for m in self.managed if m.proc is not None])


def _exit_name(code: int) -> str:
    if code < 0:
        return signal.Signals(-code).name
    return f"exit {code}"
