"""Money as exact decimals, never floats.

Amounts travel as decimal strings with at most two fraction digits (``"19.99"``):
that is the Order schema's pattern, the REST API's format and what the operator
writes into ``status.total``. Inside Python they are :class:`decimal.Decimal`.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Final

#: A non-negative amount with at most two fraction digits, at most 10 integer digits.
AMOUNT_PATTERN: Final = r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$"
_CENT: Final = Decimal("0.01")


def parse(amount: str) -> Decimal:
    """The exact value of a decimal amount string (already validated by the schema)."""
    return Decimal(amount)


def format_amount(amount: Decimal) -> str:
    """An amount as the schema writes it: two fraction digits, no exponent."""
    return f"{amount.quantize(_CENT):f}"


def line_total(price: str, quantity: int) -> Decimal:
    return parse(price) * quantity


def order_total(lines: Iterable[tuple[str, int]]) -> str:
    """The sum of price x quantity over the lines, formatted as an amount."""
    return format_amount(sum((line_total(p, q) for p, q in lines), Decimal(0)))
