"""``/orders``: create, read, list, change, act on and cancel orders.

Every write is a create or a merge patch of the Order resource's spec and
annotations; the operator owns status and runs the saga. The writes other than
create share :func:`_act`: read the order, replay if its Idempotency-Key is on
record, check If-Match and the phase, then patch the action and its record in one
write guarded by the resourceVersion that was checked, and start over when a
concurrent write (a twin, the operator) got there first. The spec field an action
sets, and whether the order allows it, come from the domain
(:func:`korder.domain.actions.request`, :func:`korder.domain.rules.refusal`), as
they do for the ``kubectl korder`` plugin.

Each route is served twice: under ``/orders`` in the façade's default namespace
(the seed's paths) and under ``/namespaces/{namespace}/orders`` for any tenant
(:func:`korder.api.main.create_app` includes :data:`router` at both prefixes). Each
takes the dependency of its verb (``Creating``, ``Reading``...), so nothing here runs
for a caller Kubernetes would not let do it (:mod:`korder.api.access`).

A caller with no right in a namespace gets 403 for any order id there, whether the
order exists or not: the permission is decided on the namespace before an order is
read, so the answer tells them nothing of another tenant's orders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from korder.api import idempotency, waiting
from korder.api.deps import (
    AppSettings,
    Creating,
    Deleting,
    IdempotencyKey,
    Kube,
    Listing,
    OrderId,
    Patching,
    Reading,
    Tenant,
    Updating,
    Wait,
    Waits,
    Write,
    WriteContext,
)
from korder.api.history import merge
from korder.api.problems import Problem, documented
from korder.api.schemas import (
    CreateOrder,
    Fulfil,
    OrderEvents,
    OrderList,
    OrderView,
    RetryOrder,
    UpdateOrder,
)
from korder.domain import actions, rules
from korder.domain.actions import Action
from korder.domain.order import Carrier, Customer, Order, OrderSpec, Phase
from korder.kube import orders

router = APIRouter(tags=["orders"])
log = logging.getLogger(__name__)

#: How often a write re-reads and retries when the order changed under it.
_ATTEMPTS = 8
_WRITE_ERRORS = documented(400, 401, 403, 404, 409, 412, 413, 422, 503)
# The filter takes what a customer id may be, as the domain model says.
_CUSTOMER_ID_PATTERN: str = Customer.model_json_schema()["properties"]["id"]["pattern"]


_HEADERS: dict[str, str] = {
    "ETag": "The order's resourceVersion, quoted: send it back as If-Match.",
    "Location": "Where the order is: /orders/{id}.",
    idempotency.REPLAYED_HEADER: "'true' when this answer replays an earlier request with the "
    "same Idempotency-Key.",
    "Preference-Applied": "'wait=N' when the answer waited for the saga (Prefer: wait=N).",
}
_WRITE_HEADERS = ("ETag", idempotency.REPLAYED_HEADER, "Preference-Applied")


def _headers(status: int, *names: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI response headers of a route's success answer."""
    return {
        status: {
            "description": "Success",
            "headers": {
                n: {"description": _HEADERS[n], "schema": {"type": "string"}} for n in names
            },
        }
    }


def _not_found(order_id: str) -> Problem:
    return Problem(404, "order-not-found", "Order not found", f"There is no order {order_id!r}.")


async def _read(kube: Kube, order_id: str, namespace: str | None) -> Order:
    try:
        return await orders.get(kube, order_id, namespace)
    except orders.NotFound as exc:
        raise _not_found(order_id) from exc


def _etag(order: Order) -> str:
    return f'"{order.metadata.resource_version}"'


def _answer(
    response: Response,
    order: Order,
    *,
    status: int,
    replayed: bool = False,
    waited: int | None = None,
) -> OrderView:
    response.status_code = status
    response.headers["ETag"] = _etag(order)
    if replayed:
        response.headers[idempotency.REPLAYED_HEADER] = "true"
    if waited is not None:
        response.headers.update(waiting.applied(waited))
    return OrderView.of(order)


