"""Live updates of the console: server-sent events from a watch on Orders.

Called by the console's stream routes (:mod:`.routes`), which hand the generators
below to a streaming response. Each connected console has a watch of its own on the
API server (one per open page: simple, and fine for the handful of people who look
at a console; a shared informer in the façade is the step for many). A stream
renders the page's live part on the server and sends it whole as one ``fragment``
event; the page's script puts it in place. So the browser needs nothing but
``EventSource``, and the HTML is the same as a page without JavaScript gets.

Bounded: a stream ends after ``KORDER_CONSOLE_STREAM_SECONDS`` (or when the watch
is lost), and the browser reconnects by itself after the ``retry`` it was told,
starting from a fresh list; a comment every :data:`HEARTBEAT_SECONDS` keeps
proxies from closing a quiet stream. Bursts of changes are sent as one render at
most every :data:`COALESCE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from lightkube import AsyncClient

from korder.api.console import views
from korder.domain.order import Order
from korder.kube import orders

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS: Final = 15.0
COALESCE_SECONDS: Final = 0.25
#: How long the browser waits before it reconnects a stream that ended.
RETRY_MS: Final = 2000
#: The content type of a stream.
MEDIA_TYPE: Final = "text/event-stream"


def event(name: str, data: str) -> str:
    """One server-sent event: each line of ``data`` a ``data:`` field (the HTML spec's rule)."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


def _start() -> str:
    return f"retry: {RETRY_MS}\n\n"


_Changes = AsyncIterator[tuple[str, Order]]


async def _relay(changes: _Changes, queue: asyncio.Queue[tuple[str, Order] | None]) -> None:
    try:
        async for change in changes:
            await queue.put(change)
    except orders.KubeError as exc:
        # The browser reconnects and lists again; nothing is lost but a moment of liveness.
        log.warning("console watch ended early", extra={"error": exc.message})
    finally:
        await queue.put(None)


async def _stream(
    changes: _Changes,
    apply: Callable[[str, Order], None],
    render: Callable[[], Awaitable[str]],
) -> AsyncIterator[str]:
    """The first render, then one render after each burst of changes, with heartbeats."""
    yield _start()
    yield event("fragment", await render())
    queue: asyncio.Queue[tuple[str, Order] | None] = asyncio.Queue()
    relay = asyncio.create_task(_relay(changes, queue))
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if change is None:
                return
            apply(*change)
            until = loop.time() + COALESCE_SECONDS
            ended = False
            while (left := until - loop.time()) > 0:
                try:
                    more = await asyncio.wait_for(queue.get(), left)
                except TimeoutError:
                    break
                if more is None:
                    ended = True
                    break
                apply(*more)
            yield event("fragment", await render())
            if ended:
                return
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def board(
    kube: AsyncClient,
    seconds: float,
    render: Callable[[views.Board], Awaitable[str]],
) -> AsyncIterator[str]:
    """The orders page's live part: the namespace listed once, then followed on a watch."""
    snapshot = await orders.list_all(kube)
    state = views.Board.of(snapshot.items)
    changes = orders.watch_all(kube, snapshot.resource_version, seconds)
    async for chunk in _stream(changes, state.apply, lambda: render(state)):
        yield chunk


async def order(
    kube: AsyncClient,
    first: Order,
    seconds: float,
    render: Callable[[Order], Awaitable[str]],
) -> AsyncIterator[str]:
    """An order's page's live part, from ``first`` on, each time the order changes."""
    latest = [first]

    def apply(kind: str, changed: Order) -> None:
        latest[0] = changed

    async def changes() -> _Changes:
        meta = first.metadata
        async for changed in orders.watch(kube, meta.name, meta.resource_version, seconds):
            yield "MODIFIED", changed

    async for chunk in _stream(changes(), apply, lambda: render(latest[0])):
        yield chunk
