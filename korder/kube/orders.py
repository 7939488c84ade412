"""Async access to Order resources (and their Events) through the Kubernetes API.

A thin layer over lightkube's async client (httpx underneath, so the facade's
event loop never blocks). Its callers (the facade's routes, the operator) speak in
the domain's typed :class:`~korder.domain.order.Order`; JSON exists only here, at
the boundary (:func:`to_order`, :func:`manifest`). The API server's and the
transport's failures become the few exceptions below (:func:`translated`), so no
caller sees lightkube's or httpx's types.

Paging: lightkube's ``AsyncClient.list`` follows ``continue`` tokens itself and
hides them, and lightkube 1.0 has no public call that returns one page with its
token; but the REST API hands one page and its token to the client. So
:func:`_list_raw` builds the request with the lower-level request API of the
generic client behind ``AsyncClient`` (its private ``_client``:
``prepare_request``/``build_adapter_request``/``send``/``raise_for_status``) and
reads ``metadata.continue`` from the raw answer. ``tests/unit/test_kube_orders.py``
pins that private API, so a lightkube upgrade that changes it fails there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import AsyncClient, KubeConfig
from lightkube.config import client_adapter
from lightkube.core.client import FieldSelector
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import GenericNamespacedResource, create_namespaced_resource
from lightkube.resources.core_v1 import Event
from lightkube.types import PatchType
from opentelemetry import trace

from korder import constants, tracing
from korder.domain.order import Order, OrderSpec

#: lightkube's class of the Order resource (the domain's :class:`Order` is what callers see).
OrderResource: type[GenericNamespacedResource] = create_namespaced_resource(
    constants.GROUP, constants.VERSION, constants.KIND, constants.PLURAL
)


_TRACER = tracing.tracer(__name__)


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


class Refused(Unavailable):
    """The API server refused our own identity (401, 403): not the client's doing.

    Either RBAC is wrong (it lasts, and readiness fails with it) or the API server has
    just started and its authorizer has not loaded RBAC yet: kube-apiserver answers
    "clusterrole ... not found" for a few seconds after a restart, which the chaos run
    met as a 500 to clients. Both are retried later, so it is a kind of Unavailable.
    """


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Raise lightkube's and the transport's failures as this module's exceptions."""
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
    if code in (401, 403):
        return Refused(f"{code} {status.reason}: {message}")
    # 400 and the like are the caller's own mistakes (a bug of ours), not the client's.
    return KubeError(f"{code} {status.reason}: {message}", causes)


#: Connections to the API server kept open for reuse, and the most open at once. httpx
#: keeps 20 by default and closes any connection above that after its request: with
#: the operator's 200 orders in flight, most status writes paid a new TLS handshake
#: (a sixth of the operator's CPU under load in ``make profile``). A request over the
#: limit waits for a free connection (the client's pool timeout) instead.
CONNECTIONS = 64


