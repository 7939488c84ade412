"""Shards: N operator processes, each acting on a disjoint range of Order UIDs.

Pure code, no Kubernetes: used by the operator's entry point
(:mod:`korder.operator.__main__`), which picks a shard by its Lease, and by the
tests and ``make bench``, which check who acted on an order against
:func:`owner`.

How the range is cut. The API server's sharded list and watch (the
``ShardedListAndWatch`` feature gate; Kopf's ``settings.watching.shard_selectors``
passes the selector through to every list and watch) hashes ``metadata.uid`` with
64-bit FNV-1a and keeps the objects whose hash lies in ``[start, end)``. Shard
``i`` of ``N`` is the ``i``-th of ``N`` equal slices of ``[0, 2**64)``: the slices
are disjoint and, the last one ending at ``2**64``, they cover every hash. UIDs are
random, so the slices get about the same number of orders. A server without the
feature gate ignores the selector; the handlers' ``when`` filter
(:func:`korder.operator.handlers.in_this_shard`) then keeps each shard to its range.

How a dead shard is covered again. Each shard is one Lease
(``<lease name>-shard-<i>-of-<N>``), held by one process at a time with the same
election as a single operator (:mod:`.leadership`); a process holds one shard or
none. A process that dies stops renewing, its Lease runs out after the Lease's
duration, and a process without a shard (one of the spares: run N + 1 or more)
takes it within one retry period after that. The range is acted on by nobody for
at most that long, never by two: the holder that could not renew stops (exits)
before the Lease runs out, exactly as a single leader does.

Why one shard per process rather than a survivor taking on a second range:

- a process's Kopf runs with one selector for its life; a second range would mean
  stopping Kopf and listing again with a wider selector, a pause of the range it
  already had, for the sake of one it gains;
- a shard is a unit of capacity: a survivor with two ranges runs both at half speed,
  which is what the shards are there to avoid; a spare takes over at full speed;
- it is the single operator's failover, unchanged: with one shard it *is* today's
  election on today's Lease (``korder-operator``), so the default stays as it was.

In a cluster, a dead process's pod restarts and becomes the spare; without any
spare, its range waits for that restart.

Changing N. Shard 0 of 2 and shard 0 of 4 are different Leases over overlapping
ranges, so processes with different N must not run at once: change
``KORDER_OPERATOR_SHARDS`` by stopping every replica first (the Deployment's
``Recreate`` strategy). Even then nothing is corrupted (status writes are guarded
by resourceVersion, participant calls are idempotent by key); orders are only
worked on twice.

Evidence of who acted: every log line of a sharded process carries ``shard``
(``i/N``), and its status writes are made as the field manager
``korder-operator-shard-<i>-of-<N>``, so ``metadata.managedFields`` of each Order
names, durably and at no extra write, every shard that ever wrote its status.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: The hash space of the API server's shard selectors: [0, 2**64).
SPACE: Final = 2**64
_FNV_OFFSET: Final = 0xCBF29CE484222325
_FNV_PRIME: Final = 0x100000001B3
#: The field the ranges are cut on.
KEY: Final = "object.metadata.uid"


def fnv1a_64(value: str) -> int:
    """64-bit FNV-1a of ``value``'s UTF-8 bytes: the API server's shard hash."""
    digest = _FNV_OFFSET
    for byte in value.encode():
        digest = ((digest ^ byte) * _FNV_PRIME) % SPACE
    return digest


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the ``index``-th equal slice of the hash space."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"no shard {self.index} of {self.count}")

    @property
    def start(self) -> int:
        return self.index * SPACE // self.count

    @property
    def end(self) -> int:
        return (self.index + 1) * SPACE // self.count

    @property
    def sharded(self) -> bool:
        """False for the one shard of one: all orders, no selector, today's names."""
        return self.count > 1

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def selector(self) -> str:
        """The API server's shard selector for this range."""
        return f"shardRange({KEY}, '{_hex(self.start)}', '{_hex(self.end)}')"

    def holds(self, uid: str) -> bool:
        return self.start <= fnv1a_64(uid) < self.end

    def lease_name(self, base: str) -> str:
        return f"{base}-shard-{self.index}-of-{self.count}" if self.sharded else base

    def field_manager(self, base: str) -> str:
        return self.lease_name(base)


def shards(count: int) -> list[Shard]:
    """Every shard of ``count``, in order."""
    return [Shard(i, count) for i in range(count)]


def owner(uid: str, count: int) -> Shard:
    """The shard of ``count`` whose range holds ``uid``."""
    return next(s for s in shards(count) if s.holds(uid))


def from_field_manager(name: str, base: str) -> Shard | None:
    """The shard a field manager of :meth:`Shard.field_manager` names (None: not one)."""
    prefix = f"{base}-shard-"
    if not name.startswith(prefix):
        return None
    index, _, count = name.removeprefix(prefix).partition("-of-")
    if not (index.isdigit() and count.isdigit()):
        return None
    return Shard(int(index), int(count))


def writers(managers: Iterable[str], base: str) -> set[Shard]:
    """The shards among the field managers of an Order's status."""
    return {s for s in (from_field_manager(m, base) for m in managers) if s is not None}


def _hex(bound: int) -> str:
    # The API server takes exactly 16 hex digits, or 2**64 itself as the last end.
    return "0x10000000000000000" if bound == SPACE else f"0x{bound:016x}"
