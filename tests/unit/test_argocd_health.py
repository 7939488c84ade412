"""Argo CD's health check of an Order (manifests/argocd/health.lua), run in a real Lua.

Argo CD runs resource health checks in gopher-lua, a Lua 5.1; lupa's Lua 5.1 runs the
same script here. The Orders are made the way the operator makes them: each phase's
status summarised by :func:`korder.domain.conditions.summarised`, so the check is tested
against the conditions korder really writes, not against hand-written ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lupa import lua51

from korder.domain import conditions
from korder.domain.order import ConditionStatus, OrderStatus, Phase
from tests.support.orders import resource

SCRIPT = Path(__file__).resolve().parents[2] / "manifests" / "argocd" / "health.lua"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def health(order: dict[str, Any]) -> tuple[str, str]:
    """What Argo CD would show for ``order``: the status and the message."""
    lua = lua51.LuaRuntime()
    lua.globals().obj = lua.table_from(order, recursive=True)
    answer = lua.execute(SCRIPT.read_text())
    return str(answer["status"]), str(answer["message"])


#: A saga step's condition: its type, status and reason.
Step = tuple[str, ConditionStatus, str]
#: Shipment started: its step is in flight while the order is still Ready.
SHIPPING: Step = ("Shipped", ConditionStatus.UNKNOWN, "InProgress")
#: A refund the payment service refused: the charge may still stand.
REFUSED: Step = ("PaymentCaptured", ConditionStatus.TRUE, conditions.COMPENSATION_REFUSED)


def order_in(
    phase: Phase, *, generation: int = 1, step: Step | None = None, **status: Any
) -> dict[str, Any]:
    """An Order in ``phase`` as the operator would have written it, as Argo CD reads it."""
    summarised = OrderStatus(phase=phase, **status)
    if step is not None:
        summarised = conditions.put(summarised, *step, "", 1, NOW)
    summarised = conditions.summarised(summarised, 1, NOW)
    order = resource(generation=generation).model_copy(update={"status": summarised})
    body: dict[str, Any] = order.model_dump(mode="json", by_alias=True, exclude_none=True)
    return body


@pytest.mark.parametrize(
    ("phase", "extra", "expected"),
    [
        (Phase.PENDING, {}, "Progressing"),
        (Phase.RESERVING_INVENTORY, {}, "Progressing"),
        (Phase.PROCESSING_PAYMENT, {}, "Progressing"),
        (Phase.CONFIRMED, {}, "Healthy"),
        (Phase.PROCESSING, {}, "Healthy"),  # waiting for the client to ask for fulfilment
        (Phase.PROCESSING, {"step": SHIPPING}, "Progressing"),
        (Phase.FULFILLED, {}, "Healthy"),
        (Phase.COMPENSATING, {}, "Progressing"),
        (Phase.FAILED, {"failure_reason": "out of stock: PROD-999"}, "Degraded"),
        (Phase.CANCELLING, {}, "Progressing"),
        (Phase.CANCELLED, {}, "Healthy"),  # as its client asked
        (Phase.CANCELLED, {"step": REFUSED}, "Degraded"),  # a refund was refused
    ],
)
def test_each_phase_maps_to_the_health_its_conditions_say(
    phase: Phase, extra: dict[str, Any], expected: str
) -> None:
    status, message = health(order_in(phase, **extra))
    assert status == expected
    assert message


def test_a_failed_order_says_why() -> None:
    assert health(order_in(Phase.FAILED, failure_reason="card declined")) == (
        "Degraded",
        "card declined",
    )


def test_a_stalled_compensation_is_degraded_while_it_still_retries() -> None:
    order = order_in(Phase.COMPENSATING)
    for condition in order["status"]["conditions"]:
        if condition["type"] == conditions.STALLED:
            condition.update(status="True", reason="CompensationRetrying", message="refund fails")
    assert health(order) == ("Degraded", "refund fails")


def test_an_order_the_operator_has_not_seen_is_progressing() -> None:
    body: dict[str, Any] = resource().model_dump(mode="json", by_alias=True, exclude_none=True)
    body.pop("status", None)
    assert health(body)[0] == "Progressing"
    assert health({**body, "status": {}})[0] == "Progressing"


def test_a_status_older_than_the_spec_is_progressing() -> None:
    # Confirmed, but the spec changed since (generation 2) and the operator has not seen it.
    assert health(order_in(Phase.CONFIRMED, generation=2))[0] == "Progressing"
