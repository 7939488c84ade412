"""Helpers for tests that speak to the reference participants' app in process."""

from __future__ import annotations

from typing import Any

import httpx


def key(value: str) -> dict[str, str]:
    """The headers of a write with this Idempotency-Key."""
    return {"Idempotency-Key": value}


async def ledger(client: httpx.AsyncClient, service: str, base: str = "") -> list[dict[str, Any]]:
    """A service's ledger: one entry per effect, never one per replay."""
    response = await client.get(f"{base}/{service}/ledger")
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()
    return entries
