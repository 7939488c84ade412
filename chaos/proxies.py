"""The two proxies the faults act through.

- :class:`Partition` sits between an operator and the API server at the TCP level
  (TLS passes through untouched). :meth:`Partition.cut` stops every byte both ways
  and leaves new connections hanging, as a network partition does: nothing is
  closed, so a watch goes silent instead of failing, which is the case an operator
  must notice by itself. :meth:`Partition.heal` lets the held bytes through, as
  TCP does once the partition ends; or, with ``drop``, lets new connections through
  and keeps the old ones silent for ever (a middlebox that lost its state and sends
  no reset): a watch on one of those ends only when its client gives up on it.
- :class:`CallGate` sits between the operators and the reference participants at
  the HTTP level. It counts every call by its kind (the step or compensation named
  in the Idempotency-Key, see :func:`korder.domain.steps.idempotency_key`), and
  after the participant answered, it may hand the moment to a hook before the
  answer goes back: that is how the operator is killed after a participant's
  effect and before the operator could write it down, for each kind of call.

Written here rather than taken from a proxy tool because both need a hook into
the run (the moment a call was answered, the cut and heal under the run's clock),
and each is a page of asyncio and aiohttp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)
_CHUNK = 65536


class Partition:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that a fault can cut and heal."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._open = asyncio.Event()
        self._open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Connections opened before the last dropping heal stay silent.
        self._generation = 0
        self._never = asyncio.Event()
        self.port = 0

    @property
    def cut_now(self) -> bool:
        return not self._open.is_set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def cut(self) -> None:
        self._open.clear()

    def heal(self, *, drop: bool = False) -> None:
        if drop:
            self._generation += 1
        self._open.set()

    async def healed(self) -> None:
        """Return once the connection is not cut (at once if it is not)."""
        await self._open.wait()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()  # a new connection during a cut hangs, as on a partition
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        generation = self._generation
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, generation)),
            asyncio.create_task(self._pump(up_reader, writer, generation)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._tasks.difference_update(pumps)
            for w in (writer, up_writer):
                w.close()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._open.wait()
                if generation != self._generation:
                    await self._never.wait()  # dropped: silent until the run ends
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    async def close(self) -> None:
        self._open.set()
        if self._server:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # each connection's own clean-up closes its two ends


#: After the participant answered a call of this kind, before the caller sees the answer.
AnsweredHook = Callable[[str], Awaitable[None]]


def call_kind(key: str | None) -> str:
    """The step or compensation a call belongs to, from its Idempotency-Key ``uid/name``."""
    if not key or "/" not in key:
        return "unkeyed"
    return key.rsplit("/", 1)[1]


class CallGate:
    """An HTTP proxy on 127.0.0.1 to the participants at ``upstream``."""

    def __init__(self, upstream: str, on_answered: AnsweredHook) -> None:
        self._upstream = upstream.rstrip("/")
        self._on_answered = on_answered
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.calls: Counter[str] = Counter()
        self.keys: Counter[str] = Counter()
        self.unanswered = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> int:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        key = request.headers.get("Idempotency-Key")
        kind = call_kind(key)
        if request.method != "GET":
            self.calls[kind] += 1
            if key:
                self.keys[key] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        try:
            async with self._session.request(
                request.method,
                self._upstream + request.rel_url.path_qs,
                headers=headers,
                data=await request.read(),
            ) as upstream:
                body = await upstream.read()
                status, content_type = upstream.status, upstream.content_type
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The participant is down (restarted by the run): what a load balancer
            # in front of it would answer.
            self.unanswered += 1
            return web.json_response(
                {"error": "unavailable", "detail": f"participant unreachable: {exc!r}"},
                status=503,
            )
        if request.method != "GET":
            await self._on_answered(kind)
        return web.Response(status=status, body=body, content_type=content_type)

    async def close(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()


_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
