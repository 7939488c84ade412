"""Operator shards: every order is handled by the one shard that owns its UID, also
while a shard's replica dies and a spare takes its range over.

Three replicas share two shards (``KORDER_OPERATOR_SHARDS=2``): two act, one is the
spare. The replica of shard 0 is killed while its orders are mid-charge, the spare
takes the range over, and the killed one comes back as the new spare; orders are
created before, during and after.

Who handled an order is checked three ways, each of which fails if a shard acted
outside its range (the API server ignoring the selector, a wrong hash, a range
handed to two replicas):

- every log line of a sharded replica says its shard, and every line that names an
  order (ours and Kopf's own, one per handled event) must name the owner's shard;
- each Order's ``managedFields`` name the shards that wrote its status (a field
  manager per shard): exactly the owner;
- the participants' ledgers: one reservation and one charge per order.

On a control plane of its own (the suite's operator would act beside these).
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from korder.localcluster import processes, system
from korder.operator import sharding
from tests.e2e.conftest import LEASE, Component, Kubectl, Participants, start_operator
from tests.support.orders import orders_yaml
from tests.support.waiting import wait_for

SHARDS = 2
OPERATOR = "korder-operator"


@pytest.fixture
def replicas(
    own_cluster: system.Cluster, participants: Participants, tmp_path: Path
) -> Iterator[dict[str, Component]]:
    """Three replicas for two shards, once two of them act."""
    started = {
        identity: start_operator(
            own_cluster.kubeconfig,
            participants,
            tmp_path / f"operator-{identity}.log",
            KORDER_OPERATOR_IDENTITY=identity,
            KORDER_OPERATOR_SHARDS=str(SHARDS),
            KORDER_RETRY_CAP_SECONDS="1",
            KORDER_PARTICIPANT_TIMEOUT_SECONDS="30",
            **LEASE,
        )
        for identity in ("a", "b", "c")
    }
    wait_for(
        lambda: sorted(filter(None, holdings(started).values())) == ["0/2", "1/2"],
        timeout=30,
        what="two replicas to hold the two shards",
    )
    yield started
    processes.stop([c.proc for c in started.values()])


def shard_of(replica: Component) -> str | None:
    """The shard a replica acts on (``i/N``), None while it waits or is gone."""
    if replica.proc.poll() is not None:
        return None
    try:
        answer = httpx.get(replica.health_url, timeout=2.0).json()
    except httpx.HTTPError:
        return None
    return answer["shard"] if answer["leader"] else None


def holdings(replicas: dict[str, Component]) -> dict[str, str | None]:
    return {name: shard_of(replica) for name, replica in replicas.items()}


def handled(replicas: dict[str, Component]) -> dict[str, set[str]]:
    """Every order UID any replica's log names, with the shards that logged it."""
    shards: dict[str, set[str]] = collections.defaultdict(set)
    for replica in replicas.values():
        for line in replica.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            uid = entry.get("uid") or (entry.get("object") or {}).get("uid")
            if uid:
                shards[uid].add(entry.get("shard", "none"))
    return shards


def status_writers(order: dict[str, Any]) -> set[str]:
    managers = [
        field["manager"]
        for field in order["metadata"].get("managedFields", [])
        if field.get("subresource") == "status"
    ]
    return {shard.label for shard in sharding.writers(managers, OPERATOR)}


def apply_orders(kubectl: Kubectl, namespace: str, prefix: str, count: int) -> None:
    kubectl("apply", "-f", "-", stdin=orders_yaml(prefix, count, namespace))


def test_each_order_is_handled_by_its_own_shard_also_while_one_is_taken_over(
    own_cluster: system.Cluster,
    replicas: dict[str, Component],
    participants: Participants,
) -> None:
    kubectl = Kubectl(own_cluster)
    namespace = f"shards-{time.monotonic_ns() % 10**8}"
    kubectl("create", "namespace", namespace)

    def orders() -> list[dict[str, Any]]:
        got = kubectl.json("get", "orders", "-n", namespace, "--show-managed-fields")
        items: list[dict[str, Any]] = got["items"]
        return items

    # The charges are made but their answers held: every order is mid-step when the
    # replica of shard 0 dies, so its successor must finish what it started.
    participants.faults("payment", holdResponses=True)
    try:
        apply_orders(kubectl, namespace, "before", 30)
        wait_for(
            lambda: (
                [o.get("status", {}).get("phase") for o in orders()].count("ProcessingPayment")
                == 30
            ),
            timeout=60,
            what="every order to be charging",
        )
        victim = next(name for name, shard in holdings(replicas).items() if shard == "0/2")
        replicas[victim].kill()
        killed = time.monotonic()
        participants.faults("payment", holdResponses=False)
        # Orders created while shard 0 has nobody: they wait for the spare.
        apply_orders(kubectl, namespace, "during", 30)
        wait_for(
            lambda: sorted(filter(None, holdings(replicas).values())) == ["0/2", "1/2"],
            timeout=30,
            what="the spare to take shard 0 over",
        )
        takeover = time.monotonic() - killed
    finally:
        participants.faults("payment", holdResponses=False)
    print(f"takeover: shard 0 acted on again {takeover:.1f}s after its replica was killed")
    # The Lease's 4 s, then one look of the spare (0.5 s), with the machine's noise.
    assert takeover < 4 + 0.5 + 5

    # The killed replica comes back (as its pod would) and is the spare now.
    replicas[victim].restart()
    time.sleep(2)  # four looks at the Leases
    assert holdings(replicas)[victim] is None, "both shards are held: it waits"

    apply_orders(kubectl, namespace, "after", 30)
    wait_for(
        lambda: all(o.get("status", {}).get("phase") == "Confirmed" for o in orders()),
        timeout=120,
        what="every order to be Confirmed",
    )

    logged = handled(replicas)
    owners: collections.Counter[str] = collections.Counter()
    for order in orders():
        name, uid = order["metadata"]["name"], order["metadata"]["uid"]
        owner = sharding.owner(uid, SHARDS).label
        owners[owner] += 1
        assert logged.get(uid) == {owner}, f"{name} was handled by {logged.get(uid)}, not {owner}"
        assert status_writers(order) == {owner}, f"{name}'s status writers"
        assert participants.effects("inventory", uid) == {"reserve": 1}, name
        assert participants.effects("payment", uid) == {"charge": 1}, name
    assert set(owners) == {"0/2", "1/2"}, f"both shards had orders: {owners}"