@router.post(
    "",
    status_code=201,
    response_model=OrderView,
    responses={
        **documented(400, 401, 403, 404, 409, 413, 422, 503),
        **_headers(201, *_WRITE_HEADERS, "Location"),
    },
)
async def create_order(
    body: CreateOrder,
    tenant: Creating,
    kube: Kube,
    key: IdempotencyKey,
    wait: Wait,
    waits: Waits,
    request: Request,
    response: Response,
) -> OrderView:
    """Create an Order resource; the operator runs its saga from there.

    With an Idempotency-Key the order's name comes from the key and the caller, so a
    retry (from any replica) finds the order the first request made and replays it,
    and another caller's same key makes another order.
    """
    spec = body.to_spec()
    replayed = False
    try:
        if key is None:
            order = await orders.create(
                kube, spec, generate_name="ord-", namespace=tenant.namespace
            )
        else:
            order, replayed = await _create_once(kube, spec, key, tenant)
    except orders.NotFound as exc:  # the namespace: an order's own is never missing here
        raise Problem(
            404,
            "namespace-not-found",
            "Namespace not found",
            f"There is no namespace {tenant.namespace!r} to create the order in.",
        ) from exc
    if wait is not None:
        order = await waiting.until_settled(kube, order, Action.CREATE, wait, waits)
    view = _answer(response, order, status=201, replayed=replayed, waited=wait)
    # /orders/{id} or /namespaces/{namespace}/orders/{id}: where this route was asked.
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{view.id}"
    return view


async def _create_once(kube: Kube, spec: OrderSpec, key: str, tenant: Tenant) -> tuple[Order, bool]:
    """Create the order named by ``key`` and its caller, or find the one an earlier
    request of theirs made.

    Returns the order and whether it is a replay; 422/409 from :func:`check_created`.
    """
    fingerprint = idempotency.fingerprint(
        "POST", "/orders", spec.model_dump(mode="json", by_alias=True)
    )
    scope, namespace = tenant.caller.scope, tenant.namespace
    name = idempotency.resource_name(key, scope)
    annotations = idempotency.create_annotations(key, fingerprint, scope)
    for _ in range(_ATTEMPTS):
        try:
            created = await orders.create(
                kube, spec, name=name, annotations=annotations, namespace=namespace
            )
            return created, False
        except orders.AlreadyExists:
            pass
        try:
            existing = await orders.get(kube, name, namespace)
        except orders.NotFound:
            continue  # deleted between our create and our read: create again
        idempotency.check_created(existing, key, fingerprint, scope)
        return existing, True
    raise Problem(
        409, "conflict", "Conflict", "The order was created and deleted repeatedly; retry."
    )


