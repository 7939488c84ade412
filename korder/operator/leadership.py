"""Leader election on a Lease: of any number of operator replicas, exactly one acts.

Called by the operator's entry point (:mod:`korder.operator.__main__`) before Kopf
starts, and then for as long as Kopf runs. Kopf's own peering is not used: replicas
of equal priority freeze one another, and standalone ones all act.

The algorithm is client-go's leaderelection, on ``coordination.k8s.io/v1`` Lease:

- a replica may take the Lease when nobody holds it, or when the record it last
  saw has not changed for the Lease's duration by *its own* clock (never by
  comparing another machine's timestamps, so clock skew cannot elect two);
- every write is guarded by the resourceVersion it read, so of two replicas
  racing for an expired Lease one wins and the other sees a conflict;
- the leader renews every retry period; if it cannot renew for the renew
  deadline, which is shorter than the Lease's duration, it stops acting (the
  caller exits at once), so it has stopped before any other replica may start;
- a leader that stops cleanly gives the Lease up, so a rolling update does not
  wait out the duration;
- each of the leader's writes carries ``annotations()`` (its breakers' states, from
  :mod:`.breakers`), and :meth:`Elector.publish` renews at once when they change: the
  one writer of the Lease publishes them, so they never race a renewal.

Status writes are guarded by resourceVersion too (:mod:`korder.kube.status_writing`),
so even a leader paused past its deadline (a stopped VM) cannot overwrite the
newer leader's saga state when it wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lightkube import AsyncClient
from prometheus_client import Gauge

from korder.kube import leases, orders

logger = logging.getLogger(__name__)

LEADER = Gauge(
    "korder_operator_leader", "1 while this operator replica holds the Lease and acts, else 0."
)


@dataclass
class Elector:
    """One replica's view of the Lease and its part in the election."""

    client: AsyncClient
    namespace: str
    name: str
    identity: str
    lease_seconds: float
    renew_deadline: float
    retry_period: float
    clock: Callable[[], float] = time.monotonic
    #: What the leader publishes on the Lease besides holding it (annotations).
    annotations: Callable[[], Mapping[str, str]] = dict
    #: Set to renew before the retry period is out (something to publish).
    _poke: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    #: The last record seen, and when (by our clock) it last changed.
    _seen: leases.Record | None = field(default=None, init=False)
    _seen_at: float = field(default=0.0, init=False)
    #: The holder last reported while standing by, so each change is logged once.
    _waiting_for: str | None = field(default=None, init=False)
    #: When (by our clock) the API server last answered a look at the Lease.
    _answered_at: float | None = field(default=None, init=False)

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def acquire(self) -> None:
        """Return once this replica holds the Lease, looking again every retry period."""
        await acquire_any([self], self.retry_period)

    async def attempt(self) -> bool:
        """Take or renew the Lease if we may, once; whether this replica holds it now."""
        holder = await self._try()
        if holder == self.identity:
            logger.info(
                "leading: holding the Lease %s",
                self.where,
                extra={"lease": self.where, "identity": self.identity},
            )
            return True
        if holder != self._waiting_for:
            self._waiting_for = holder
            logger.info(
                "standing by: the Lease %s is held by %s",
                self.where,
                holder,
                extra={"lease": self.where, "holder": holder},
            )
        return False

    def answering(self) -> bool:
        """Whether the API server answered a look at the Lease within its duration: the
        replica's readiness, leading or standing by (a standby that cannot read the Lease
        could not take over)."""
        return self._answered_at is not None and (
            self.clock() - self._answered_at < self.lease_seconds
        )

    def publish(self) -> None:
        """Write ``annotations()`` at once (at the next renewal's place), not a period later."""
        self._poke.set()

    async def keep(self) -> None:
        """Renew the Lease until leadership is lost; return then (the caller must stop acting)."""
        renewed = self.clock()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.retry_period)
            self._poke.clear()
            left = self.renew_deadline - (self.clock() - renewed)
            try:
                holder = await asyncio.wait_for(self._try(), timeout=max(left, 0.01))
            except TimeoutError:
                holder = None
            if holder == self.identity:
                renewed = self.clock()
                continue
            if holder is not None:
                logger.error(
                    "lost the Lease %s to %s",
                    self.where,
                    holder,
                    extra={"lease": self.where, "holder": holder},
                )
                return
            if self.clock() - renewed >= self.renew_deadline:
                logger.error(
                    "could not renew the Lease %s for %.0fs",
                    self.where,
                    self.renew_deadline,
                    extra={"lease": self.where},
                )
                return

    async def release(self) -> None:
        """Give the Lease up (on a clean stop) so another replica takes over at once."""
        seen = self._seen
        if seen is None or seen.holder != self.identity:
            return
        gone = leases.Record(
            holder=None,
            acquired=seen.acquired,
            renewed=datetime.now(UTC),
            seconds=1,
            transitions=seen.transitions,
            resource_version="",
        )
        try:
            await leases.write(self.client, self.namespace, self.name, gone, previous=seen)
        except orders.KubeError as exc:
            logger.warning("could not give the Lease up: %s", exc.message)

    async def _try(self) -> str | None:
        """Take or renew the Lease if we may; the holder after the attempt (None: unknown)."""
        try:
            current = await leases.read(self.client, self.namespace, self.name)
        except orders.KubeError as exc:
            logger.warning("cannot read the Lease %s: %s", self.where, exc.message)
            return None
        now = self._answered_at = self.clock()
        if current != self._seen:
            self._seen, self._seen_at = current, now
        if current is not None and current.holder not in (None, self.identity):
            expired = now - self._seen_at >= (current.seconds or self.lease_seconds)
            if not expired:
                return current.holder
        stamp = datetime.now(UTC)
        mine = current is not None and current.holder == self.identity
        record = leases.Record(
            holder=self.identity,
            acquired=current.acquired if mine and current else stamp,
            renewed=stamp,
            seconds=max(1, round(self.lease_seconds)),
            transitions=(current.transitions if current else 0) + (0 if mine else 1),
            resource_version="",
            annotations={**(current.annotations if current else {}), **self.annotations()},
        )
        try:
            written = await leases.write(
                self.client, self.namespace, self.name, record, previous=current
            )
        except (orders.Conflict, orders.AlreadyExists):
            return None  # another replica wrote first: who holds it now is for the next look
        except orders.KubeError as exc:
            logger.warning("cannot write the Lease %s: %s", self.where, exc.message)
            return None
        self._seen, self._seen_at = written, self.clock()
        return self.identity


async def acquire_any(electors: Sequence[Elector], retry_period: float) -> Elector:
    """Return the first of ``electors`` whose Lease this replica took; one Lease at most.

    For the shards (:mod:`.sharding`): a replica waits for any shard's Lease, looking
    at each of them every retry period, in order, and stops at the first it holds.
    Of replicas starting together, the one that loses a race for a Lease (a conflict)
    tries the next in the same round, so N replicas spread over N shards at once.
    """
    while True:
        for elector in electors:
            if await elector.attempt():
                return elector
        await asyncio.sleep(retry_period)
