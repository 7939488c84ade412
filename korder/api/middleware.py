"""ASGI middleware of the facade: the body-size limit and the request metrics.

Installed by :func:`korder.api.main.create_app`. Both are plain ASGI rather than
Starlette's ``BaseHTTPMiddleware``, which buffers streaming responses and runs the
app in a separate task.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from korder.api import problems


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413, before anything parses it.

    A declared Content-Length over the limit is refused without reading a byte. A body
    without one (chunked) is read up to the limit and refused as soon as it passes it;
    what was read is then handed to the app as if it came from the client.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        messages: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, send)
                return
            more = message.get("more_body", False)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        problem = problems.Problem(
            413,
            "payload-too-large",
            "Request body too large",
            f"The request body is larger than {self.limit} bytes.",
        )
        await problems.response(problem, scope.get("path"))(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class Metrics:
    """Count and time every request by method, route template and status code.

    Replays are counted apart: a client that retries a lot shows up there.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "korder_api_requests",
            "HTTP requests the facade answered.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "korder_api_request_duration_seconds",
            "Time the facade took to answer, by route (Prefer: wait included).",
            ["method", "route"],
            registry=registry,
        )
        self.replays = Counter(
            "korder_api_idempotent_replays",
            "Writes answered by replaying the first outcome of their Idempotency-Key.",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status, replayed = 500, False
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                replayed = (b"idempotent-replayed", b"true") in message.get("headers", [])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route_of(scope)
            self.requests.labels(scope["method"], route, str(status)).inc()
            self.latency.labels(scope["method"], route).observe(time.perf_counter() - started)
            if replayed:
                self.replays.labels(scope["method"], route).inc()


def _route_of(scope: Scope) -> str:
    # The template (/orders/{order_id}), not the path: one series per route, not per order.
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
