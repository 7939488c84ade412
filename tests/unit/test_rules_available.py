"""The actions an order offers now (korder.domain.rules.available), phase by phase."""

from __future__ import annotations

from typing import Any

import pytest

from korder.domain.actions import Action
from korder.domain.order import Order, Phase
from korder.domain.rules import available, refusal
from tests.support.orders import resource, spec

P, F, C = Action.PROCESS, Action.FULFILL, Action.CANCEL


def _order(phase: Phase | None, **changes: Any) -> Order:
    return resource(spec(**changes), status={"phase": phase} if phase else {})


@pytest.mark.parametrize(
    ("phase", "offered"),
    [
        (None, [C]),
        (Phase.PENDING, [C]),
        (Phase.RESERVING_INVENTORY, [C]),
        (Phase.PROCESSING_PAYMENT, [C]),
        (Phase.CONFIRMED, [P, C]),
        (Phase.PROCESSING, [F, C]),
        (Phase.FULFILLED, []),
        (Phase.COMPENSATING, []),
        (Phase.FAILED, []),
        (Phase.CANCELLING, []),
        (Phase.CANCELLED, []),
    ],
)
def test_each_phase_offers_what_its_rules_allow(phase: Phase | None, offered: list[Action]) -> None:
    assert available(_order(phase)) == offered


def test_what_was_asked_for_already_is_not_offered_again() -> None:
    assert available(_order(Phase.CONFIRMED, processRequested=True)) == [C]
    shipping = _order(Phase.PROCESSING, processRequested=True, fulfillment={"carrier": "EXPRESS"})
    assert available(shipping) == [], "being shipped: neither again nor a cancellation"
    assert available(_order(Phase.CONFIRMED, cancelRequested=True)) == []


@pytest.mark.parametrize("phase", list(Phase))
def test_an_offered_action_is_one_the_rules_accept(phase: Phase) -> None:
    order = _order(phase)
    for action in available(order):
        assert refusal(action, order) is None
        assert action not in (Action.CREATE, Action.UPDATE)


def test_a_step_stalled_on_its_deadline_offers_a_retry_and_a_cancel() -> None:
    # The console's Retry button: offered exactly where the rules accept a retry.
    stalled = resource(
        spec(),
        status={
            "phase": Phase.PROCESSING_PAYMENT,
            "conditions": [
                {
                    "type": "PaymentCaptured",
                    "status": "Unknown",
                    "reason": "DeadlineExceeded",
                    "message": "saga deadline of 60s exceeded",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
    )
    assert available(stalled) == [C, Action.RETRY]
    assert Action.RETRY not in available(_order(Phase.PROCESSING_PAYMENT))
