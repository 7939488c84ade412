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
