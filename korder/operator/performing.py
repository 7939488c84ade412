"""Performing one saga call: a step's :class:`~korder.domain.steps.Request` as HTTP.

Called by :mod:`.reconciling` for each :class:`korder.domain.saga.Call`. The saga's
table already built the request (participant, path, body, from the order); this
adds the idempotency key from the order's UID and the step's name and sends it
through the participant clients, whose answer is already one of the saga's
:data:`~korder.outcomes.Outcome`. Nothing here knows one step from another.

Each call is a span (``step reserve-inventory``, ``compensation refund-payment``) in
the order's trace, the parent of the participant clients' HTTP spans. A step that
Kopf runs again (a retry, a restart, a replay after a refused write) is a span again:
each attempt shows in the trace as it happened.
"""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode

from korder import tracing
from korder.domain import saga, steps
from korder.domain.order import Order
from korder.outcomes import Deferred, Failed, Outcome, Rejected
from korder.participant_clients import calls

_TRACER = tracing.tracer(__name__)


async def perform(participants: calls.Participants, call: saga.Call, order: Order) -> Outcome:
    request = call.request
    meta = order.metadata
    key = steps.idempotency_key(meta.uid, call.name)
    compensation = steps.step_named(call.name) is None
    with tracing.span(
        _TRACER,
        f"{'compensation' if compensation else 'step'} {call.name}",
        attributes={
            "k8s.namespace.name": meta.namespace or "",
            "korder.order.name": meta.name,
            "korder.order.uid": meta.uid,
            "korder.order.phase": str(order.status.phase or ""),
            "korder.saga.step": call.name,
            "korder.saga.compensation": compensation,
            "korder.participant": request.participant,
        },
    ) as span:
        outcome = await participants[request.participant].post(request.path, key, request.body)
        # Named as the metrics name it (observing.Observer.called).
        span.set_attribute("korder.saga.outcome", type(outcome).__name__.lower())
        if isinstance(outcome, Failed | Deferred):
            span.set_status(Status(StatusCode.ERROR, outcome.reason))
        elif isinstance(outcome, Rejected):
            span.set_attribute("korder.saga.rejection", outcome.reason)
    return outcome
