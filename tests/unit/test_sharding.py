"""The shards' ranges (korder.operator.sharding): disjoint, covering, the API server's hash."""

from __future__ import annotations

import collections
import itertools
import uuid
from typing import cast

import kopf
import pydantic
import pytest

from korder.operator import handlers, sharding
from korder.settings import Settings


def test_the_hash_is_64_bit_fnv_1a() -> None:
    # The published FNV-1a test vectors (the API server hashes with Go's hash/fnv New64a).
    assert sharding.fnv1a_64("") == 0xCBF29CE484222325
    assert sharding.fnv1a_64("a") == 0xAF63DC4C8601EC8C
    assert sharding.fnv1a_64("foobar") == 0x85944171F73967E8


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 64])
def test_the_ranges_are_disjoint_and_cover_the_whole_space(count: int) -> None:
    ranges = [(s.start, s.end) for s in sharding.shards(count)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == sharding.SPACE
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start, "each range starts where the last one ended"
    for uid in (str(uuid.uuid4()) for _ in range(200)):
        holders = [s for s in sharding.shards(count) if s.holds(uid)]
        assert holders == [sharding.owner(uid, count)], "exactly one shard holds each UID"


def test_random_uids_spread_about_evenly() -> None:
    counts = collections.Counter(sharding.owner(str(uuid.uuid4()), 4).index for _ in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(800 <= n <= 1200 for n in counts.values()), counts


def test_the_selectors_are_the_api_servers_syntax() -> None:
    first, last = sharding.shards(2)
    assert first.selector() == (
        "shardRange(object.metadata.uid, '0x0000000000000000', '0x8000000000000000')"
    )
    # The last end is 2**64 itself, the one 17-digit value the API server accepts.
    assert last.selector() == (
        "shardRange(object.metadata.uid, '0x8000000000000000', '0x10000000000000000')"
    )


def test_one_shard_keeps_the_single_operators_names() -> None:
    alone = sharding.Shard(0, 1)
    assert not alone.sharded
    assert alone.lease_name("korder-operator") == "korder-operator"
    assert alone.field_manager("korder-operator") == "korder-operator"


def test_a_shards_field_manager_names_it() -> None:
    shard = sharding.Shard(2, 4)
    manager = shard.field_manager("korder-operator")
    assert manager == "korder-operator-shard-2-of-4"
    assert sharding.from_field_manager(manager, "korder-operator") == shard
    managers = [manager, "korder-operator", "korder-api", "kubectl-client-side-apply"]
    assert sharding.writers(managers, "korder-operator") == {shard}


def test_there_is_no_shard_outside_the_count() -> None:
    with pytest.raises(ValueError, match="no shard 4 of 4"):
        sharding.Shard(4, 4)


def test_shards_need_the_leases() -> None:
    assert Settings().operator_shards == 1, "one shard unless asked: as before"
    with pytest.raises(pydantic.ValidationError, match="needs KORDER_OPERATOR_LEADER_ELECTION"):
        Settings(operator_shards=2, operator_leader_election=False)


def test_the_handlers_skip_an_order_of_another_shards_range() -> None:
    # The guard for an API server that ignores the shard selector (no feature gate).
    uids = [str(uuid.uuid4()) for _ in range(50)]
    mine = next(u for u in uids if sharding.owner(u, 2).index == 0)
    theirs = next(u for u in uids if sharding.owner(u, 2).index == 1)

    def meta(uid: str) -> kopf.Meta:
        return kopf.Body(cast(kopf.RawBody, {"metadata": {"uid": uid}})).metadata

    first = kopf.Memo(shard=sharding.Shard(0, 2))
    assert handlers.in_this_shard(meta(mine), first)
    assert not handlers.in_this_shard(meta(theirs), first)
    alone = kopf.Memo(shard=sharding.Shard(0, 1))
    assert handlers.in_this_shard(meta(theirs), alone), "one shard: every order"
    assert handlers.in_this_shard(meta(theirs), kopf.Memo()), "no shard named: every order"
