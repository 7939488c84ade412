"""Which action each phase allows, and which phases end a wait (korder.domain.rules)."""

from __future__ import annotations

from typing import Any

import pytest

from korder.domain.actions import Action
from korder.domain.order import Carrier, Order, Phase
from korder.domain.rules import OUTCOMES, refusal, settled
from tests.support.orders import resource, spec

EXPRESS, OVERNIGHT = Carrier.EXPRESS, Carrier.OVERNIGHT


def _order(phase: Phase | None, **changes: Any) -> Order:
    return resource(spec(**changes), status={"phase": phase} if phase else {})


@pytest.mark.parametrize("phase", list(Phase))
def test_process_only_from_confirmed(phase: Phase) -> None:
    allowed = refusal(Action.PROCESS, _order(phase)) is None
    assert allowed == (phase is Phase.CONFIRMED)


@pytest.mark.parametrize("phase", list(Phase))
def test_fulfil_only_from_processing(phase: Phase) -> None:
    allowed = refusal(Action.FULFILL, _order(phase), EXPRESS) is None
    assert allowed == (phase is Phase.PROCESSING)


@pytest.mark.parametrize("phase", list(Phase))
def test_cancel_until_fulfilled_unless_failing(phase: Phase) -> None:
    allowed = refusal(Action.CANCEL, _order(phase)) is None
    assert allowed == (phase not in {Phase.FULFILLED, Phase.FAILED, Phase.COMPENSATING})


@pytest.mark.parametrize("phase", list(Phase))
def test_update_until_the_order_is_done(phase: Phase) -> None:
    allowed = refusal(Action.UPDATE, _order(phase)) is None
    assert allowed == (phase not in {Phase.FULFILLED, Phase.FAILED, Phase.CANCELLED})


def test_a_requested_fulfilment_stops_updates_and_cancellation() -> None:
    shipping = _order(Phase.PROCESSING, fulfillment={"carrier": "EXPRESS"})
    assert refusal(Action.UPDATE, shipping)
    assert refusal(Action.CANCEL, shipping)
    assert refusal(Action.FULFILL, shipping, EXPRESS) is None, "the same request again"
    assert refusal(Action.FULFILL, shipping, OVERNIGHT)


def test_a_requested_cancellation_stops_the_other_actions() -> None:
    cancelling = _order(Phase.CONFIRMED, cancelRequested=True)
    for action in (Action.UPDATE, Action.PROCESS, Action.FULFILL):
        assert refusal(action, cancelling, EXPRESS), action
    assert refusal(Action.CANCEL, cancelling) is None


def test_an_order_without_a_phase_is_pending() -> None:
    assert "Pending" in str(refusal(Action.PROCESS, _order(None)))


@pytest.mark.parametrize(
    ("action", "phase", "done"),
    [
        (Action.CREATE, Phase.PENDING, False),
        (Action.CREATE, Phase.PROCESSING_PAYMENT, False),
        (Action.CREATE, Phase.COMPENSATING, False),
        (Action.CREATE, Phase.CONFIRMED, True),
        (Action.CREATE, Phase.FAILED, True),
        (Action.PROCESS, Phase.CONFIRMED, False),
        (Action.PROCESS, Phase.PROCESSING, True),
        (Action.FULFILL, Phase.PROCESSING, False),
        (Action.FULFILL, Phase.FULFILLED, True),
        (Action.CANCEL, Phase.CANCELLING, False),
        (Action.CANCEL, Phase.CANCELLED, True),
    ],
)
def test_settled(action: Action, phase: Phase, done: bool) -> None:
    assert settled(action, _order(phase)) is done


def test_every_action_a_stage_waits_for_is_answered_by_a_later_phase() -> None:
    for action, phases in OUTCOMES.items():
        assert {Phase.FAILED, Phase.CANCELLED} <= phases, action
    assert Phase.CONFIRMED not in OUTCOMES[Action.PROCESS]
    assert Phase.PROCESSING not in OUTCOMES[Action.FULFILL]


def _stopped(phase: Phase, condition: str, **changes: Any) -> Order:
    stopped = {
        "type": condition,
        "status": "Unknown",
        "reason": "DeadlineExceeded",
        "message": "saga deadline of 60s exceeded",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    return resource(spec(**changes), status={"phase": phase, "conditions": [stopped]})


@pytest.mark.parametrize("phase", list(Phase))
def test_retry_only_a_stalled_saga(phase: Phase) -> None:
    # Not stalled: nothing to retry, whatever the phase.
    reason = refusal(Action.RETRY, _order(phase))
    assert reason is not None
    assert str(phase if phase else Phase.PENDING) in reason


@pytest.mark.parametrize(
    ("phase", "condition"),
    [
        (Phase.RESERVING_INVENTORY, "InventoryReserved"),
        (Phase.PROCESSING_PAYMENT, "PaymentCaptured"),
    ],
)
def test_retry_a_step_stopped_on_its_deadline(phase: Phase, condition: str) -> None:
    assert refusal(Action.RETRY, _stopped(phase, condition)) is None
    cancelled = _stopped(phase, condition, cancelRequested=True)
    assert "cancelled" in str(refusal(Action.RETRY, cancelled))


def test_retry_a_compensation_that_keeps_failing_but_not_one_refused() -> None:
    retrying = {
        "type": "Stalled",
        "status": "True",
        "reason": "CompensationRetrying",
        "message": "release-inventory keeps failing: 503",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    compensating = resource(spec(), status={"phase": "Compensating", "conditions": [retrying]})
    assert refusal(Action.RETRY, compensating) is None
    refused = {
        "type": "InventoryReserved",
        "status": "False",
        "reason": "CompensationRejected",
        "message": "no such reservation",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    incomplete = resource(spec(), status={"phase": "Failed", "conditions": [refused]})
    assert "refused the compensation" in str(refusal(Action.RETRY, incomplete))


def test_a_permanent_failure_is_not_retryable_and_says_why() -> None:
    failed = resource(spec(), status={"phase": "Failed", "failureReason": "payment declined"})
    reason = str(refusal(Action.RETRY, failed))
    assert "payment declined" in reason
    assert "new order" in reason
