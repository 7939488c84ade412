"""Participant calls against the reference participants' app, in process."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from korder.outcomes import Deferred, Failed, Rejected, Succeeded
from korder.participant_clients import backoff, calls, chaos, circuitbreaker
from korder.participants.app import create_app
from korder.settings import Settings

RESERVE = {"orderId": "o-1", "items": [{"productId": "PROD-001", "quantity": 1}]}


@dataclass
class Rig:
    http: httpx.AsyncClient
    inventory: calls.Participant
    #: The waits between attempts, recorded instead of slept.
    slept: list[float]

    async def ledger(self) -> list[dict[str, object]]:
        entries: list[dict[str, object]] = (await self.http.get("/inventory/ledger")).json()
        return entries

    async def faults(self, **switches: bool) -> None:
        await self.http.put("/inventory/faults", json=switches)


def make_rig(transport: httpx.AsyncBaseTransport, timeout: float = 5.0) -> Rig:
    http = httpx.AsyncClient(transport=transport, base_url="http://participants")
    breaker = circuitbreaker.CircuitBreaker("inventory", window=10, min_calls=4, reset_timeout=60)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    participant = calls.Participant(
        "inventory",
        "http://participants/inventory",
        http,
        breaker,
        timeout=timeout,
        attempts=3,
        retry_base=0.5,
        sleep=sleep,
    )
    return Rig(http, participant, slept)


def app_transport() -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_app(Settings(payment_decline_over=Decimal(100))))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = make_rig(app_transport())
    yield r
    await r.http.aclose()


async def test_done_carries_the_answer(rig: Rig) -> None:
    result = await rig.inventory.post("reservations", "k1", RESERVE)
    assert isinstance(result, Succeeded)
    assert result.answer["reservationId"].startswith("res-")
    assert rig.slept == [], "a call that succeeds at once waits for nothing"
    assert rig.inventory.breaker.state() == circuitbreaker.State.CLOSED


async def test_a_business_refusal_is_refused_and_not_a_breaker_failure(rig: Rig) -> None:
    body = {"orderId": "o-1", "items": [{"productId": "NOPE", "quantity": 1}]}
    for n in range(6):
        result = await rig.inventory.post("reservations", f"k{n}", body)
        assert result == Rejected(409, "out_of_stock", "Not enough stock of NOPE.")
    assert rig.inventory.breaker.state() == circuitbreaker.State.CLOSED


async def test_an_outage_is_unavailable_after_the_attempts_then_opens_the_breaker(
    rig: Rig,
) -> None:
    await rig.faults(unavailable=True)
    first = await rig.inventory.post("reservations", "k1", RESERVE)
    assert isinstance(first, Failed)
    assert "HTTP 503" in first.reason
    assert "3 attempts" in first.reason
    # Two waits between three attempts, on the backoff curve (equal jitter, base 0.5 s).
    assert len(rig.slept) == 2
    assert 0.25 <= rig.slept[0] <= 0.5
    assert 0.5 <= rig.slept[1] <= 1.0
    second = await rig.inventory.post("reservations", "k1", RESERVE)
    # The 4th attempt opened the breaker; the 5th was never made.
    assert isinstance(second, Deferred)
    assert second.retry_after > 0
    assert rig.inventory.breaker.state() == circuitbreaker.State.OPEN
    await rig.faults(unavailable=False)
    assert await rig.ledger() == []


async def test_every_call_is_under_a_timeout() -> None:
    rig = make_rig(app_transport(), timeout=0.05)
    rig.inventory.attempts = 1
    await rig.faults(holdResponses=True)
    result = await rig.inventory.post("reservations", "k1", RESERVE)
    assert isinstance(result, Failed)
    assert "TimeoutError" in result.reason
    # The effect happened; a retry under the same key replays it, held or not.
    again = await rig.inventory.post("reservations", "k1", RESERVE)
    await rig.faults(holdResponses=False)
    assert isinstance(again, Succeeded)
    assert [e["type"] for e in await rig.ledger()] == ["reserve"]
    await rig.http.aclose()


class Counting(httpx.AsyncBaseTransport):
    """Counts the requests that reach the participants."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)


async def test_chaos_loses_calls_but_never_repeats_an_effect() -> None:
    inner = app_transport()
    counting = Counting(inner)
    transport = chaos.ChaosTransport(counting, rate=0.5, latency_ms=0, rng=random.Random(7))
    rig = make_rig(transport)
    rig.inventory.breaker = circuitbreaker.CircuitBreaker("inventory", min_calls=1000)
    orders = 40
    for n in range(orders):
        for _ in range(50):  # the saga retries until it is done; a bound, not a hope
            result = await rig.inventory.post("reservations", f"order-{n}", RESERVE)
            if isinstance(result, Succeeded):
                break
        else:
            raise AssertionError(f"order-{n} never got through")
    # Chaos lost answers whose effect had happened: the same request reached the
    # participant again (at rate 0.5 that happens for any seed) ...
    assert counting.requests > orders
    # ... and each order's key still has exactly one effect.
    entries = await make_rig(inner).ledger()
    assert sorted(str(e["key"]) for e in entries) == sorted(f"order-{n}" for n in range(orders))
    await rig.http.aclose()


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff.delay(n, base=1.0, cap=30.0, rng=rng) for n in range(10)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(15.0 <= d <= 30.0 for d in delays[5:])
    assert len(set(delays)) == len(delays), "jitter spreads equal attempts"
    # Equal jitter: never less than half the bound, whatever the draw.
    low = random.Random()
    low.uniform = lambda a, b: a  # type: ignore[method-assign]
    assert backoff.delay(2, base=1.0, cap=30.0, rng=low) == 2.0
    assert backoff.delay(10_000, base=1.0, cap=30.0, rng=rng) <= 30.0
