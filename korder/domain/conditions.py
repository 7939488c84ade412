"""An Order's conditions: kstatus' Ready, Reconciling and Stalled, and one per saga step.

Called by the state machine (:mod:`.saga`) on every status it returns. The three
kstatus conditions summarise the phase, so ``kubectl wait --for=condition=Ready``
and kstatus-aware tools (Argo CD, Flux, kpt) read an order without knowing the
saga; each step's condition is that step's durable state (see :mod:`.saga`).
All in the ``metav1.Condition`` shape. Pure code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from korder.domain import steps
from korder.domain.order import (
    CONDITION_MESSAGE_LENGTH,
    Condition,
    ConditionStatus,
    OrderStatus,
    Phase,
    clip,
    timestamp,
)

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"

#: The reason of a step's condition when its compensation was refused: the effect may
#: still stand at the participant, and only a person can settle it.
COMPENSATION_REFUSED: Final = "CompensationRejected"

#: The reason of a forward step's condition (Unknown) once the saga stopped on it past its
#: deadline, and of the Stalled condition it implies: the saga waits for a person to
#: retry or cancel the order (see :mod:`.saga`).
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
#: The reason of Stalled while a compensation keeps failing past the deadline.
COMPENSATION_RETRYING: Final = "CompensationRetrying"

#: A stable order keeps `kubectl get -o yaml` diffs readable.
ORDER: Final = (READY, RECONCILING, STALLED, *(s.condition for s in steps.STEPS))


def get(status: OrderStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions or () if c.type == type_), None)


def put(
    status: OrderStatus,
    type_: str,
    value: ConditionStatus,
    reason: str,
    message: str,
    gen: int,
    now: datetime,
) -> OrderStatus:
    """Set one condition; lastTransitionTime moves only when its status changes."""
    old = get(status, type_)
    since = old.last_transition_time if old is not None and old.status == value else timestamp(now)
    new = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=clip(message, CONDITION_MESSAGE_LENGTH),
        observed_generation=gen,
        last_transition_time=since,
    )
    others = [c for c in status.conditions or () if c.type != type_]
    ordered = sorted([*others, new], key=lambda c: ORDER.index(c.type))
    return status.model_copy(update={"conditions": ordered})


def summarised(
    status: OrderStatus, gen: int, now: datetime, *, keep_stalled: bool = False
) -> OrderStatus:
    """Ready, Reconciling and Stalled as the phase implies, and observedGeneration.

    ``keep_stalled`` leaves a Stalled=True that a retry set (a compensation that keeps
    failing past the deadline) as it is.
    """
    phase = status.phase
    assert phase is not None
    ready = phase in steps.READY
    status = put(
        status,
        READY,
        ConditionStatus.TRUE if ready else ConditionStatus.FALSE,
        str(phase),
        "The order is confirmed." if ready else f"The order is {phase}.",
        gen,
        now,
    )
    busy = _busy(status, phase)
    status = put(
        status,
        RECONCILING,
        ConditionStatus.TRUE if busy else ConditionStatus.FALSE,
        str(phase),
        f"The saga is at {phase}." if busy else "",
        gen,
        now,
    )
    left = not_undone(status)
    if phase in steps.TERMINAL and left:
        # A saga cannot finish this by itself: say so where a person and an alert look.
        why = f"Not undone: {left}."
        status = put(status, STALLED, ConditionStatus.TRUE, "CompensationIncomplete", why, gen, now)
    elif phase == Phase.FAILED:
        # kstatus reads Stalled=True as "failed": tools waiting for Ready can stop.
        why = status.failure_reason or ""
        status = put(status, STALLED, ConditionStatus.TRUE, "OrderFailed", why, gen, now)
    elif (step := stopped(status)) is not None:
        # The step's condition is the durable state; Stalled says it where people look.
        cond = get(status, step.condition)
        why = f"{cond.message if cond else step.name}. Retry or cancel the order."
        status = put(status, STALLED, ConditionStatus.TRUE, DEADLINE_EXCEEDED, why, gen, now)
    elif not keep_stalled:
        status = put(status, STALLED, ConditionStatus.FALSE, str(phase), "", gen, now)
    return status.model_copy(update={"observed_generation": gen})


def not_undone(status: OrderStatus) -> str:
    """The steps whose compensation was refused, with the participant's words; "" if none."""
    refused = [
        f"{compensation.name} ({condition.message})"
        for step, compensation in steps.COMPENSATIONS
        if (condition := get(status, step.condition)) is not None
        and condition.reason == COMPENSATION_REFUSED
    ]
    return ", ".join(refused)


def stopped(status: OrderStatus) -> steps.Step | None:
    """The forward step the saga stopped on past its deadline, or None.

    Such a step is in doubt (Unknown): the saga no longer calls, and waits for a
    retry (which resumes it) or a cancellation (which settles and undoes it).
    """
    stage = steps.stage_in(status.phase) if status.phase else None
    if not isinstance(stage, steps.Step):
        return None
    cond = get(status, stage.condition)
    if cond is None or cond.status != ConditionStatus.UNKNOWN:
        return None
    return stage if cond.reason == DEADLINE_EXCEEDED else None


def stalled_reason(status: OrderStatus) -> str | None:
    """The reason of Stalled=True, or None when the order is not stalled."""
    cond = get(status, STALLED)
    return cond.reason if cond is not None and cond.status == ConditionStatus.TRUE else None


def _busy(status: OrderStatus, phase: Phase) -> bool:
    """Whether the saga is working (Reconciling): not done, and not waiting for the client."""
    if phase in steps.TERMINAL or stopped(status) is not None:
        return False
    stage = steps.stage_in(phase)
    if isinstance(stage, steps.Gate):
        return False
    if isinstance(stage, steps.Step) and stage.waits_for is not None:
        return get(status, stage.condition) is not None  # started: the client asked
    return True
