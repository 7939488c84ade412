"""``/console``: the web console's pages, their live streams and its buttons.

Mounted by :func:`korder.api.console.install` (from :func:`korder.api.main.create_app`).
Every page is whole HTML that works without JavaScript (read, filter, page, press a
button as a form); with JavaScript, ``static/console.js`` keeps the live part current
from the page's stream (:mod:`.streams`). The console reads Orders and Events through
:mod:`korder.kube.orders`, as the REST routes do, and does its actions through the
REST routes themselves (:mod:`.acting`). None of these routes is in the OpenAPI
document: that describes the REST API.

Each route takes the :mod:`.login` alias of what it reads (``Listing``, ``Reading``,
``Watching``): the visitor's token, from the console's cookie, is checked as a REST
caller's is, and without one (or without the rights) the answer is the login page. A
button's REST call carries the same token, so the REST route decides it.

A form posts ``application/x-www-form-urlencoded``; it is read with the standard
library's ``parse_qs`` rather than FastAPI's ``Form``, which would need python-multipart
for two fields. A post from another site (its ``Origin`` not this host) is refused, so
a page elsewhere cannot press the console's buttons in a visitor's browser.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from lightkube import AsyncClient

from korder.api.console import acting, login, rendering, streams, views
from korder.api.console.login import HEADERS, Listing, Reading, Visitor, Watching, base
from korder.api.deps import AppSettings, Kube, OrderId
from korder.api.history import merge
from korder.api.problems import Problem
from korder.domain.actions import Action
from korder.domain.order import Customer, Order, Phase
from korder.kube import leases, orders
from korder.settings import Settings

logger = logging.getLogger(__name__)


router = APIRouter(prefix="/console", include_in_schema=False)

_CUSTOMER = re.compile(Customer.model_json_schema()["properties"]["id"]["pattern"])
_STREAM_HEADERS = {**HEADERS, "X-Accel-Buffering": "no"}


def _filters(phase: str, customer: str, page: int) -> views.Filters:
    """The list's query, where an empty field (a form's "all") means no filter."""
    if phase and phase not in set(Phase):
        raise Problem(
            422,
            "validation",
            "Invalid request",
            f"The request is not valid: phase: {phase!r} is not a phase; "
            f"use one of {', '.join(Phase)}.",
            errors=[{"field": "query.phase", "message": "not a phase"}],
        )
    if customer and (len(customer) > 63 or not _CUSTOMER.match(customer)):
        raise Problem(
            422,
            "validation",
            "Invalid request",
            "The request is not valid: customer: a customer id is 1 to 63 letters, digits, "
            "'-', '_' or '.'.",
            errors=[{"field": "query.customer", "message": "not a customer id"}],
        )
    return views.Filters(Phase(phase) if phase else None, customer or None, page)


PhaseQuery = Annotated[str, Query(max_length=40, description="Only orders in this phase.")]
CustomerQuery = Annotated[str, Query(max_length=200, description="Only this customer's orders.")]
PageQuery = Annotated[int, Query(ge=1, le=100_000, description="The page, from 1.")]


async def _breakers(kube: AsyncClient, settings: Settings) -> Mapping[str, str] | None:
    """The participants' breaker states as the acting operator replicas publish them on
    their Leases; None when none does (no leader election) or the Lease cannot be read
    (the façade's RBAC, or the API server), which the page shows as "not known"."""
    try:
        states = await leases.breaker_states(
            kube, settings.operator_lease_namespace, settings.operator_lease_name
        )
    except orders.KubeError as exc:
        logger.debug("breaker states not readable: %s", exc.message)
        return None
    return states or None


async def _board_html(
    state: views.Board,
    filters: views.Filters,
    settings: Settings,
    kube: AsyncClient,
    request: Request,
) -> str:
    page = state.page(filters, settings.page_size, datetime.now(UTC))
    page = replace(page, breakers=await _breakers(kube, settings))
    return rendering.render("_board.html", {"page": page, "base": base(request)})


@router.get("", response_class=HTMLResponse, response_model=None)
async def orders_page(
    request: Request,
    visitor: Listing,
    kube: Kube,
    settings: AppSettings,
    phase: PhaseQuery = "",
    customer: CustomerQuery = "",
    page: PageQuery = 1,
) -> HTMLResponse:
    """The orders by phase: filters, totals, the saga's pace and a page of orders."""
    filters = _filters(phase, customer, page)
    snapshot = await orders.list_all(kube)
    board = await _board_html(views.Board.of(snapshot.items), filters, settings, kube, request)
    html = rendering.render(
        "orders.html",
        {
            "base": base(request),
            "user": visitor.caller.name,
            "filters": filters,
            "board": board,
            "stream": f"{base(request)}/stream{filters.query()}",
        },
    )
    return HTMLResponse(html, headers=HEADERS)


@router.get("/stream", response_model=None)
async def orders_stream(
    request: Request,
    _: Watching,
    kube: Kube,
    settings: AppSettings,
    phase: PhaseQuery = "",
    customer: CustomerQuery = "",
    page: PageQuery = 1,
) -> StreamingResponse:
    """The orders page's live part, as server-sent events."""
    filters = _filters(phase, customer, page)

    async def render(state: views.Board) -> str:
        return await _board_html(state, filters, settings, kube, request)

    chunks = streams.board(kube, settings.console_stream_seconds, render)
    return _streaming(chunks)


def _streaming(chunks: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(chunks, media_type=streams.MEDIA_TYPE, headers=_STREAM_HEADERS)


async def _read(kube: AsyncClient, order_id: str) -> Order:
    try:
        return await orders.get(kube, order_id)
    except orders.NotFound as exc:
        raise Problem(
            404, "order-not-found", "Order not found", f"There is no order {order_id!r}."
        ) from exc


async def _order_html(kube: AsyncClient, order: Order, request: Request) -> str:
    events = await orders.events_of(kube, order.metadata.uid)
    moments = views.timeline(merge(order, events))
    available = [a for a in views.actions(order) if acting.route_of(request.app, a)]
    return rendering.render(
        "_order.html",
        {
            "base": base(request),
            "order": order,
            "phase": views.Row.of(order).phase,
            "lines": views.lines(order),
            "steps": views.step_states(order),
            "moments": moments,
            "events": sorted(events, key=lambda e: e.time),
            "saga_seconds": views.total_seconds(moments),
            "actions": available,
            "key": f"console-{uuid.uuid4()}",
        },
    )


def _order_page(
    request: Request,
    visitor: Visitor,
    order: Order,
    live: str,
    notice: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    html = rendering.render(
        "order.html",
        {
            "base": base(request),
            "user": visitor.caller.name,
            "order": order,
            "live": live,
            "notice": notice,
            "stream": f"{base(request)}/orders/{order.metadata.name}/stream",
        },
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


_DONE_NOTICES = {
    "process": "Processing was requested.",
    "fulfill": "Fulfilment was requested.",
    "cancel": "Cancellation was requested.",
}


@router.get("/orders/{order_id}", response_class=HTMLResponse, response_model=None)
async def order_page(
    request: Request,
    visitor: Reading,
    order_id: OrderId,
    kube: Kube,
    done: Annotated[str, Query(max_length=40)] = "",
    replayed: Annotated[bool, Query()] = False,
) -> HTMLResponse:
    """An order: its items, the saga's steps and timeline, its Events, and its buttons."""
    order = await _read(kube, order_id)
    notice = None
    if done in set(Action):
        text = _DONE_NOTICES.get(done, f"{Action(done).capitalize()} was requested.")
        if replayed:
            text += " (This repeated an earlier press: nothing was done twice.)"
        notice = {"ok": True, "text": text}
    return _order_page(request, visitor, order, await _order_html(kube, order, request), notice)


@router.get("/orders/{order_id}/stream", response_model=None)
async def order_stream(
    request: Request, _: Watching, order_id: OrderId, kube: Kube, settings: AppSettings
) -> StreamingResponse:
    """The order page's live part, as server-sent events."""
    first = await _read(kube, order_id)

    async def render(order: Order) -> str:
        return await _order_html(kube, order, request)

    return _streaming(streams.order(kube, first, settings.console_stream_seconds, render))


@router.post("/orders/{order_id}/actions/{action}", response_model=None)
async def act(
    request: Request, visitor: Reading, order_id: OrderId, action: str, kube: Kube
) -> Response:
    """A button: the action through the REST API, as the visitor, then the order's page
    (303 on success; the REST API's refusal, a 403 included, in words on the page)."""
    login.refuse_cross_site(request)
    chosen = Action(action) if action in set(Action) else None
    route = acting.route_of(request.app, chosen) if chosen else None
    if chosen is None or route is None:
        raise Problem(404, "not-found", "Not Found", f"There is no action {action!r}.")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0]
    if not key:
        raise Problem(
            400,
            "idempotency-key-missing",
            "Idempotency-Key missing",
            "The form carries no key; reload the order's page and press the button again.",
        )
    body: dict[str, str] | None = None
    if chosen is Action.FULFILL:
        body = {"carrier": (form.get("carrier") or [""])[0]}
    elif chosen is Action.RETRY:
        # Who asked, in the order's history: the REST route records the token's user, and
        # this only when there is none (KORDER_ALLOW_UNAUTHENTICATED).
        body = {"requestedBy": "korder console"}
    outcome = await acting.perform(request.app, route, order_id, key, body, visitor.token)
    if outcome.ok:
        query = f"?done={chosen}" + ("&replayed=true" if outcome.replayed else "")
        return RedirectResponse(f"{base(request)}/orders/{order_id}{query}", status_code=303)
    order = await _read(kube, order_id)
    notice = {"ok": False, "text": str(outcome.body.get("detail", "The action was refused."))}
    live = await _order_html(kube, order, request)
    return _order_page(request, visitor, order, live, notice, status=outcome.status)
