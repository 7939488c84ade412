"""The faults of a chaos run: what to inject, when, and the injectors.

Every fault is an option of the same run, and any of them combine:

- participant failures (the operator's ``CHAOS_MODE``) and a participant process
  SIGKILLed and restarted on its durable state;
- the operator SIGKILLed at random moments (the leader, when there are two
  replicas), and *targeted* kills: right after a participant answered a call of
  each kind (reserve, capture, release, refund, ship), before the operator could
  write the outcome down, so every step's crash window is exercised;
- kube-apiserver or etcd SIGKILLed and started again;
- an operator's connection to the API server cut (every byte held, nothing
  closed) for a while and healed.

The moments are drawn from the run's seed, so a run is repeatable as far as a
multi-process system can be. A supervisor (:mod:`.supervisor`) starts again what
was killed; the control plane is restarted here, on its own ports and data.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from chaos.proxies import Partition
from chaos.supervisor import Managed, Supervisor
from korder.localcluster.controlplane import ControlPlane

log = logging.getLogger(__name__)

#: The calls a targeted kill follows: every step and compensation of the saga.
CALL_KINDS = ("reserve-inventory", "capture-payment", "release-inventory", "refund-payment", "ship")


@dataclass(frozen=True)
class Plan:
    """How many faults of each kind; 0 leaves a kind out."""

    participant_failure_rate: float = 0.0
    participant_restarts: int = 0
    operator_kills: int = 0
    #: Kills after each kind of call in :data:`CALL_KINDS`.
    targeted_kills: int = 0
    apiserver_restarts: int = 0
    etcd_restarts: int = 0
    cuts: int = 0
    cut_seconds: tuple[float, float] = (30.0, 60.0)
    #: How a cut ends: "hold" lets the held bytes through, "drop" leaves the old
    #: connections silent for ever; "both" alternates, starting with "hold".
    cut_mode: str = "both"
    #: Down time of a restarted participant or control-plane component.
    down_seconds: float = 2.0

    def requested(self) -> Counter[str]:
        wanted = Counter(
            {
                "participant_restart": self.participant_restarts,
                "operator_kill": self.operator_kills,
                "apiserver_restart": self.apiserver_restarts,
                "etcd_restart": self.etcd_restarts,
                "cut": self.cuts,
            }
        )
        for kind in CALL_KINDS:
            wanted[f"kill_after_{kind}"] = self.targeted_kills
        return +wanted


@dataclass
class Timeline:
    """What was injected, and when (seconds into the run)."""

    started: float = field(default_factory=time.monotonic)
    injected: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, str, str]] = field(default_factory=list)

    def note(self, kind: str, detail: str = "") -> None:
        self.injected[kind] += 1
        self.events.append((round(time.monotonic() - self.started, 2), kind, detail))
        log.info("fault %s %s", kind, detail)


@dataclass
class Injector:
    plan: Plan
    supervisor: Supervisor
    plane: ControlPlane
    partitions: Sequence[Partition]
    rng: random.Random
    timeline: Timeline = field(default_factory=Timeline)
    _targets: Counter[str] = field(default_factory=Counter)
    _cooling: bool = False
    _cuts: int = 0
    _plane_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _cut_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self._targets = Counter(dict.fromkeys(CALL_KINDS, self.plan.targeted_kills))

    # --- scheduled faults -----------------------------------------------------

    async def run(self, window: float) -> None:
        """Inject the planned faults at random moments within ``window`` seconds."""
        jobs: list[Awaitable[None]] = []

        def schedule(count: int, fault: Callable[[], Awaitable[None]]) -> None:
            for _ in range(count):
                jobs.append(self._at(self.rng.uniform(0.1, 0.85) * window, fault))

        schedule(self.plan.operator_kills, self.kill_operator)
        schedule(self.plan.participant_restarts, self.restart_participants)
        schedule(self.plan.apiserver_restarts, lambda: self.restart_plane("kube-apiserver"))
        schedule(self.plan.etcd_restarts, lambda: self.restart_plane("etcd"))
        schedule(self.plan.cuts, self.cut)
        await asyncio.gather(*jobs)

    async def _at(self, delay: float, fault: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(delay)
        await fault()

    async def _leaders(self) -> list[Managed]:
        operators = self.supervisor.named("operator")
        if len(operators) == 1:
            # Alive: a kill of a process the supervisor has not restarted yet is no fault.
            return [m for m in operators if m.alive]
        return [m for m in operators if await m.leading()]

    @property
    def _partitioned(self) -> bool:
        return any(p.cut_now for p in self.partitions)

    async def kill_operator(self) -> None:
        """SIGKILL the operator that acts; with two replicas, wait for one to lead.

        Not while a partition is cut: an operator killed then would come back with
        fresh connections, and the cut would no longer prove that a silent watch
        recovers by itself.
        """
        for partition in self.partitions:
            await partition.healed()
        deadline = time.monotonic() + 60
        leaders = await self._leaders()
        while not leaders and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # a failover under way: the Lease is polled, not pushed
            leaders = await self._leaders()
        for m in leaders:
            m.kill()
            self.timeline.note("operator_kill", m.name)

    async def restart_participants(self) -> None:
        (participants,) = self.supervisor.named("participants")
        participants.held = True
        participants.kill()
        self.timeline.note("participant_restart")
        await asyncio.sleep(self.plan.down_seconds)
        participants.held = False
        participants.spawn()

    async def restart_plane(self, component: str) -> None:
        async with self._plane_lock:
            await asyncio.to_thread(self.plane.kill, component)
            self.timeline.note(f"{component.removeprefix('kube-')}_restart")
            await asyncio.sleep(self.plan.down_seconds)
            await asyncio.to_thread(self.plane.restart, component)

    async def cut(self) -> None:
        """Cut the leader's connection (every operator's, with one replica) for a while.

        One cut at a time: the heal of one would end the other early.
        """
        async with self._cut_lock:
            await self._cut()

    async def _cut(self) -> None:
        seconds = self.rng.uniform(*self.plan.cut_seconds)
        operators = self.supervisor.named("operator")
        leaders = {m.name for m in await self._leaders()}
        cut = [p for m, p in zip(operators, self.partitions, strict=True) if m.name in leaders]
        for partition in cut or self.partitions[:1]:
            partition.cut()
        modes = ("hold", "drop") if self.plan.cut_mode == "both" else (self.plan.cut_mode,)
        mode = modes[self._cuts % len(modes)]
        self._cuts += 1
        self.timeline.note("cut", f"{seconds:.0f} s, {mode}")
        await asyncio.sleep(seconds)
        for partition in self.partitions:
            partition.heal(drop=mode == "drop")

    # --- targeted kills, from the call gate ---------------------------------------

    async def after_call(self, kind: str) -> None:
        """The participant answered a ``kind`` call: maybe kill its caller before it hears."""
        if self._cooling or self._targets[kind] <= 0 or self._partitioned:
            return
        self._cooling = True  # before the first await: calls answered meanwhile pass by
        leaders = await self._leaders()
        if not leaders:
            self._cooling = False
            return
        self._targets[kind] -= 1
        for m in leaders:
            m.kill()
        self.timeline.note(f"kill_after_{kind}", ",".join(m.name for m in leaders))
        asyncio.get_running_loop().call_later(3.0, self._cooled)

    def _cooled(self) -> None:
        self._cooling = False
