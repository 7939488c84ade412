"""The breaker states on the operator's Leases, read back as one view (korder.kube.leases)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from korder.kube import leases


def lease(name: str, states: dict[str, str] | str, holder: str | None = "op-0") -> Lease:
    raw = states if isinstance(states, str) else json.dumps(states)
    return Lease(
        metadata=ObjectMeta(name=name, annotations={leases.BREAKERS_ANNOTATION: raw}),
        spec=LeaseSpec(holderIdentity=holder),
    )


class Listing:
    def __init__(self, found: list[Lease]) -> None:
        self.found = found

    def list(self, _res: object, **_: Any) -> AsyncIterator[Lease]:
        async def each() -> AsyncIterator[Lease]:
            for item in self.found:
                yield item

        return each()


async def test_the_worst_state_of_any_shard_and_only_held_leases_of_ours() -> None:
    client = Listing(
        [
            lease("korder-operator-shard-0-of-2", {"inventory": "closed", "payment": "half-open"}),
            lease("korder-operator-shard-1-of-2", {"inventory": "open", "payment": "closed"}),
            lease("korder-operator-shard-0-of-4", {"shipping": "open"}, holder=None),
            lease("someone-else", {"shipping": "open"}),
            lease("korder-operator", "not json"),
        ]
    )
    states = await leases.breaker_states(client, "korder-system", "korder-operator")  # type: ignore[arg-type]
    assert states == {"inventory": "open", "payment": "half-open"}
