"""``CHAOS_MODE=true``: participant calls fail at random and slow down.

An httpx transport around the real one, installed by :mod:`.calls` when the
setting is on. Half of the injected failures happen before the request leaves (the
participant never sees it), half after the participant answered (the effect
happened, the answer is lost): the second kind is what proves that idempotency
keys make a retry safe. ``KORDER_CHAOS_RATE`` is the share of calls that fail,
``KORDER_CHAOS_SEED`` makes a run repeatable, ``KORDER_CHAOS_LATENCY_MS`` bounds
the latency added to every call.
"""

from __future__ import annotations

import asyncio
import random

import httpx


class ChaosTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, rate: float, latency_ms: int, rng: random.Random
    ) -> None:
        self._inner = inner
        self._rate = rate
        self._latency = latency_ms / 1000
        self._rng = rng

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._latency:
            await asyncio.sleep(self._rng.uniform(0, self._latency))
        roll = self._rng.random()
        if roll < self._rate / 2:
            raise httpx.ConnectError("chaos: the request was dropped", request=request)
        response = await self._inner.handle_async_request(request)
        if roll < self._rate:
            await response.aclose()
            raise httpx.ReadError("chaos: the answer was lost", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
