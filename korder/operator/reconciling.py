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

Which status writes crash safety needs, and why no others
----------------------------------------------------------

Every status write is one API write, and the API server's write rate is what bounds
the saga's throughput, so the operator writes only what it could not find out
again after a crash. What it can find out again: the outcome of any call it made.
Every call carries a key derived from the order's UID and the step, so repeating it
is a replay at the participant, which answers as it did the first time; an outcome
never has to be stored before the operator moves on. What it cannot find out again
is *that* a call may have been made: the participants answer "what did key K do?"
only by doing K (a reserve, a charge), so nothing but the status can say that a
step is in doubt. And a cancellation decided on a status that does not say so
compensates only the steps it knows of: the reservation or the charge of the call
in flight would stay, never released nor refunded. Hence the writes:

1. **the write-ahead mark, before each participant call**: the step's condition
   ``Unknown`` (it may have happened), together with everything decided since the
   last write: the previous call's outcome (reserve done, with its id), the phase,
   the history. A cancellation then settles the step in doubt by a replay first;
2. **at rest**, when the saga must wait (for the client, for a retry, or for good):
   the status is the order's answer to its clients (phase, ``Ready``, the ids).

Moves with no call between them are never a write of their own (admission, the
saga's start and the first mark are one; a step's outcome and the next step's mark
are one), so an order costs one write per step and one at rest: 3 from creation to
``Confirmed``. Two marks in one write (reserve and capture both in doubt before the
first call) would save one more, but a cancellation during the reservation would
then have to settle the charge by making it, and refund it: a customer charged for
an order they cancelled. That is the floor: W ≥ 1 create + 3 status writes.

A crash at any instant is covered: before a mark is stored, the call was not made;
after, the next run (or another replica) replays it; between a call's answer and the
next write, the replay gives the same answer; a write refused because the order
changed (a cancellation) is decided again on the newer order, the call repeated as
a replay. ``make chaos`` kills calls at every step and checks the ledgers.

Events are a mirror for ``kubectl describe``; the durable record is
``status.history``. So an Event is posted only where a person looks: for a warning,
and for where the saga comes to rest (``OrderConfirmed``, ``OrderFailed``,
``OrderCancelled``, ``OrderFulfilled``...), one per saga run instead of one per
note. Kopf posts them from its own queue, after the status write, so they never
hold the saga up.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from korder.domain import saga, steps
from korder.domain.order import Order, OrderStatus, Phase
from korder.kube import orders
from korder.operator import observing, performing
from korder.outcomes import Deferred, Failed
from korder.participant_clients import backoff, calls

#: Its lines name the order through the log context the handler binds (korder.logs).
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
    observer: observing.Observer = field(default_factory=observing.default)


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
    stored = current = order  # as the API server has it; with the moves not written yet
    notes: list[steps.Note] = []
    # Phase changes not written yet: counted once stored, like the notes announced.
    moved: list[tuple[Phase | None, Phase]] = []
    observer = ctx.observer
    observer.seen(order, saga.deadline_of(order, ctx.policy, ctx.now()))

    async def write(*, at_rest: bool = False) -> bool:
        """Store ``current``; False when the order changed meanwhile (read again, then)."""
        nonlocal stored, current, notes, moved
        if current.status == stored.status:
            return True
        try:
            written = await ctx.write(stored, current.status)
        except orders.Conflict:
            # Decide again on what is there now; a call made meanwhile is repeated
            # then, as a replay under its key. The notes not written go with it.
            logger.info("order changed during a move; reading it again")
            stored = current = await ctx.read(namespace, name)
            notes, moved = [], []
            return False
        for note in notes:
            logger.info(
                "%s",
                note.message,
                extra={"reason": note.reason, "phase": written.status.phase},
            )
        for note in worth_an_event(notes, at_rest=at_rest):
            announce(written, note)
        for before, after in moved:
            observer.moved(written, before, after)
        observer.seen(written, saga.deadline_of(written, ctx.policy, ctx.now()))
        stored, current, notes, moved = written, written, [], []
        return True

    for _ in range(MAX_MOVES):
        move = saga.next_move(current, ctx.now())
        if isinstance(move, saga.Idle):
            if await write(at_rest=True):
                if order.deleting:
                    observer.forget(meta.uid)  # the finalizer lets go: the Order goes
                return None
            continue
        if isinstance(move, saga.Call):
            if not await write():  # the write-ahead: the step's mark is stored first
                continue
            began = observer.clock()
            outcome = await performing.perform(ctx.participants, move, meta.uid)
            advance = saga.apply(current, move, outcome, ctx.policy, ctx.now())
            observer.called(meta.uid, move, outcome, began, settled=not advance.retry)
        else:
            advance = move
        notes += advance.notes
        before, after = current.status.phase, advance.status.phase
        if after is not None and after != before:
            if before is None:
                observer.admitted(meta.uid)
            moved.append((before, after))
        current = current.model_copy(update={"status": advance.status})
        if advance.retry:
            assert isinstance(move, saga.Call)
            assert isinstance(outcome, Failed | Deferred)
            if await write(at_rest=True):
                observer.retried(move, outcome)
                return _retry_delay(ctx, move, outcome, retry)
    await write()
    return 0.0  # more to do: let Kopf call again rather than loop here forever


def worth_an_event(notes: list[steps.Note], *, at_rest: bool) -> list[steps.Note]:
    """The notes of one status write that a person needs as Kubernetes Events.

    Every warning, and, when the saga comes to rest with this write, its last note:
    the one that says where the order is now. The others are in the history only.
    """
    last = notes[-1] if at_rest and notes else None
    return [n for n in notes if n.warning or n is last]


def _retry_delay(ctx: Context, call: saga.Call, outcome: Failed | Deferred, retry: int) -> float:
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
        extra={"step": call.name, "retry": retry},
    )
    return delay
