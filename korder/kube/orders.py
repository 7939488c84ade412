"""Async access to Order resources through the Kubernetes API.

A thin layer over lightkube's async client (httpx underneath, so the facade's
event loop never blocks): it speaks in Order manifests and domain models and
leaves HTTP concerns to its callers.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource

from korder import constants
from korder.domain.order import OrderSpec

Order: type[GenericNamespacedResource] = create_namespaced_resource(
    constants.GROUP, constants.VERSION, constants.KIND, constants.PLURAL
)


def make_client(namespace: str, field_manager: str) -> AsyncClient:
    """A client for the cluster in KUBECONFIG, or the in-cluster service account."""
    return AsyncClient(
        config=KubeConfig.from_env(), namespace=namespace, field_manager=field_manager
    )


def manifest(
    spec: OrderSpec,
    *,
    name: str | None = None,
    generate_name: str | None = None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An Order manifest for ``spec``, as the API server takes it."""
    metadata: dict[str, Any] = {}
    if name:
        metadata["name"] = name
    if generate_name:
        metadata["generateName"] = generate_name
    if annotations:
        metadata["annotations"] = annotations
    metadata["labels"] = {constants.LABEL_CUSTOMER: spec.customer.id, **(labels or {})}
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": metadata,
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


async def create(client: AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.create(Order(body))  # type: ignore[call-overload]
    return _as_dict(created)


async def get(client: AsyncClient, name: str) -> dict[str, Any]:
    return _as_dict(await client.get(Order, name))


def _as_dict(resource: GenericNamespacedResource) -> dict[str, Any]:
    body: dict[str, Any] = resource.to_dict()  # type: ignore[no-untyped-call]
    return body


async def probe(client: AsyncClient) -> None:
    """Raise unless the API server answers a list of Orders in the client's namespace."""
    async for _ in client.list(Order, chunk_size=1):
        break
