"""The saga state machine of an Order: what to do next, and what an outcome means.

Pure code: no Kubernetes, no HTTP, no clock of its own. The operator
(:mod:`korder.operator.reconciling`) feeds it the order it observed and the outcome
of each participant call, and writes back the status it returns; the unit tests
drive it the same way without a cluster. What each stage does is the table in
:mod:`.steps`; this module only reads it.

Two functions make the machine:

- :func:`next_move` looks at an order and says what comes next: a :class:`Call` to
  a participant, an :class:`Advance` (a new status to write, no call needed), or
  :class:`Idle` (nothing to do until the spec changes);
- :func:`apply` takes the :data:`~korder.outcomes.Outcome` of a :class:`Call` and
  returns the new status.

:data:`TRANSITIONS` is the machine's phase graph as data, so a test or the chaos
checker can validate any order's history against it (:func:`illegal_moves`).

Each step's condition in ``status.conditions`` is the step's durable state:
absent (not started), ``Unknown`` (started: it may or may not have happened at the
participant), ``True`` (done), ``False`` (rejected, or undone by its compensation).
A step that is ``Unknown`` when compensation starts is *in doubt*: the machine
settles it first by repeating the same call (the idempotency key makes that a
replay if the first one arrived), then undoes it if it turned out done. That is
how a cancellation that lands while a step is in flight, or an operator killed
between a call and its status write, never leaves a stray reservation or charge.

What the deadline does, and why a person is asked
-------------------------------------------------

A forward step that keeps failing *transiently* past the saga's deadline (a
participant down or too slow, or its breaker open, which defers the step without a
call: a participant that stays down keeps its breaker open) **stalls**:
the order keeps its phase, the step's condition stays ``Unknown`` with reason
``DeadlineExceeded`` (the durable state: :func:`.conditions.stopped`), ``Stalled``
is True with that reason, and the saga makes no more calls. A person then either
**retries** (``spec.retry``, :func:`_take_retry`): the same step resumes with a fresh
deadline, by the same idempotency key, so the participant replays rather than
repeats, and the order still ends with one reservation and one charge; or
**cancels**: the step in doubt is settled and undone like any other.

Compensating on the deadline instead (as korder did before) would release a
reservation that a retry would then have to make again, and it gives up on an
order whose only fault was a participant that was down: its customer did nothing
wrong, and the operator who restarts the participant should be able to finish it.
A *permanent* answer (declined, out of stock) still compensates at once to Failed:
the same request would get the same answer, so it cannot be retried
(:func:`.rules.refusal`). A compensation never gives up by itself; past the
deadline it says ``Stalled`` (``CompensationRetrying``), and a retry makes it try
again at once with a fresh deadline. One that the participant refused for good
(``CompensationIncomplete``) cannot be retried: a person undoes it at the participant.

A retry is acted on once per ``spec.retry.attempt``: ``status.lastRetry`` records
the attempt, and ``status.history`` who asked (as the client named them) and when.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from korder.domain import conditions, money, rules, steps
from korder.domain.actions import Action, requested, retry_pending
from korder.domain.order import (
    HISTORY_LIMIT,
    MESSAGE_LENGTH,
    ConditionStatus,
    HistoryEntry,
    Order,
    OrderStatus,
    Phase,
    RetryRecord,
    clip,
    instant,
    timestamp,
)
from korder.domain.steps import Note, Step
from korder.outcomes import Deferred, Failed, Outcome, Rejected, Succeeded


@dataclass(frozen=True)
class Policy:
    """The saga's knobs, from the settings."""

    deadline: timedelta = timedelta(minutes=5)


# --- Moves: what next_move answers -------------------------------------------------


@dataclass(frozen=True)
class Advance:
    """Write ``status``; ``notes`` say what happened. ``retry`` asks to come back later."""

    status: OrderStatus
    notes: tuple[Note, ...] = ()
    retry: bool = False


@dataclass(frozen=True)
class Call:
    """Ask a participant: the step's or compensation's ``name`` and the request to send."""

    name: str
    request: steps.Request


