"""Reading and writing the operator's coordination.k8s.io Lease.

Called by :mod:`korder.operator.leadership`, which decides; this module only
speaks to the API server, in the Kubernetes layer's terms: every failure is one
of :mod:`korder.kube.orders`' exceptions, and every update is guarded by the
resourceVersion it was read at, so of two replicas racing for the Lease exactly
one wins.

The Lease also carries what the holder wants others to see without a store of
its own: the annotation :data:`BREAKERS_ANNOTATION`, its circuit breakers' states
(written by the leader in its own guarded Lease writes, so it never races a
renewal). :func:`breaker_states` reads them for ``kubectl korder top`` and the console.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from lightkube import AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from korder import constants
from korder.kube.orders import NotFound, translated

#: The holder's circuit breakers: a JSON object, participant -> closed | open | half-open.
BREAKERS_ANNOTATION: Final = f"{constants.GROUP}/breakers"
BREAKER_STATES: Final = ("closed", "half-open", "open")  # from best to worst


@dataclass(frozen=True)
class Record:
    """What a Lease says: who holds it, since when, renewed when, for how long."""

    holder: str | None
    acquired: datetime | None
    renewed: datetime | None
    seconds: int
    transitions: int
    resource_version: str
    annotations: Mapping[str, str] = field(default_factory=dict)


async def read(client: AsyncClient, namespace: str, name: str) -> Record | None:
    """The Lease as it is now, or None if there is none yet."""
    try:
        with translated():
            lease = await client.get(Lease, name, namespace=namespace)
    except NotFound:
        return None
    spec = lease.spec or LeaseSpec()
    return Record(
        holder=spec.holderIdentity or None,
        acquired=spec.acquireTime,
        renewed=spec.renewTime,
        seconds=spec.leaseDurationSeconds or 0,
        transitions=spec.leaseTransitions or 0,
        resource_version=(lease.metadata.resourceVersion if lease.metadata else None) or "",
        annotations=dict((lease.metadata.annotations if lease.metadata else None) or {}),
    )


async def write(
    client: AsyncClient,
    namespace: str,
    name: str,
    record: Record,
    *,
    previous: Record | None,
) -> Record:
    """Create the Lease (``previous`` None) or replace the one read as ``previous``.

    Raises :class:`~korder.kube.orders.AlreadyExists` or
    :class:`~korder.kube.orders.Conflict` when another replica wrote first.
    """
    lease = Lease(
        metadata=ObjectMeta(
            name=name,
            namespace=namespace,
            resourceVersion=previous.resource_version if previous else None,
            annotations=dict(record.annotations) or None,
        ),
        spec=LeaseSpec(
            holderIdentity=record.holder,
            acquireTime=record.acquired,
            renewTime=record.renewed,
            leaseDurationSeconds=record.seconds,
            leaseTransitions=record.transitions,
        ),
    )
    with translated():
        if previous is None:
            stored = await client.create(lease)
        else:
            stored = await client.replace(lease)
    version = (stored.metadata.resourceVersion if stored.metadata else None) or ""
    return dataclasses.replace(record, resource_version=version)


async def breaker_states(client: AsyncClient, namespace: str, name: str) -> dict[str, str]:
    """The breakers the operator published on its Lease ``name`` (and its shards' Leases).

    Participant -> ``closed``, ``half-open`` or ``open``; {} when no replica holds a
    Lease that says (none runs, or one runs without leader election). With shards,
    each replica has breakers of its own: a participant shows the worst of them.
    """
    with translated():
        found = [lease async for lease in client.list(Lease, namespace=namespace)]
    merged: dict[str, str] = {}
    for lease in found:
        meta = lease.metadata
        lease_name = (meta.name if meta else None) or ""
        if lease_name != name and not lease_name.startswith(f"{name}-shard-"):
            continue
        if lease.spec is None or not lease.spec.holderIdentity:
            continue  # given up: what it says is no one's view now
        for participant, state in _parse((meta.annotations if meta else None) or {}).items():
            before = merged.get(participant, BREAKER_STATES[0])
            merged[participant] = max(before, state, key=BREAKER_STATES.index)
    return dict(sorted(merged.items()))


def _parse(annotations: Mapping[str, str]) -> dict[str, str]:
    try:
        raw = json.loads(annotations.get(BREAKERS_ANNOTATION) or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if v in BREAKER_STATES}
