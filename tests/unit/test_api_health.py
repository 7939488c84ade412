"""The facade's readiness (korder.api.routes.health.Readiness): one look per period."""

from __future__ import annotations

import asyncio
import logging

import pytest

from korder.api.routes.health import Readiness
from korder.kube import orders


class Server:
    """The API server as the probe sees it: counts looks, answers or not."""

    def __init__(self) -> None:
        self.looks, self.up = 0, True
        self.gate = asyncio.Event()
        self.gate.set()

    async def look(self) -> None:
        self.looks += 1
        await self.gate.wait()
        if not self.up:
            raise orders.Unavailable("connection refused")


async def test_probes_within_the_period_share_one_look_and_a_stale_answer_looks_again() -> None:
    now = [100.0]
    readiness, server = Readiness(5.0, clock=lambda: now[0]), Server()
    server.gate.clear()
    probes = [asyncio.create_task(readiness.reachable(server.look)) for _ in range(10)]
    await asyncio.sleep(0)
    server.gate.set()
    assert await asyncio.gather(*probes) == [True] * 10
    assert server.looks == 1, "concurrent probes wait for the look under way"
    now[0] += 4.9
    assert await readiness.reachable(server.look)
    assert server.looks == 1
    server.up = False
    now[0] += 0.2
    assert not await readiness.reachable(server.look)
    assert server.looks == 2


async def test_a_change_of_readiness_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    readiness, server = Readiness(0.0), Server()
    server.up = False
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert not await readiness.reachable(server.look)
        server.up = True
        for _ in range(3):
            assert await readiness.reachable(server.look)
    assert server.looks == 6, "0 s: every probe looks"
    said = [r.getMessage() for r in caplog.records if r.name == "korder.api.routes.health"]
    assert said == [
        "not ready: the Kubernetes API server did not answer: connection refused",
        "ready again: the Kubernetes API server answers",
    ]