@dataclass(frozen=True)
class Idle:
    """Nothing to do until the spec changes (or ever, in a terminal phase)."""

    reason: str


Move = Advance | Call | Idle

# --- The phase graph, as data -------------------------------------------------------


def _transitions() -> frozenset[tuple[Phase, Phase]]:
    edges = {(Phase.PENDING, steps.SAGA[0].phase)}
    edges |= {(stage.phase, steps.then(stage)) for stage in steps.SAGA}
    # A cancellation interrupts any phase it may (whatever the spec, for the graph).
    interruptible = [p for p in steps.FORWARD if _ever_cancellable(p)]
    edges |= {(p, Phase.CANCELLING) for p in interruptible}
    # Any step may be refused: compensate what was done. (One stalled past the deadline
    # keeps its phase: a retry resumes it there, a cancellation leaves it as above.)
    edges |= {(step.phase, Phase.COMPENSATING) for step in steps.STEPS}
    edges |= {(Phase.COMPENSATING, Phase.FAILED), (Phase.CANCELLING, Phase.CANCELLED)}
    return frozenset(edges)


def _ever_cancellable(phase: Phase) -> bool:
    stage = steps.stage_in(phase)
    if isinstance(stage, Step) and stage.irrevocable:
        return stage.waits_for is not None  # before the client asks for it
    return phase not in steps.TERMINAL


TRANSITIONS: Final = _transitions()


def illegal_moves(history: Sequence[HistoryEntry]) -> list[tuple[Phase, Phase]]:
    """The phase changes in ``history`` that the machine cannot make; [] when it is sound."""
    phases = [entry.phase for entry in history]
    return [(a, b) for a, b in itertools.pairwise(phases) if a != b and (a, b) not in TRANSITIONS]


# --- The machine -------------------------------------------------------------------


def next_move(order: Order, now: datetime) -> Move:
    """What the operator should do next for ``order``."""
    move = _next_move(order, now)
    if isinstance(move, Idle) and order.status.observed_generation != order.metadata.generation:
        # A spec change with nothing to do (new notes, say) is still observed, so
        # kstatus and `kubectl wait` see conditions about the current generation.
        return _advance(order, order.status, now)
    return move


def _next_move(order: Order, now: datetime) -> Move:
    status, spec, phase = order.status, order.spec, order.status.phase

    if phase is None:
        total = money.order_total((item.price, item.quantity) for item in spec.items)
        admitted = status.model_copy(update={"phase": Phase.PENDING, "total": total})
        return _advance(order, admitted, now, Note("OrderAccepted", f"Order total {total}."))

    if (spec.cancel_requested or order.deleting) and steps.cancellable(phase, spec):
        why = "the order is being deleted" if order.deleting else "cancellation was requested"
        cancelling = status.model_copy(update={"phase": Phase.CANCELLING})
        message = f"Cancelling: {why}; completed steps are compensated."
        return _advance(order, cancelling, now, Note("CancellationRequested", message))
    settled = phase in steps.COMPENSATING or phase == Phase.CANCELLED
    if spec.cancel_requested and not settled and not _cancel_rejected(status):
        # Too late to cancel (shipped or shipping, or already failed): say so once.
        message = f"The order cannot be cancelled in phase {phase}."
        return _advance(order, status, now, Note("CancellationRejected", message, warning=True))
    if retry_pending(order):
        return _take_retry(order, now)

    if phase == Phase.PENDING:
        first = steps.SAGA[0].phase
        started = status.model_copy(update={"phase": first})
        return _advance(order, started, now, Note("SagaStarted", f"{steps.words(first)}."))
    if phase in steps.COMPENSATING:
        return _pending_compensation(order) or _finish_compensation(order, now)

    stage = steps.stage_in(phase)
    if stage is None:
        return Idle(f"{phase} is final")
    if stage.waits_for is not None and not requested(stage.waits_for, spec):
        return Idle(f"{phase}; waiting for the client to {stage.waits_for} the order")
    if isinstance(stage, steps.Gate):
        moved = status.model_copy(update={"phase": steps.then(stage)})
        return _advance(order, moved, now, stage.note)
    if conditions.get(status, stage.condition) is None:
        # The write-ahead mark: from here on the step may have happened, so a
        # cancellation settles it before compensating. Decided on a view of the
        # spec in which no cancellation was requested.
        marked = _put(order, stage.condition, ConditionStatus.UNKNOWN, "InProgress", "", now)
        notes = (stage.starts(spec),) if stage.starts else ()
        return _advance(order, marked, now, *notes)
    if conditions.stopped(status) is not None:
        return Idle(f"{phase}; stalled past the deadline, waiting for a retry or a cancellation")
    return _call(order, stage)


