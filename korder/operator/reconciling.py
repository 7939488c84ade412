"""Driving one Order through its saga as far as it can go now.

Called by the Kopf handlers in :mod:`.handlers` on every change of an Order, on
start-up and on deletion. Each turn asks the pure state machine
(:mod:`korder.domain.saga`) for the next move, makes the participant call it asks
for (:mod:`.performing`), and writes the resulting status (:mod:`korder.kube.status_writing`)
*before* the next call, so the status is the saga's durable state at every instant.
Each write is guarded by the resourceVersion the move was decided on: if the order
changed meanwhile (a cancellation, another replica), the write is refused, the
order re-read and the move decided again. The status write answers with the newest
object, so a cancellation that arrived during a call is seen at the next turn.

It returns when the saga must wait: for a spec change (``None``), or for a retry
(the delay in seconds, which the handler turns into Kopf's own retry).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from korder.domain import saga, steps
from korder.domain.order import Order, OrderStatus
from korder.kube import orders
from korder.operator import performing
from korder.outcomes import Deferred, Failed
from korder.participant_clients import backoff, calls

logger = logging.getLogger(__name__)

#: More moves than any saga needs in one go; a bound so a bug cannot spin forever.
MAX_MOVES = 50

Announce = Callable[[Order, steps.Note], None]
#: Reads an order again by namespace and name (after a refused write).
Read = Callable[[str, str], Awaitable[Order]]
#: Writes a status onto an order, guarded by its resourceVersion; the order as stored.
Write = Callable[[Order, OrderStatus], Awaitable[Order]]


@dataclass
class Context:
    """What every reconciliation needs; built once at the operator's start-up."""

    read: Read
    write: Write
    participants: calls.Participants
    policy: saga.Policy
    retry_base: float
    retry_cap: float
    #: Step retries continue the backoff curve where a call's own attempts ended.
    attempts_per_call: int
    rng: random.Random = field(default_factory=random.Random)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


async def reconcile(ctx: Context, order: Order, *, retry: int, announce: Announce) -> float | None:
    """Move the order on until it must wait; the seconds to wait for a retry, or None.

    Moves are applied to a local copy and written together, once, where the saga
    would otherwise lose something: before each participant call (so a crash during
    the call leaves the step in doubt, to be replayed, never unknown) and when the
    saga comes to rest. A successful call's outcome and the next step's mark are one
    write; the guard on the resourceVersion makes that safe, since a cancellation
    that arrived during the call makes the write fail, and the move is decided again.
    """
    meta = order.metadata
    assert meta.namespace is not None  # Orders are namespaced
    namespace, name = meta.namespace, meta.name
    ref = {"order": f"{namespace}/{name}", "uid": meta.uid}
    stored = current = order  # as the API server has it; with the moves not written yet
    notes: list[steps.Note] = []

    async def write() -> bool:
        """Store ``current``; False when the order changed meanwhile (read again, then)."""
        nonlocal stored, current, notes
        if current.status == stored.status:
            return True
        try:
            written = await ctx.write(stored, current.status)
        except orders.Conflict:
            # Decide again on what is there now; a call made meanwhile is repeated
            # then, as a replay under its key. The notes not written go with it.
            logger.info("order changed during a move; reading it again", extra=ref)
            stored = current = await ctx.read(namespace, name)
            notes = []
            return False
        for note in notes:
            logger.info(
                "%s",
                note.message,
                extra={**ref, "reason": note.reason, "phase": written.status.phase},
            )
            announce(written, note)
        stored, current, notes = written, written, []
        return True

    for _ in range(MAX_MOVES):
        move = saga.next_move(current, ctx.now())
        if isinstance(move, saga.Idle):
            if await write():
                return None
            continue
        if isinstance(move, saga.Call):
            if not await write():  # the write-ahead: the step's mark is stored first
                continue
            outcome = await performing.perform(ctx.participants, move, meta.uid)
            advance = saga.apply(current, move, outcome, ctx.policy, ctx.now())
        else:
            advance = move
        notes += advance.notes
        current = current.model_copy(update={"status": advance.status})
        if advance.retry:
            assert isinstance(move, saga.Call)
            assert isinstance(outcome, Failed | Deferred)
            if await write():
                return _retry_delay(ctx, move, outcome, retry, ref)
    await write()
    return 0.0  # more to do: let Kopf call again rather than loop here forever


def _retry_delay(
    ctx: Context, call: saga.Call, outcome: Failed | Deferred, retry: int, ref: dict[str, str]
) -> float:
    if isinstance(outcome, Deferred):
        # The breaker says when a trial is allowed; a little jitter keeps the
        # deferred orders from all trying at the same instant.
        delay = outcome.retry_after + ctx.rng.uniform(0, ctx.retry_base * 5)
    else:
        delay = backoff.delay(
            ctx.attempts_per_call + retry, base=ctx.retry_base, cap=ctx.retry_cap, rng=ctx.rng
        )
    logger.warning(
        "%s not done yet: %s; retrying in %.1fs",
        call.name,
        outcome.reason,
        delay,
        extra={**ref, "step": call.name, "retry": retry},
    )
    return delay
