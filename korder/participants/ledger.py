"""The ledger of a participant: one entry per effect, never one per replay.

Each service appends here when it changes something (reserve, release, charge,
refund, ship), inside the transaction of the effect itself, so an effect is never
kept without its entry nor an entry without its effect. ``GET {service}/ledger``
returns it, so a test counts effects by ``type`` and ``orderId`` and proves that
retries and restarts did not repeat one. Kept in :mod:`.store`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def append(
    db: sqlite3.Connection, service: str, key: str, type_: str, order_id: str, **details: Any
) -> None:
    """Add an entry to ``service``'s ledger, in the caller's transaction."""
    entry = {"key": key, "type": type_, "orderId": order_id, **details}
    db.execute(
        "INSERT INTO ledger (service, order_id, entry) VALUES (?, ?, ?)",
        (service, order_id, json.dumps(entry)),
    )


def entries(db: sqlite3.Connection, service: str, order_id: str | None = None) -> list[Any]:
    """``service``'s entries in the order they happened (optionally of one order)."""
    if order_id is None:
        rows = db.execute("SELECT entry FROM ledger WHERE service = ? ORDER BY seq", (service,))
    else:
        rows = db.execute(
            "SELECT entry FROM ledger WHERE service = ? AND order_id = ? ORDER BY seq",
            (service, order_id),
        )
    return [json.loads(entry) for (entry,) in rows]