def _take_retry(order: Order, now: datetime) -> Advance:
    """Act once on ``spec.retry``: resume a stalled saga with a fresh deadline, or say why not."""
    status, asked = order.status, order.spec.retry
    assert asked is not None
    who = asked.requested_by or "an unnamed client"
    data = {"attempt": str(asked.attempt), "requestedBy": asked.requested_by or ""}
    if asked.requested_at:
        data["requestedAt"] = asked.requested_at
    refused = rules.refusal(Action.RETRY, order)
    if refused:
        # A retry applied to an order that cannot take one (kubectl apply may ask at
        # any time): recorded as acted on, so it is said once.
        acted = status.model_copy(update={"last_retry": RetryRecord(attempt=asked.attempt)})
        message = f"Retry {asked.attempt} asked by {who}: {refused}"
        return _advance(order, acted, now, Note("RetryRejected", message, warning=True, data=data))
    resumed = status.model_copy(
        update={"last_retry": RetryRecord(attempt=asked.attempt, resumed_at=instant(now))}
    )
    step = conditions.stopped(status)
    what = "the compensation"
    if step is not None:
        what = step.name
        why = f"{step.name}: resumed by retry {asked.attempt}"
        gen = order.metadata.generation
        resumed = conditions.put(
            resumed, step.condition, ConditionStatus.UNKNOWN, "Resumed", why, gen, now
        )
    message = f"Retry {asked.attempt} asked by {who}: {what} resumes with a fresh deadline."
    return _advance(order, resumed, now, Note("SagaResumed", message, data=data))


def apply(order: Order, call: Call, outcome: Outcome, policy: Policy, now: datetime) -> Advance:
    """The new status after ``outcome`` of ``call``, a call that :func:`next_move` asked for.

    An outcome the order no longer waits for (the same success delivered twice, a
    late answer after the order moved on) changes nothing.
    """
    expected = next_move(order, now)
    if not isinstance(expected, Call) or expected.name != call.name:
        return Advance(order.status)
    phase = order.status.phase
    if phase in steps.COMPENSATING:
        return _apply_compensating(order, call, outcome, policy, now)
    assert phase is not None  # a Call is only ever asked of an admitted order
    stage = steps.stage_in(phase)
    assert isinstance(stage, Step)
    return _apply_forward(order, stage, outcome, policy, now)


def _apply_forward(
    order: Order, step: Step, outcome: Outcome, policy: Policy, now: datetime
) -> Advance:
    if isinstance(outcome, Succeeded):
        done, note = _complete(order, step, outcome, now)
        notes = [note]
        if steps.then(step) == Phase.CONFIRMED:
            notes.append(_CONFIRMED)
        # The next step is not marked started here: this outcome was decided on the
        # view of the order taken before the call, which may miss a cancellation.
        done = done.model_copy(update={"phase": steps.then(step)})
        return _advance(order, done, now, *notes)
    if isinstance(outcome, Rejected):
        failed = _put(
            order, step.condition, ConditionStatus.FALSE, "Rejected", outcome.reason, now
        ).model_copy(
            update={
                "phase": Phase.COMPENSATING,
                "failure_reason": clip(outcome.reason, MESSAGE_LENGTH),
            }
        )
        return _advance(order, failed, now, Note(step.rejected, outcome.reason, warning=True))
    # Failed or deferred by an open breaker: within the deadline the step waits and
    # retries; past it the saga stops and waits for a person. Never compensated.
    transient = isinstance(outcome, Failed | Deferred)
    if step.deadline and transient and _past_deadline(order, policy, now):
        seconds = int(policy.deadline.total_seconds())
        why = f"{step.name}: saga deadline of {seconds}s exceeded; last error: {outcome.reason}"
        # Stopped, in doubt: a retry replays the step, a cancellation settles it first.
        stopped = _put(
            order, step.condition, ConditionStatus.UNKNOWN, conditions.DEADLINE_EXCEEDED, why, now
        )
        message = f"{why}. The saga stops here: retry or cancel the order."
        return _advance(order, stopped, now, Note("DeadlineExceeded", message, warning=True))
    return _retry(order, step.condition, step.name, outcome, policy, now)


