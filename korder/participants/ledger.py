"""The ledger of a participant: one entry per effect, never one per replay.

Each service appends here when it changes something (reserve, release, charge,
refund, ship); ``GET {service}/ledger`` returns it, so a test counts effects by
``type`` and ``orderId`` and proves that retries and restarts did not repeat one.
"""

from __future__ import annotations

from typing import Any


class Ledger:
    """An append-only list of effects, in the order they happened."""

    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []

    def append(self, key: str, type_: str, order_id: str, **details: Any) -> None:
        self._entries.append({"key": key, "type": type_, "orderId": order_id, **details})

    def entries(self, order_id: str | None = None) -> list[dict[str, Any]]:
        return [dict(e) for e in self._entries if order_id is None or e["orderId"] == order_id]
