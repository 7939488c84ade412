"""FastAPI dependencies, as ``Annotated`` aliases the routes take as parameters.

Every dependency is ``async def``, even where it awaits nothing: FastAPI runs a plain
``def`` dependency in its thread pool, and that hand-off (a thread wakes, the loop
waits for it) cost more than the façade's validation of the body, a third of its CPU
for a POST /orders, measured with py-spy (``make profile``).

The headers the writes share (Idempotency-Key, Prefer, If-Match) are parsed here
once, so every route documents and validates them the same way. So is who may do
what: each route takes the :class:`Tenant` alias of its verb (``Creating``,
``Reading``...), which authenticates the caller, finds the namespace (the path's
``/namespaces/{namespace}``, or the façade's default) and asks Kubernetes whether
the caller may (:mod:`korder.api.access`) before the route reads a byte of an order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPBearer
from lightkube import AsyncClient

from korder import logs
from korder.api import access, idempotency, waiting
from korder.api.problems import Problem
from korder.settings import Settings, get_settings


async def _kube(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.kube
    return client


Kube = Annotated[AsyncClient, Depends(_kube)]


async def _waits(request: Request) -> waiting.Waits:
    waits: waiting.Waits = request.app.state.waits
    return waits


Waits = Annotated[waiting.Waits, Depends(_waits)]


async def _settings() -> Settings:
    return get_settings()


AppSettings = Annotated[Settings, Depends(_settings)]


async def _idempotency_key(
    settings: AppSettings,
    raw: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="Makes the write safe to retry: the same key and request replay the "
            "first outcome. 1 to 255 printable ASCII characters.",
        ),
    ] = None,
) -> str | None:
    return idempotency.parse_key(raw, required=settings.idempotency_key_required)


IdempotencyKey = Annotated[str | None, Depends(_idempotency_key)]


async def _wait(
    settings: AppSettings,
    prefer: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description="'wait=N': wait up to N seconds for the saga's outcome before answering.",
        ),
    ] = None,
) -> int | None:
    return waiting.requested_wait(prefer, settings.max_wait_seconds)


Wait = Annotated[int | None, Depends(_wait)]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="Only change the order if its ETag is still this one (412 otherwise).",
    ),
]

# A Kubernetes object name (DNS-1123 subdomain). Anything else cannot be an order, so it
# is a 404 here rather than a path the facade would hand to the API server.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


async def _order_id(order_id: Annotated[str, Path(description="The order's id.")]) -> str:
    if not _NAME.match(order_id) or ".." in order_id:
        raise Problem(404, "order-not-found", "Order not found", f"There is no order {order_id!r}.")
    return order_id


OrderId = Annotated[str, Depends(_order_id)]

# A namespace name (DNS-1123 label): anything else cannot hold an order.
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


async def namespace_in_path(
    namespace: Annotated[
        str, Path(description="The namespace (tenant) of the orders.", max_length=63)
    ],
) -> str:
    """The ``{namespace}`` of ``/namespaces/{namespace}/orders``; 404 when it cannot be one.

    The routes under that prefix take it as a router dependency (so it is documented
    and checked); :func:`_tenant` reads it from the path.
    """
    if not _NAMESPACE.match(namespace):
        raise Problem(
            404,
            "namespace-not-found",
            "Namespace not found",
            f"There is no namespace {namespace!r}.",
        )
    return namespace


# Documents the bearer token in OpenAPI (security scheme "HTTPBearer"); the header
# itself is parsed by access.bearer_token, whose 401 says what is wrong with it.
_BEARER = HTTPBearer(
    auto_error=False,
    description="A Kubernetes bearer token the API server accepts: "
    "`kubectl create token <service-account>`, or an OIDC token of the cluster.",
)


@dataclass(frozen=True)
class Tenant:
    """Who is asking, and in which namespace: what a route acts as and where.

    ``namespace`` is None for a list across every namespace.
    """

    caller: access.Caller
    namespace: str | None


async def admit(
    request: Request, token: str | None, verb: str, namespace: str | None
) -> access.Caller:
    """The caller who holds ``token``, once Kubernetes lets them ``verb`` orders in
    ``namespace`` (None: every namespace); 401 or 403 otherwise. The REST routes' token
    comes from the Authorization header, the console's also from its cookie."""
    gate: access.Gate = request.app.state.gate
    caller = await gate.caller(token)
    logs.bind(user=caller.name)  # the access line says who asked; never the token
    await gate.require(caller, verb, namespace)
    return caller


def _allowed(verb: str, *, across: bool = False) -> Any:
    """The dependency of a route that does ``verb`` on orders: a :class:`Tenant`, or 401/403.

    ``across`` lets the request ask for every namespace (``allNamespaces=true``), which
    needs ``verb`` at the cluster scope.
    """

    async def tenant(
        request: Request,
        settings: AppSettings,
        _: Annotated[object, Depends(_BEARER)],
    ) -> Tenant:
        namespace: str | None = request.path_params.get("namespace") or settings.namespace
        if across and request.query_params.get("allNamespaces") in ("true", "1"):
            namespace = None
        token = access.bearer_token(request.headers.get("authorization"))
        return Tenant(await admit(request, token, verb, namespace), namespace)

    return Depends(tenant)


Creating = Annotated[Tenant, _allowed("create")]
Reading = Annotated[Tenant, _allowed("get")]
Listing = Annotated[Tenant, _allowed("list", across=True)]
Updating = Annotated[Tenant, _allowed("update")]
Patching = Annotated[Tenant, _allowed("patch")]
Deleting = Annotated[Tenant, _allowed("delete")]


@dataclass(frozen=True)
class WriteContext:
    """What every write route needs besides its own body: the client and the headers."""

    kube: AsyncClient
    settings: Settings
    key: str | None
    wait: int | None
    if_match: str | None
    waits: waiting.Waits


async def _write(
    kube: Kube,
    settings: AppSettings,
    key: IdempotencyKey,
    wait: Wait,
    waits: Waits,
    if_match: IfMatch = None,
) -> WriteContext:
    return WriteContext(kube, settings, key, wait, if_match, waits)


Write = Annotated[WriteContext, Depends(_write)]
