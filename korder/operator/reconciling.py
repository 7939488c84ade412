"""Driving one Order through its saga as far as it can go now.

Called by the Kopf handlers in :mod:`.handlers` on every change of an Order, on
start-up and on deletion. Each turn asks the pure state machine
(:mod:`korder.domain.saga`) for the next move, makes the participant call it asks
for (:mod:`.performing`), and writes the resulting status through the status
subresource (:mod:`korder.kube.status_writing`) *before* the next call, so the
status is the saga's durable state at every instant. The status write answers
with the newest object, so a cancellation that arrived during a call is seen at
the next turn.

It returns when the saga must wait: for a spec change (``None``), or for a retry
(the delay in seconds, which the handler turns into Kopf's own retry).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient

from korder.domain import saga
from korder.domain.order import OrderSpec, OrderStatus
from korder.kube import status_writing
from korder.operator import performing
from korder.participant_clients import backoff, calls

logger = logging.getLogger(__name__)

#: More moves than any saga needs in one go; a bound so a bug cannot spin forever.
MAX_MOVES = 50

Announce = Callable[[Mapping[str, Any], saga.Record], None]


@dataclass
class Context:
    """What every reconciliation needs; built once at the operator's start-up."""

    kube: AsyncClient
    participants: calls.Participants
    policy: saga.Policy
    retry_base: float
    retry_cap: float
    #: Step retries continue the backoff curve where a call's own attempts ended.
    attempts_per_call: int
    rng: random.Random = field(default_factory=random.Random)


def to_order(body: Mapping[str, Any]) -> saga.Order:
    """The saga's view of an Order resource."""
    meta = body["metadata"]
    return saga.Order(
        spec=OrderSpec.model_validate(body["spec"]),
        status=OrderStatus.model_validate(body.get("status") or {}),
        generation=int(meta.get("generation", 1)),
        created_at=datetime.fromisoformat(meta["creationTimestamp"]),
        deleting=bool(meta.get("deletionTimestamp")),
    )


async def reconcile(
    ctx: Context, body: Mapping[str, Any], *, retry: int, announce: Announce
) -> float | None:
    """Move the order on until it must wait; the seconds to wait for a retry, or None."""
    obj: Mapping[str, Any] = body
    meta = body["metadata"]
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    ref = {"order": f"{namespace}/{name}", "uid": uid}
    for _ in range(MAX_MOVES):
        order = to_order(obj)
        move = saga.next_move(order, datetime.now(UTC))
        if isinstance(move, saga.Idle):
            return None
        performed: performing.Performed | None = None
        if isinstance(move, saga.Call):
            performed = await performing.perform(ctx.participants, move.action, uid, order)
            move = saga.apply(order, performed.outcome, ctx.policy, datetime.now(UTC))
        if move.status != order.status:
            obj = await status_writing.write(ctx.kube, namespace, name, move.status)
        for record in move.records:
            logger.info(
                "%s",
                record.message,
                extra={**ref, "reason": record.reason, "phase": move.status.phase},
            )
            announce(obj, record)
        if move.retry:
            assert performed is not None  # only a call's outcome asks for a retry
            return _retry_delay(ctx, performed, retry, ref)
    return 0.0  # more to do: let Kopf call again rather than loop here forever


def _retry_delay(
    ctx: Context, performed: performing.Performed, retry: int, ref: dict[str, str]
) -> float:
    outcome = performed.outcome
    if performed.retry_after is not None:
        # The breaker says when a trial is allowed; a little jitter keeps the
        # deferred orders from all trying at the same instant.
        delay = performed.retry_after + ctx.rng.uniform(0, ctx.retry_base * 5)
    else:
        delay = backoff.delay(
            ctx.attempts_per_call + retry, base=ctx.retry_base, cap=ctx.retry_cap, rng=ctx.rng
        )
    assert isinstance(outcome, (saga.Failed, saga.Deferred))
    logger.warning(
        "%s not done yet: %s; retrying in %.1fs",
        outcome.action,
        outcome.reason,
        delay,
        extra={**ref, "action": str(outcome.action), "retry": retry},
    )
    return delay
