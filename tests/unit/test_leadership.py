"""The Lease election (korder.operator.leadership) over an in-memory Lease and a fake clock."""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

import pytest

from korder.kube import leases, orders
from korder.operator import leadership, sharding
from tests.support.clock import Clock


@dataclass
class FakeLease:
    """One Lease, with the API server's guard: a write must name the version it read."""

    record: leases.Record | None = None
    version: int = 0
    failing: bool = False

    async def read(self, *_: object) -> leases.Record | None:
        if self.failing:
            raise orders.Unavailable("the API server is down")
        return self.record

    async def write(
        self, _client: object, _ns: str, _name: str, record: leases.Record, *, previous: object
    ) -> leases.Record:
        if self.failing:
            raise orders.Unavailable("the API server is down")
        current = self.record.resource_version if self.record else None
        seen = previous.resource_version if isinstance(previous, leases.Record) else None
        if seen != current:
            raise orders.Conflict("the object has been modified")
        self.version += 1
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        return self.record

    def held_by(self, holder: str) -> None:
        assert self.record is not None
        self.version += 1
        self.record = dataclasses.replace(
            self.record, holder=holder, resource_version=str(self.version)
        )


@pytest.fixture
def lease(monkeypatch: pytest.MonkeyPatch) -> FakeLease:
    fake = FakeLease()
    monkeypatch.setattr(leases, "read", fake.read)
    monkeypatch.setattr(leases, "write", fake.write)
    return fake


def elector(identity: str, clock: Clock) -> leadership.Elector:
    return leadership.Elector(
        client=None,  # type: ignore[arg-type]  # the fake Lease needs none
        namespace="ns",
        name="korder-operator",
        identity=identity,
        lease_seconds=10,
        renew_deadline=7,
        retry_period=0.001,
        clock=clock,
    )


async def test_the_first_replica_takes_a_free_lease(lease: FakeLease) -> None:
    await elector("a", Clock()).acquire()
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions, lease.record.seconds) == ("a", 1, 10)


async def test_a_held_lease_is_taken_only_after_it_stood_still_for_its_duration(
    lease: FakeLease,
) -> None:
    clock = Clock()
    a, b = elector("a", clock), elector("b", clock)
    await a.acquire()
    assert await b._try() == "a"
    clock.now += 9.9  # the record has not changed for 9.9 s, by b's clock
    assert await b._try() == "a"
    await a._try()  # a renews: the record changes ...
    assert await b._try() == "a"  # ... and b, seeing it, counts from now
    clock.now += 9.9
    assert await b._try() == "a"
    clock.now += 0.2  # 10.1 s without a change
    assert await b._try() == "b"
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions) == ("b", 2)


async def test_the_leader_stops_when_another_holds_the_lease(lease: FakeLease) -> None:
    a = elector("a", Clock())
    await a.acquire()
    lease.held_by("someone-else")
    await a.keep()  # returns: a must stop acting


async def test_the_leader_stops_when_it_cannot_renew_for_the_deadline(lease: FakeLease) -> None:
    clock = Clock()
    a = elector("a", clock)
    await a.acquire()
    lease.failing = True

    ticks = 0

    def advancing() -> float:
        nonlocal ticks
        ticks += 1
        return 1000.0 + ticks  # a second passes at every look at the clock

    a.clock = advancing
    await a.keep()
    assert 7 <= ticks <= 20, "it gave up at the renew deadline, not before and not never"


async def test_a_clean_stop_gives_the_lease_up(lease: FakeLease) -> None:
    clock = Clock()
    a, b = elector("a", clock), elector("b", clock)
    await a.acquire()
    await a.release()
    assert lease.record is not None
    assert lease.record.holder is None
    assert await b._try() == "b", "no need to wait out the Lease"


@pytest.fixture
def shard_leases(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeLease]:
    """One FakeLease per name, as the shards' Leases are."""
    by_name: collections.defaultdict[str, FakeLease] = collections.defaultdict(FakeLease)

    async def read(client: object, ns: str, name: str) -> leases.Record | None:
        return await by_name[name].read(client, ns, name)

    async def write(
        client: object, ns: str, name: str, record: leases.Record, *, previous: object
    ) -> leases.Record:
        return await by_name[name].write(client, ns, name, record, previous=previous)

    monkeypatch.setattr(leases, "read", read)
    monkeypatch.setattr(leases, "write", write)
    return by_name


def shard_electors(identity: str, clock: Clock, count: int) -> list[leadership.Elector]:
    return [
        dataclasses.replace(elector(identity, clock), name=shard.lease_name("korder-operator"))
        for shard in sharding.shards(count)
    ]


async def test_replicas_spread_over_the_shards_one_lease_each(
    shard_leases: dict[str, FakeLease],
) -> None:
    clock = Clock()
    taken = [
        (await leadership.acquire_any(shard_electors(who, clock, 3), 0.001)).name
        for who in ("a", "b", "c")
    ]
    assert taken == [
        "korder-operator-shard-0-of-3",
        "korder-operator-shard-1-of-3",
        "korder-operator-shard-2-of-3",
    ]
    holders = {name: lease.record.holder for name, lease in shard_leases.items() if lease.record}
    assert holders == dict(zip(taken, ["a", "b", "c"], strict=True)), "one Lease each"


async def test_a_spare_takes_the_dead_shards_lease_once_it_ran_out(
    shard_leases: dict[str, FakeLease],
) -> None:
    clock = Clock()
    for who in ("a", "b"):
        await leadership.acquire_any(shard_electors(who, clock, 2), 0.001)
    spare = shard_electors("spare", clock, 2)
    assert [await e.attempt() for e in spare] == [False, False], "both shards are held"
    await shard_electors("a", clock, 2)[0].attempt()  # a renews shard 0; b has died
    clock.now += 10.1
    assert [await e.attempt() for e in spare] == [False, True], "b's shard, after its Lease"
    assert shard_leases["korder-operator-shard-1-of-2"].record is not None
    assert shard_leases["korder-operator-shard-1-of-2"].record.holder == "spare"


async def test_a_replica_is_ready_while_the_api_server_answers_its_looks(
    lease: FakeLease,
) -> None:
    clock = Clock()
    a, b = elector("a", clock), elector("b", clock)
    assert not a.answering()  # no look yet
    await a.acquire()
    assert await b._try() == "a"
    assert a.answering()
    assert b.answering()  # a standby that reads the Lease could take over: ready too
    lease.failing = True
    assert await b._try() is None
    clock.now += 9.9
    assert b.answering()
    clock.now += 0.2  # no answer for the Lease's duration
    assert not b.answering()
