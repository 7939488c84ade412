"""Async access to Order resources (and their Events) through the Kubernetes API.

A thin layer over lightkube's async client (httpx underneath, so the facade's
event loop never blocks): it speaks in Order manifests as plain dicts and turns
the API server's and the transport's failures into the few exceptions below, so
its callers (the facade's routes) never see lightkube's or httpx's types.

Paging: lightkube's ``AsyncClient.list`` follows ``continue`` tokens itself and
hides them, but the REST API hands one page and its token to the client. So
:func:`list_page` builds the request with lightkube's lower-level request API
(``prepare_request``/``build_adapter_request``/``send`` of the generic client
behind ``AsyncClient``) and reads ``metadata.continue`` from the raw answer. The
same helper lists Events, as plain dicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.resources.core_v1 import Event
from lightkube.types import PatchType

from korder import constants
from korder.domain.order import OrderSpec

Order: type[GenericNamespacedResource] = create_namespaced_resource(
    constants.GROUP, constants.VERSION, constants.KIND, constants.PLURAL
)


class KubeError(Exception):
    """The API server refused or could not answer a request."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(KubeError):
    """The object does not exist."""


class AlreadyExists(KubeError):
    """An object of that name exists already."""


class Conflict(KubeError):
    """The object changed since it was read (its resourceVersion no longer matches)."""


class Invalid(KubeError):
    """The API server's schema or CEL rules refused the object; ``details`` say why."""


class Unavailable(KubeError):
    """The API server is unreachable, overloaded or failing: worth retrying later."""


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        raise _from_api_error(exc) from exc
    except httpx2.HTTPError as exc:  # connection refused, timeouts, broken streams
        raise Unavailable(f"the Kubernetes API server is unreachable: {exc!r}") from exc
    except OSError as exc:
        raise Unavailable(f"the Kubernetes API server is unreachable: {exc!r}") from exc


def _from_api_error(exc: ApiError) -> KubeError:
    status = exc.status
    code, message = status.code or 0, status.message or str(exc)
    causes = [
        f"{c.field}: {c.message}" if c.field else str(c.message)
        for c in ((status.details.causes or []) if status.details else [])
    ]
    if code == 404:
        return NotFound(message)
    if code == 409 and status.reason == "AlreadyExists":
        return AlreadyExists(message)
    if code == 409:
        return Conflict(message)
    if code == 422:
        return Invalid(message, causes)
    if code == 429 or code >= 500:
        return Unavailable(message)
    # 400, 403 and the like are the facade's own mistakes (or its RBAC's), not the client's.
    return KubeError(f"{code} {status.reason}: {message}", causes)


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
    with _translated():
        created = await client.create(Order(body))  # type: ignore[call-overload]
    return _as_dict(created)


async def get(client: AsyncClient, name: str) -> dict[str, Any]:
    with _translated():
        return _as_dict(await client.get(Order, name))


async def patch(client: AsyncClient, name: str, merge_patch: dict[str, Any]) -> dict[str, Any]:
    """Apply a JSON merge patch (RFC 7386) to the Order and return it as it is after.

    A ``metadata.resourceVersion`` in the patch makes it conditional: the API server
    refuses it with :class:`Conflict` when the order changed since that version.
    """
    with _translated():
        patched = await client.patch(Order, name, merge_patch, patch_type=PatchType.MERGE)
    return _as_dict(patched)


@dataclass(frozen=True)
class Page:
    """One page of a list: the objects and the token for the next page, if any."""

    items: list[dict[str, Any]]
    continue_token: str | None


async def list_page(
    client: AsyncClient,
    *,
    limit: int,
    continue_token: str | None = None,
    field_selector: dict[str, str] | None = None,
) -> Page:
    """One page of Orders in the client's namespace, in the API server's (name) order.

    An expired or foreign ``continue_token`` is :class:`Invalid` (the API server says 410
    or 400 for it), so the caller can tell the client to start over.
    """
    params = {
        "limit": limit,
        "continue": continue_token,
        "fieldSelector": _selector(field_selector),
    }
    try:
        body = await _list_raw(client, Order, params)
    except KubeError as exc:
        if continue_token and not isinstance(exc, Unavailable | NotFound):
            raise Invalid(f"the continue token is not valid (any more): {exc.message}") from exc
        raise
    return Page(body.get("items") or [], (body.get("metadata") or {}).get("continue") or None)


async def events_of(client: AsyncClient, uid: str) -> list[dict[str, Any]]:
    """The Kubernetes Events whose involvedObject is the object with ``uid``, as dicts."""
    body = await _list_raw(client, Event, {"fieldSelector": _selector({"involvedObject.uid": uid})})
    return list(body.get("items") or [])


def _selector(fields: dict[str, str] | None) -> str | None:
    if not fields:
        return None
    return ",".join(f"{key}={value}" for key, value in fields.items())


async def _list_raw(client: AsyncClient, res: type[Any], params: dict[str, Any]) -> dict[str, Any]:
    generic = client._client  # the lower-level request API; see the module's docstring
    with _translated():
        request = generic.build_adapter_request(generic.prepare_request("list", res, params=params))
        response = await generic.send(request)  # type: ignore[no-untyped-call]
        generic.raise_for_status(response)  # type: ignore[no-untyped-call]
        body: dict[str, Any] = json.loads(response.content)
    return body


async def watch(
    client: AsyncClient, name: str, resource_version: str, seconds: float
) -> AsyncIterator[dict[str, Any]]:
    """The Order ``name`` each time it changes after ``resource_version``, for ``seconds``.

    Ends quietly when the time is up or the order is deleted. The API server closes a
    watch after ``timeoutSeconds``; lightkube would reconnect, our deadline stops it.
    """
    events = client.watch(
        Order,
        fields={"metadata.name": name},
        resource_version=resource_version,
        server_timeout=max(1, int(seconds) + 1),
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    iterator = aiter(events)
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                kind, obj = await asyncio.wait_for(_next_event(iterator), remaining)
            except (TimeoutError, StopAsyncIteration):
                return
            if kind == "DELETED":
                return
            yield _as_dict(obj)
    finally:
        close: Callable[[], Any] | None = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def _next_event(iterator: AsyncIterator[tuple[str, Any]]) -> tuple[str, Any]:
    # Translated here, inside the deadline: the deadline's own TimeoutError is an
    # OSError, and must not read as an unreachable API server.
    with _translated():
        return await anext(iterator)


def _as_dict(resource: GenericNamespacedResource) -> dict[str, Any]:
    body: dict[str, Any] = resource.to_dict()  # type: ignore[no-untyped-call]
    return body


async def probe(client: AsyncClient) -> None:
    """Raise :class:`Unavailable` unless the API server answers a list of Orders."""
    await list_page(client, limit=1)
