"""The chaos run's proxies do what the faults claim: a cut holds bytes, a drop silences.

On loopback, against an echo server and a tiny HTTP participant in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from aiohttp import web

from chaos.proxies import CallGate, Partition, call_kind


@contextlib.asynccontextmanager
async def _echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def _roundtrip(
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes, seconds: float
) -> bytes | None:
    reader, writer = streams
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(1024), seconds)
    except TimeoutError:
        return None


async def _close(
    partition: Partition, *connections: tuple[asyncio.StreamReader, asyncio.StreamWriter]
) -> None:
    for _, writer in connections:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    await partition.close()


async def test_a_cut_holds_the_bytes_and_a_heal_lets_them_through() -> None:
    async with _echo() as port:
        partition = Partition("127.0.0.1", port)
        connection = await asyncio.open_connection("127.0.0.1", await partition.start())
        assert await _roundtrip(connection, b"before", 2.0) == b"before"
        partition.cut()
        assert await _roundtrip(connection, b"during", 0.3) is None  # held, not closed
        partition.heal()
        assert await asyncio.wait_for(connection[0].read(1024), 2.0) == b"during"
        await _close(partition, connection)


async def test_a_dropping_heal_silences_old_connections_and_serves_new_ones() -> None:
    async with _echo() as port:
        partition = Partition("127.0.0.1", port)
        proxy = await partition.start()
        old = await asyncio.open_connection("127.0.0.1", proxy)
        assert await _roundtrip(old, b"ping", 2.0) == b"ping"
        partition.cut()
        partition.heal(drop=True)
        assert await _roundtrip(old, b"lost", 0.3) is None
        new = await asyncio.open_connection("127.0.0.1", proxy)
        assert await _roundtrip(new, b"fresh", 2.0) == b"fresh"
        await _close(partition, old, new)


def test_the_kind_of_a_call_is_the_step_in_its_key() -> None:
    assert call_kind("0b1c-uid/capture-payment") == "capture-payment"
    assert call_kind(None) == "unkeyed"


async def test_the_gate_hands_over_after_the_answer_and_before_the_caller_hears() -> None:
    effects: list[str] = []
    heard_at_hook: list[list[str]] = []

    async def charge(_: web.Request) -> web.Response:
        effects.append("charge")
        return web.json_response({"paymentId": "pay-1"}, status=201)

    app = web.Application()
    app.router.add_post("/payment/charges", charge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    upstream = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def hook(kind: str) -> None:
        heard_at_hook.append([kind, *effects])

    gate = CallGate(upstream, hook)
    await gate.start()
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{gate.url}/payment/charges", headers={"Idempotency-Key": "u1/capture-payment"}
        )
    assert answer.status_code == 201
    assert answer.json() == {"paymentId": "pay-1"}
    assert heard_at_hook == [["capture-payment", "charge"]]  # the effect came first
    assert gate.calls == {"capture-payment": 1}
    await gate.close()
    await runner.cleanup()