def _apply_compensating(
    order: Order, call: Call, outcome: Outcome, policy: Policy, now: datetime
) -> Advance:
    settling = steps.step_named(call.name)
    if settling is not None:
        # Settling a step in doubt: its own outcome, but no phase change.
        if isinstance(outcome, Succeeded):
            done, note = _complete(order, settling, outcome, now)
            return _advance(order, done, now, note)
        if isinstance(outcome, Rejected):
            never = _put(
                order, settling.condition, ConditionStatus.FALSE, "Rejected", outcome.reason, now
            )
            return _advance(order, never, now)
        return _retry(order, settling.condition, settling.name, outcome, policy, now)
    step, comp = next((s, c) for s, c in steps.COMPENSATIONS if c.name == call.name)
    if isinstance(outcome, Succeeded):
        what = steps.words(comp.done)
        undone = _put(order, step.condition, ConditionStatus.FALSE, "Compensated", f"{what}.", now)
        note = Note(comp.done, f"{what}: {comp.undoes(order.status)}.")
        return _advance(order, undone, now, note)
    if isinstance(outcome, Rejected):
        # The participant says there is nothing to undo (it lost or never had it):
        # nothing more can be done by retrying, so move on and leave a warning.
        undone = _put(
            order,
            step.condition,
            ConditionStatus.FALSE,
            conditions.COMPENSATION_REFUSED,
            outcome.reason,
            now,
        )
        note = Note("CompensationRejected", f"{comp.name}: {outcome.reason}", warning=True)
        return _advance(order, undone, now, note)
    return _retry(order, step.condition, comp.name, outcome, policy, now)


def _retry(
    order: Order,
    condition: str,
    name: str,
    outcome: Failed | Deferred,
    policy: Policy,
    now: datetime,
) -> Advance:
    """Stay in the phase; the step's condition says why and the operator comes back later."""
    reason = "CircuitOpen" if isinstance(outcome, Deferred) else "Retrying"
    # The condition keeps its status (Unknown for a step in flight, True for a step
    # whose compensation is retried): only its reason and message say why we wait.
    current = conditions.get(order.status, condition)
    value = current.status if current is not None else ConditionStatus.UNKNOWN
    status = _put(order, condition, value, reason, f"{name}: {outcome.reason}", now)
    gen = order.metadata.generation
    if order.status.phase in steps.COMPENSATING and _past_deadline(order, policy, now):
        # Compensation never gives up, but past the deadline a person should look.
        why = f"{name} keeps failing: {outcome.reason}"
        status = conditions.put(
            status,
            conditions.STALLED,
            ConditionStatus.TRUE,
            conditions.COMPENSATION_RETRYING,
            why,
            gen,
            now,
        )
    return Advance(conditions.summarised(status, gen, now, keep_stalled=True), retry=True)


# --- Helpers -----------------------------------------------------------------------


def _confirmed_note() -> Note:
    """The note of the saga's success, naming in words every step that led to Confirmed."""
    confirmed = steps.FORWARD.index(Phase.CONFIRMED)
    done = [
        steps.words(s.done) for s in steps.STEPS if steps.FORWARD.index(steps.then(s)) <= confirmed
    ]
    listed = ", ".join(done[:-1]) + " and " + done[-1] if len(done) > 1 else done[0]
    return Note("OrderConfirmed", f"{listed[0]}{listed[1:].lower()}.")


_CONFIRMED: Final = _confirmed_note()


