"""The console's buttons, done by the REST API itself, in process.

Called by the console's action route (:mod:`.routes`). A press of "Process" is a
``POST /orders/{id}/process`` sent to this same application over an in-process ASGI
transport (no socket): the REST route checks the phase with the domain's rules,
records the Idempotency-Key on the order in the same write as the action and replays
a repeat, and answers a refusal with its problem document. Nothing of that is done a
second time here. The route of an action is found by its OpenAPI operation id,
``<action>Order`` (``processOrder``, ``fulfillOrder``, ``cancelOrder``), so an action
the REST API and the domain gain (a retry) is offered by the console as soon as both
have it, with no change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from korder.api import idempotency
from korder.domain.actions import Action


@dataclass(frozen=True)
class Route:
    """The REST route that does an action: its method and path template."""

    method: str
    path: str


def route_of(app: FastAPI, action: Action) -> Route | None:
    """The REST route of ``action`` (operation id ``<action>Order``), if the API has one.

    Read from the OpenAPI document, the REST API's published contract (FastAPI builds
    it once and keeps it), rather than from the router's internals.
    """
    wanted = f"{action}Order"
    for path, operations in app.openapi().get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and operation.get("operationId") == wanted:
                return Route(method.upper(), path)
    return None


@dataclass(frozen=True)
class Outcome:
    """The REST API's answer: its status code and body (the order, or a problem)."""

    status: int
    body: dict[str, Any]
    replayed: bool

    @property
    def ok(self) -> bool:
        return self.status < 400


async def perform(
    app: FastAPI,
    route: Route,
    order_id: str,
    key: str,
    body: dict[str, str] | None,
    token: str | None,
) -> Outcome:
    """Send the action to the REST route, with ``key`` as its Idempotency-Key, as the
    holder of ``token`` (the console's visitor), so the REST route decides who may."""
    headers = {idempotency.HEADER: key}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        response = await client.request(
            route.method, route.path.format(order_id=order_id), json=body, headers=headers
        )
    return Outcome(
        response.status_code,
        response.json(),
        response.headers.get(idempotency.REPLAYED_HEADER) == "true",
    )