@router.get(
    "",
    response_model=OrderList,
    responses=documented(400, 401, 403, 422, 503),
)
async def list_orders(
    tenant: Listing,
    kube: Kube,
    settings: AppSettings,
    status: Annotated[Phase | None, Query(description="Only orders in this phase.")] = None,
    customer_id: Annotated[
        str | None,
        Query(
            alias="customerId",
            description="Only this customer's orders.",
            min_length=1,
            max_length=63,
            pattern=_CUSTOMER_ID_PATTERN,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Query(ge=1, le=500, description="Orders per page (default: KORDER_PAGE_SIZE, 50)."),
    ] = None,
    continue_token: Annotated[
        str | None,
        Query(
            alias="continue",
            max_length=4096,
            description="The token of the previous page's 'continue', for the next page.",
        ),
    ] = None,
    all_namespaces: Annotated[
        bool,
        Query(
            alias="allNamespaces",
            description="Orders of every namespace (needs list on orders cluster-wide).",
        ),
    ] = False,
) -> OrderList:
    """Orders in name order (namespace first, across namespaces), a page at a time,
    filtered by phase and customer."""
    del all_namespaces  # read by the Listing dependency, which decides the namespace
    fields = {}
    if status is not None:
        fields["status.phase"] = str(status)
    if customer_id is not None:
        fields["spec.customer.id"] = customer_id
    try:
        page = await orders.list_page(
            kube,
            limit=limit or settings.page_size,
            continue_token=continue_token or None,
            field_selector=fields,
            namespace=tenant.namespace or "*",
        )
    except orders.Invalid as exc:
        raise Problem(
            400,
            "invalid-continue-token",
            "Invalid continue token",
            "The continue token is not valid or has expired; list again from the first page.",
        ) from exc
    return OrderList.model_validate(
        {
            "orders": [OrderView.of(o) for o in page.items],
            "continue": page.continue_token,
        }
    )


@router.get(
    "/{order_id}",
    response_model=OrderView,
    responses={**documented(401, 403, 404, 503), **_headers(200, "ETag")},
)
async def get_order(
    order_id: OrderId, tenant: Reading, kube: Kube, response: Response
) -> OrderView:
    """The order and where its saga is; the ETag is its resourceVersion."""
    return _answer(response, await _read(kube, order_id, tenant.namespace), status=200)


@router.get(
    "/{order_id}/events",
    response_model=OrderEvents,
    responses=documented(401, 403, 404, 503),
)
async def list_order_events(order_id: OrderId, tenant: Reading, kube: Kube) -> OrderEvents:
    """The order's history, oldest first: status.history merged with its Kubernetes Events."""
    order = await _read(kube, order_id, tenant.namespace)
    events = await orders.events_of(kube, order.metadata.uid, tenant.namespace)
    return OrderEvents(order_id=order_id, events=merge(order, events))


@router.put(
    "/{order_id}",
    response_model=OrderView,
    responses={**_WRITE_ERRORS, **_headers(200, "ETag", idempotency.REPLAYED_HEADER)},
)
async def update_order(
    order_id: OrderId, body: UpdateOrder, tenant: Updating, write: Write, response: Response
) -> OrderView:
    """Replace the addresses and notes, until fulfilment; the immutable fields stay."""

    def changed(order: Order) -> OrderSpec:
        refused = body.changed_immutables(order.spec)
        if refused:
            raise Problem(
                422,
                "immutable-field",
                "Immutable field changed",
                f"These fields cannot change once the order is created: {', '.join(refused)}.",
                errors=[{"field": k, "message": "cannot change"} for k in refused],
            )
        return body.applied_to(order.spec)

    payload = body.model_dump(mode="json", by_alias=True)
    # Nothing of the saga answers a change of address: Prefer: wait does not apply.
    order, status, replayed = await _act(
        write, tenant, order_id, Action.UPDATE, changed, body=payload, status=200
    )
    return _answer(response, order, status=status, replayed=replayed)


@router.delete(
    "/{order_id}",
    status_code=202,
    response_model=OrderView,
    responses={**_WRITE_ERRORS, **_headers(202, *_WRITE_HEADERS)},
)
async def cancel_order(
    order_id: OrderId, tenant: Deleting, write: Write, response: Response
) -> OrderView:
    """Cancel: the saga compensates what it did; the resource stays, for the record.

    Allowed to a caller who may delete orders: to them it is what deleting one means.
    """
    return await _action(
        write, tenant, response, order_id, Action.CANCEL, body={"cancelRequested": True}
    )


@router.post(
    "/{order_id}/process",
    status_code=202,
    response_model=OrderView,
    responses={**_WRITE_ERRORS, **_headers(202, *_WRITE_HEADERS)},
)
async def process_order(
    order_id: OrderId, tenant: Patching, write: Write, response: Response
) -> OrderView:
    """Confirmed -> Processing."""
    return await _action(
        write, tenant, response, order_id, Action.PROCESS, body={"processRequested": True}
    )


@router.post(
    "/{order_id}/fulfill",
    status_code=202,
    response_model=OrderView,
    responses={**_WRITE_ERRORS, **_headers(202, *_WRITE_HEADERS)},
)
async def fulfill_order(
    order_id: OrderId, body: Fulfil, tenant: Patching, write: Write, response: Response
) -> OrderView:
    """Processing -> Fulfilled with a carrier; the shipment appears in the order."""
    carrier = Carrier(body.carrier)
    return await _action(
        write,
        tenant,
        response,
        order_id,
        Action.FULFILL,
        body={"fulfillment": {"carrier": str(carrier)}},
        carrier=carrier,
    )


@router.post(
    "/{order_id}/retry",
    status_code=202,
    response_model=OrderView,
    responses={**_WRITE_ERRORS, **_headers(202, *_WRITE_HEADERS)},
)
async def retry_order(
    order_id: OrderId,
    tenant: Patching,
    write: Write,
    response: Response,
    body: RetryOrder | None = None,
) -> OrderView:
    """Resume a Stalled saga: the step it stalled on is tried again with a fresh deadline.

    409 (``not-retryable``) with the reason when the order is not stalled, or failed for
    good (declined, out of stock). ``requestedBy`` is recorded as the authenticated
    caller's user name; only without authentication is it what the body says.
    """
    asked = body or RetryOrder()
    return await _action(
        write,
        tenant,
        response,
        order_id,
        Action.RETRY,
        body=asked.model_dump(mode="json", by_alias=True, exclude_none=True),
        by=tenant.caller.name or asked.requested_by,
    )


async def _action(
    write: WriteContext,
    tenant: Tenant,
    response: Response,
    order_id: str,
    action: Action,
    *,
    body: Mapping[str, object],
    carrier: Carrier | None = None,
    by: str | None = None,
) -> OrderView:
    """An action that a saga stage waits for: ask for it in the spec, and maybe wait."""

    def asked(order: Order) -> OrderSpec:
        return actions.request(action, order, carrier=carrier, by=by, now=datetime.now(UTC))

    order, status, replayed = await _act(
        write, tenant, order_id, action, asked, body=body, status=202, carrier=carrier
    )
    if write.wait is not None:
        order = await waiting.until_settled(write.kube, order, action, write.wait, write.waits)
    return _answer(response, order, status=status, replayed=replayed, waited=write.wait)


async def _act(
    write: WriteContext,
    tenant: Tenant,
    order_id: str,
    action: Action,
    change: Callable[[Order], OrderSpec],
    *,
    body: object,
    status: int,
    carrier: Carrier | None = None,
) -> tuple[Order, int, bool]:
    """Do ``action`` once: (the order after it, the status code, whether it was a replay).

    ``body`` is the request as the client sent it (for the key's fingerprint);
    ``change`` makes the new spec from the order as it is read.
    """
    kube, key, if_match = write.kube, write.key, write.if_match
    scope = tenant.caller.scope
    fingerprint = idempotency.fingerprint(action, "/orders/{order_id}", body) if key else ""
    for _ in range(_ATTEMPTS):
        order = await _read(kube, order_id, tenant.namespace)
        if key:
            record = idempotency.replay_of(order, key, fingerprint, scope)
            if record is not None:
                return order, record.status, True
        if if_match is not None and not _matches(if_match, order):
            raise Problem(
                412,
                "precondition-failed",
                "Precondition failed",
                f"The order changed: its ETag is {_etag(order)}, not {if_match}.",
            )
        reason = rules.refusal(action, order, carrier)
        if reason and action is Action.RETRY:
            raise Problem(409, "not-retryable", "The order cannot be retried", reason)
        if reason:
            raise Problem(409, "wrong-phase", "Wrong phase for this action", reason)
        annotations: dict[str, str] = {}
        if key:
            record = idempotency.Record(key, fingerprint, status, scope)
            annotations = idempotency.records_annotation(
                order, record, write.settings.idempotency_record_limit
            )
        try:
            patched = await orders.update(kube, order, change(order), annotations)
        except orders.Conflict:
            continue  # someone wrote first (a twin, the operator): decide again on what is now
        except orders.NotFound as exc:
            raise _not_found(order_id) from exc
        return patched, status, False
    log.warning("order kept changing under a write", extra={"order": order_id, "action": action})
    raise Problem(
        409,
        "concurrent-modification",
        "Concurrent modification",
        "The order kept changing while this request tried to write it; retry.",
    )


def _matches(if_match: str, order: Order) -> bool:
    """If-Match as RFC 9110 has it: '*' or a list of strong entity tags."""
    tags = [tag.strip() for tag in if_match.split(",")]
    return "*" in tags or _etag(order) in tags
