from __future__ import annotations

import re
from decimal import Decimal

import pytest

from korder.domain import money


def test_total_is_exact() -> None:
    # 0.1 + 0.2 is not 0.3 in floats; it must be here.
    assert money.order_total([("0.10", 1), ("0.20", 1)]) == "0.30"
    assert money.order_total([("19.99", 3), ("5", 2)]) == "69.97"


def test_format_has_two_fraction_digits() -> None:
    assert money.format_amount(Decimal("5")) == "5.00"
    assert money.format_amount(Decimal("1E+3")) == "1000.00"


@pytest.mark.parametrize("good", ["0", "0.5", "10.00", "9999999999.99"])
def test_pattern_accepts(good: str) -> None:
    assert re.fullmatch(money.AMOUNT_PATTERN, good)


@pytest.mark.parametrize("bad", ["1.999", "-1", "01", "1e3", "1.", ".5", "NaN", ""])
def test_pattern_rejects(bad: str) -> None:
    assert not re.fullmatch(money.AMOUNT_PATTERN, bad)
