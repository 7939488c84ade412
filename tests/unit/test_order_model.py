from __future__ import annotations

from datetime import UTC, datetime

import pydantic
import pytest

from korder.domain import order, saga
from korder.domain.order import OrderSpec, Phase
from tests.support.orders import VALID_SPEC, resource, spec


def test_valid_spec_round_trips_in_camel_case() -> None:
    model = OrderSpec.model_validate(VALID_SPEC)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["shippingAddress"]["postalCode"] == "N1 9GU"
    assert dumped["currency"] == "USD"
    assert dumped["items"][0]["productId"] == "PROD-001"


@pytest.mark.parametrize(
    "bad",
    [
        spec(items=[]),
        spec(items=[{**VALID_SPEC["items"][0], "price": 19.99}]),
        spec(items=[{**VALID_SPEC["items"][0], "price": "1.999"}]),
        spec(items=[{**VALID_SPEC["items"][0], "quantity": 1001}]),
        spec(paymentMethod="bitcoin"),
        spec(currency="usd"),
        spec(unknownField=1),
    ],
)
def test_invalid_specs_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        OrderSpec.model_validate(bad)


def test_admit_puts_a_new_order_in_pending_with_its_total() -> None:
    now = datetime.now(UTC)
    new = resource(VALID_SPEC, generation=3, created=now)
    move = saga.next_move(new, now)
    assert isinstance(move, saga.Advance)
    status = move.status
    assert status.phase == Phase.PENDING
    assert status.total == "44.98"
    assert status.observed_generation == 3


def test_a_history_time_has_milliseconds_and_the_rest_whole_seconds() -> None:
    # A timeline says how long each step took: most take less than a second.
    now = datetime(2026, 12, 2, 5, 6, 48, 393512, tzinfo=UTC)
    assert order.instant(now) == "2026-12-02T05:06:48.393Z"
    assert datetime.fromisoformat(order.instant(now)) == now.replace(microsecond=393000)
    assert order.timestamp(now) == "2026-12-02T05:06:48Z"