def _call(order: Order, step: Step) -> Call:
    return Call(step.name, step.request(order.metadata.uid, order.spec, order.status))


def _past_deadline(order: Order, policy: Policy, now: datetime) -> bool:
    """Whether the saga has run longer than the policy allows."""
    return now >= deadline_of(order, policy, now)


def deadline_of(order: Order, policy: Policy, now: datetime) -> datetime:
    """When the saga's deadline passes (``now`` stands in for a missing creation time).

    The clock starts when the saga started (its SagaStarted note), not when the
    Order was created: an order applied while the operator was down gets its full
    time. Without that note (a history cut short), creation is the start. A retry
    starts it again (``status.lastRetry.resumedAt``): the fresh deadline.
    """
    created = order.metadata.creation_timestamp or now
    started = next(
        (
            datetime.fromisoformat(e.time)
            for e in order.status.history or ()
            if e.type == "SagaStarted"
        ),
        created,
    )
    retried = order.status.last_retry
    if retried is not None and retried.resumed_at:
        started = max(started, datetime.fromisoformat(retried.resumed_at))
    return started + policy.deadline


def _cancel_rejected(status: OrderStatus) -> bool:
    return any(e.type == "CancellationRejected" for e in status.history or ())


def _pending_compensation(order: Order) -> Call | None:
    """The next call of the compensation: settle a step in doubt, or undo a done one."""
    status = order.status
    for step, comp in steps.COMPENSATIONS:
        cond = conditions.get(status, step.condition)
        if cond is None or cond.status == ConditionStatus.FALSE:
            continue
        if cond.status == ConditionStatus.UNKNOWN:
            return _call(order, step)
        return Call(comp.name, comp.request(order.metadata.uid, order.spec, status))
    return None


def _finish_compensation(order: Order, now: datetime) -> Advance:
    """Cancelled or Failed, and, when a compensation was refused, not a word of "undone"."""
    status = order.status
    left = conditions.not_undone(status)
    if status.phase == Phase.CANCELLING:
        cancelled = status.model_copy(update={"phase": Phase.CANCELLED})
        if left:
            message = f"The order was cancelled, but not everything was undone: {left}."
            return _advance(order, cancelled, now, Note("OrderCancelled", message, warning=True))
        message = "The order was cancelled; completed steps were undone."
        return _advance(order, cancelled, now, Note("OrderCancelled", message))
    reason = status.failure_reason or "the saga failed"
    if left:
        reason = f"{reason}; and not everything was undone: {left}"
    failed = status.model_copy(update={"phase": Phase.FAILED})
    return _advance(order, failed, now, Note("OrderFailed", reason, warning=True))


def _complete(
    order: Order, step: Step, outcome: Succeeded, now: datetime
) -> tuple[OrderStatus, Note]:
    """The step done: its condition True, the fields its ids fill, and its note."""
    ids = step.keeps(outcome.answer, order.spec)
    done = _put(order, step.condition, ConditionStatus.TRUE, "Succeeded", "", now)
    done = done.model_copy(update=step.fills(ids, timestamp(now)))
    what = ", ".join(f"{k} {v}" for k, v in sorted(ids.items()))
    return done, Note(step.done, f"{steps.words(step.done)}: {what}.", data=ids)


def _put(
    order: Order, type_: str, value: ConditionStatus, reason: str, message: str, now: datetime
) -> OrderStatus:
    return conditions.put(
        order.status, type_, value, reason, message, order.metadata.generation, now
    )


def _advance(order: Order, status: OrderStatus, now: datetime, *notes: Note) -> Advance:
    """A new status with the notes appended to its history and the summary conditions."""
    phase = status.phase
    assert phase is not None
    entries = list(status.history or ())
    entries += [
        HistoryEntry(
            type=note.reason,
            time=instant(now),
            phase=phase,
            message=clip(note.message, MESSAGE_LENGTH),
            data=dict(note.data) or None,
        )
        for note in notes
    ]
    status = status.model_copy(update={"history": entries[-HISTORY_LIMIT:]})
    return Advance(conditions.summarised(status, order.metadata.generation, now), notes)
