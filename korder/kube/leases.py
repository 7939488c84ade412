"""Reading and writing the operator's coordination.k8s.io Lease.

Called by :mod:`korder.operator.leadership`, which decides; this module only
speaks to the API server, in the Kubernetes layer's terms: every failure is one
of :mod:`korder.kube.orders`' exceptions, and every update is guarded by the
resourceVersion it was read at, so of two replicas racing for the Lease exactly
one wins.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from lightkube import AsyncClient
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

from korder.kube.orders import NotFound, translated


@dataclass(frozen=True)
class Record:
    """What a Lease says: who holds it, since when, renewed when, for how long."""

    holder: str | None
    acquired: datetime | None
    renewed: datetime | None
    seconds: int
    transitions: int
    resource_version: str


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