def make_client(
    namespace: str, field_manager: str, config: KubeConfig | None = None
) -> AsyncClient:
    """A client for the cluster in KUBECONFIG (or the in-cluster service account),
    keeping up to :data:`CONNECTIONS` connections open for reuse.

    lightkube has no setting for httpx's pool, so the transport is ours, with the TLS
    context lightkube builds from the same kubeconfig (the server's CA and a client
    certificate); the token or other credentials stay lightkube's, on the client.
    """
    single = (config or KubeConfig.from_env()).get()
    if single is None or single.user is None:
        raise KubeError("the kubeconfig names no current context with a user")
    tls = client_adapter.verify_cluster(single.cluster, single.user, single.abs_file)
    transport = httpx2.AsyncHTTPTransport(
        verify=tls,
        limits=httpx2.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS),
    )
    return AsyncClient(
        config=single, namespace=namespace, field_manager=field_manager, transport=transport
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
    # The saga's finalizer from the start: the operator would add it anyway (kubectl
    # delete must wait for the compensations), and that would be one more write.
    metadata["finalizers"] = [constants.FINALIZER]
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": metadata,
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def to_order(obj: GenericNamespacedResource | Mapping[str, Any]) -> Order:
    """The domain's Order from what the API server (or Kopf) handed over."""
    if isinstance(obj, Mapping):
        return Order.model_validate(dict(obj))
    return Order.model_validate(_as_dict(obj))


async def create(
    client: AsyncClient,
    spec: OrderSpec,
    *,
    name: str | None = None,
    generate_name: str | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str | None = None,
) -> Order:
    """Create an Order (in ``namespace``, or the client's); with tracing on, one client
    span for the write, carried on the Order.

    The span's context is written as the trace annotation, so the operator's spans of
    this order are its descendants (:mod:`korder.tracing`).
    """
    with tracing.span(
        _TRACER,
        f"create {constants.KIND}",
        kind=trace.SpanKind.CLIENT,
        attributes={"k8s.namespace.name": namespace or client.namespace},
    ) as span:
        carried = tracing.context_annotation()
        if carried is not None:
            annotations = {**(annotations or {}), constants.ANNOTATION_TRACE_CONTEXT: carried}
        body = manifest(spec, name=name, generate_name=generate_name, annotations=annotations)
        if namespace:
            body["metadata"]["namespace"] = namespace
        with translated():
            created = await client.create(OrderResource(body))  # type: ignore[call-overload]
        order = to_order(created)
        span.set_attributes(
            {"korder.order.name": order.metadata.name, "korder.order.uid": order.metadata.uid}
        )
    return order


async def get(client: AsyncClient, name: str, namespace: str | None = None) -> Order:
    with translated():
        return to_order(await client.get(OrderResource, name, namespace=namespace))


async def update(
    client: AsyncClient, order: Order, spec: OrderSpec, annotations: Mapping[str, str]
) -> Order:
    """Change ``order``'s spec to ``spec`` and set ``annotations``, if it is unchanged since read.

    One JSON merge patch (RFC 7386) of the fields that differ (a field that became
    None is removed) and the annotations, guarded by the order's resourceVersion:
    the API server refuses it with :class:`Conflict` when the order changed since.
    """
    before = order.spec.model_dump(mode="json", by_alias=True)
    after = spec.model_dump(mode="json", by_alias=True)
    changed = {key: value for key, value in after.items() if before.get(key) != value}
    metadata: dict[str, Any] = {"resourceVersion": order.metadata.resource_version}
    if annotations:
        metadata["annotations"] = dict(annotations)
    merge_patch: dict[str, Any] = {"metadata": metadata}
    if changed:
        merge_patch["spec"] = changed
    with translated():
        patched = await client.patch(
            OrderResource,
            order.metadata.name,
            merge_patch,
            namespace=order.metadata.namespace,
            patch_type=PatchType.MERGE,
        )
    return to_order(patched)


@dataclass(frozen=True)
class Page:
    """One page of a list: the objects and the token for the next page, if any."""

    items: list[Order]
    continue_token: str | None


async def list_page(
    client: AsyncClient,
    *,
    limit: int,
    continue_token: str | None = None,
    field_selector: dict[str, str] | None = None,
    namespace: str | None = None,
) -> Page:
    """One page of Orders in ``namespace`` (``"*"``: every namespace; None: the client's),
    in the API server's order (by namespace, then name).

    An expired or foreign ``continue_token`` is :class:`Invalid` (the API server says 410
    or 400 for it), so the caller can tell the client to start over.
    """
    params = {
        "limit": limit,
        "continue": continue_token,
        "fieldSelector": _selector(field_selector),
    }
    try:
        body = await _list_raw(client, OrderResource, params, namespace=namespace)
    except KubeError as exc:
        if continue_token and not isinstance(exc, Unavailable | NotFound):
            raise Invalid(f"the continue token is not valid (any more): {exc.message}") from exc
        raise
    items = [to_order(item) for item in body.get("items") or []]
    return Page(items, (body.get("metadata") or {}).get("continue") or None)


@dataclass(frozen=True)
class Snapshot:
    """Every Order of the client's namespace at one resourceVersion, to watch on from."""

    items: list[Order]
    resource_version: str


async def list_all(
    client: AsyncClient,
    *,
    namespace: str | None = None,
    field_selector: dict[str, str] | None = None,
    chunk: int = 500,
) -> Snapshot:
    """Every Order in ``namespace`` (``"*"``: every namespace; None: the client's),
    ``chunk`` at a time, as one consistent list: for the console and the plugin, which
    show them all at once.

    The pages of one list share the first page's resourceVersion (a continue token
    keeps it), so the result is a snapshot that :func:`watch_all` can follow from.
    """
    items: list[Order] = []
    token: str | None = None
    selector = _selector(field_selector)
    while True:
        params = {"limit": chunk, "continue": token, "fieldSelector": selector}
        body = await _list_raw(client, OrderResource, params, namespace=namespace)
        items += [to_order(item) for item in body.get("items") or []]
        metadata = body.get("metadata") or {}
        token = metadata.get("continue") or None
        if token is None:
            return Snapshot(items, str(metadata.get("resourceVersion", "")))


@dataclass(frozen=True)
class KubeEvent:
    """A Kubernetes Event about an order: what the façade shows of it."""

    reason: str
    message: str
    type: str  # Normal or Warning
    time: str  # RFC 3339; the Event's own time, or when it was stored


async def events_of(client: AsyncClient, uid: str, namespace: str | None = None) -> list[KubeEvent]:
    """The Kubernetes Events in ``namespace`` whose involvedObject is the object with ``uid``."""
    params = {"fieldSelector": _selector({"involvedObject.uid": uid})}
    body = await _list_raw(client, Event, params, namespace=namespace)
    return [kube_event(item) for item in body.get("items") or []]


def kube_event(raw: Mapping[str, Any]) -> KubeEvent:
    """An Event as the API server lists it, reduced to what the façade shows."""
    time = (
        raw.get("eventTime")
        or raw.get("firstTimestamp")
        or raw.get("lastTimestamp")
        or (raw.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
    return KubeEvent(
        reason=str(raw.get("reason", "")),
        message=str(raw.get("message", "")),
        type=str(raw.get("type") or "Normal"),
        time=str(time),
    )


def _selector(fields: dict[str, str] | None) -> str | None:
    if not fields:
        return None
    return ",".join(f"{key}={value}" for key, value in fields.items())


async def _list_raw(
    client: AsyncClient, res: type[Any], params: dict[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    generic = client._client  # the lower-level request API; see the module's docstring
    with translated():
        prepared = generic.prepare_request("list", res, namespace=namespace, params=params)
        request = generic.build_adapter_request(prepared)
        response = await generic.send(request)  # type: ignore[no-untyped-call]
        generic.raise_for_status(response)  # type: ignore[no-untyped-call]
        body: dict[str, Any] = json.loads(response.content)
    return body


async def watch(
    client: AsyncClient,
    name: str,
    resource_version: str,
    seconds: float,
    namespace: str | None = None,
) -> AsyncIterator[Order]:
    """The Order ``name`` (in ``namespace``, or the client's) each time it changes after
    ``resource_version``, for ``seconds``.

    Ends quietly when the time is up or the order is deleted.
    """
    fields: FieldSelector = {"metadata.name": name}
    async for kind, order in _watch(client, fields, resource_version, seconds, namespace):
        if kind == "DELETED":
            return
        yield order


async def watch_all(
    client: AsyncClient, resource_version: str, seconds: float, namespace: str | None = None
) -> AsyncIterator[tuple[str, Order]]:
    """Each change to an Order of ``namespace`` (None: the client's) after
    ``resource_version``, for ``seconds``: (``ADDED``, ``MODIFIED`` or ``DELETED``, the
    order). Ends quietly when the time is up; a resourceVersion too old to watch from
    raises :class:`KubeError`."""
    async for change in _watch(client, None, resource_version, seconds, namespace):
        yield change


async def _watch(
    client: AsyncClient,
    fields: FieldSelector | None,
    resource_version: str,
    seconds: float,
    namespace: str | None = None,
) -> AsyncIterator[tuple[str, Order]]:
    # The API server closes a watch after timeoutSeconds; lightkube would reconnect, our
    # deadline stops it.
    events = client.watch(
        OrderResource,
        namespace=namespace,
        fields=fields,
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
            yield kind, to_order(obj)
    finally:
        close: Callable[[], Any] | None = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def _next_event(iterator: AsyncIterator[tuple[str, Any]]) -> tuple[str, Any]:
    # Translated here, inside the deadline: the deadline's own TimeoutError is an
    # OSError, and must not read as an unreachable API server.
    with translated():
        return await anext(iterator)


def _as_dict(resource: GenericNamespacedResource) -> dict[str, Any]:
    body: dict[str, Any] = resource.to_dict()  # type: ignore[no-untyped-call]
    return body


async def probe(client: AsyncClient) -> None:
    """Raise :class:`Unavailable` unless the API server answers a list of Orders."""
    await list_page(client, limit=1)
