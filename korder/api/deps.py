"""FastAPI dependencies, as ``Annotated`` aliases the routes take as parameters.

The headers the writes share (Idempotency-Key, Prefer, If-Match) are parsed here
once, so every route documents and validates them the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from lightkube import AsyncClient

from korder.api import idempotency, waiting
from korder.api.problems import Problem
from korder.settings import Settings, get_settings


def _kube(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.kube
    return client


Kube = Annotated[AsyncClient, Depends(_kube)]


def _waits(request: Request) -> waiting.Waits:
    waits: waiting.Waits = request.app.state.waits
    return waits


Waits = Annotated[waiting.Waits, Depends(_waits)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _idempotency_key(
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


def _wait(
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


def _order_id(order_id: Annotated[str, Path(description="The order's id.")]) -> str:
    if not _NAME.match(order_id) or ".." in order_id:
        raise Problem(404, "order-not-found", "Order not found", f"There is no order {order_id!r}.")
    return order_id


OrderId = Annotated[str, Depends(_order_id)]


@dataclass(frozen=True)
class WriteContext:
    """What every write route needs besides its own body: the client and the headers."""

    kube: AsyncClient
    settings: Settings
    key: str | None
    wait: int | None
    if_match: str | None
    waits: waiting.Waits


def _write(
    kube: Kube,
    settings: AppSettings,
    key: IdempotencyKey,
    wait: Wait,
    waits: Waits,
    if_match: IfMatch = None,
) -> WriteContext:
    return WriteContext(kube, settings, key, wait, if_match, waits)


Write = Annotated[WriteContext, Depends(_write)]
