"""What every korder HTTP server does with each request: its id, its log lines, its metrics.

Plain ASGI middleware, shared by the facade (:mod:`korder.api.middleware`) and the
reference participants (:mod:`korder.participants.observing`), so both log and count
a request the same way (the participants may not import the facade). Plain ASGI
rather than Starlette's ``BaseHTTPMiddleware``, which buffers streaming responses and
runs the app in a separate task (where a context variable set would not be seen).

:class:`RequestContext` takes the caller's ``X-Request-ID`` when it is sane (1 to 128
printable ASCII characters without spaces) or makes one, echoes it on every answer,
binds it and the ``Idempotency-Key`` as log context (:mod:`korder.logs`) for every line
of the request, writes one access line when the answer is sent (uvicorn's own access
log is off), and is where an unexpected exception is logged, once, with its stack
and the request's context, and answered with the server's 500. :class:`RequestMetrics`
counts and times requests by route template, method and status.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from korder import logs

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
REPLAYED = (b"idempotent-replayed", b"true")

access_log = logging.getLogger("korder.access")

#: Builds the ASGI answer to an unexpected exception: the server's own 500.
Failure = Callable[[Scope], ASGIApp]


def request_id(raw: bytes | None) -> str:
    """The caller's id when it is sane (it goes into every log line), else a new one."""
    if raw and len(raw) <= MAX_REQUEST_ID_LENGTH and all(0x21 <= b <= 0x7E for b in raw):
        return raw.decode("ascii")
    return uuid.uuid4().hex


def idempotency_key(raw: bytes | None) -> str | None:
    """The Idempotency-Key for the log context when it is one the servers would take."""
    if raw and len(raw) <= MAX_IDEMPOTENCY_KEY_LENGTH and all(0x20 <= b <= 0x7E for b in raw):
        return raw.decode("ascii")
    return None


def route_of(scope: Scope) -> str:
    """The route template (``/orders/{order_id}``), ``unmatched`` when no route matched.

    The template, not the path: one metric series per route, not one per order. A
    route of a router included with a prefix (the participants' ``/payment``...) names
    only its own part in ``scope["route"]``; FastAPI (0.163) keeps the whole template
    in its own corner of the scope, undocumented, so that is read first (the
    participants' unit test of their metrics fails if an upgrade moves it).
    """
    included: Any = (scope.get("fastapi") or {}).get("effective_route_context")
    route: Any = scope.get("route")
    return str(getattr(included, "path", None) or getattr(route, "path", None) or "unmatched")


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name`` (lower case) among raw ASGI headers."""
    return next((v for k, v in headers if k.lower() == name), None)


class RequestContext:
    """Per request: its id, its log context, its access line, the log of an unexpected error.

    ``order`` names the order a request is about, from its scope once routed and the
    headers of its answer (a create's ``Location``), for the context of the access line.
    Installed outermost, so every answer passes it, refusals of the other middleware
    included.
    """

    def __init__(
        self,
        app: ASGIApp,
        failure: Failure,
        order: Callable[[Scope, list[tuple[bytes, bytes]]], dict[str, str | None]] | None = None,
    ) -> None:
        self.app, self.failure, self.order = app, failure, order

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers") or [])
        rid = request_id(header(headers, b"x-request-id"))
        # Routes read it as request.state.request_id.
        scope.setdefault("state", {})["request_id"] = rid
        status, answered = 500, False
        answer_headers: list[tuple[bytes, bytes]] = []

        async def sending(message: Message) -> None:
            nonlocal status, answered, answer_headers
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), True
                answer_headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                answer_headers.append((b"x-request-id", rid.encode("ascii")))
                message = {**message, "headers": answer_headers}
            await send(message)

        key = idempotency_key(header(headers, b"idempotency-key"))
        with logs.scope(request_id=rid, idempotency_key=key):
            started = time.perf_counter()
            try:
                await self.app(scope, receive, sending)
            except Exception:
                # Logged here, once, with the request's context; not raised on, so the
                # server does not log it a second time without that context.
                self._access(scope, 500, answer_headers, started, error=True)
                if not answered:
                    await self.failure(scope)(scope, receive, sending)
                return
            self._access(scope, status, answer_headers, started, error=False)

    def _access(
        self,
        scope: Scope,
        status: int,
        headers: list[tuple[bytes, bytes]],
        started: float,
        *,
        error: bool,
    ) -> None:
        if self.order:
            logs.bind(**self.order(scope, headers))
        method, path = scope["method"], scope.get("path", "")
        level = logging.ERROR if error else logging.WARNING if status >= 500 else logging.INFO
        access_log.log(
            level,
            "%s %s %s",
            method,
            path,
            "failed" if error else status,
            exc_info=error,
            extra={
                "method": method,
                "route": route_of(scope),
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )


class RequestMetrics:
    """Count and time every request by method, route template and status code.

    ``prefix`` names the series (``korder_api``: ``korder_api_requests_total``...);
    ``server`` says whose they are in their help. Replays (answers with
    ``Idempotent-Replayed: true``) are counted apart: a client that retries a lot
    shows up there. A subclass counts more from each answer in :meth:`observe`.
    """

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, prefix: str, server: str) -> None:
        self.app = app
        self.requests = Counter(
            f"{prefix}_requests",
            f"HTTP requests {server} answered.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_request_duration_seconds",
            f"Time {server} took to answer, by route.",
            ["method", "route"],
            registry=registry,
        )
        self.replays = Counter(
            f"{prefix}_idempotent_replays",
            "Writes answered by replaying the first outcome of their Idempotency-Key.",
            ["method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.observe(scope, status, headers, time.perf_counter() - started)

    def observe(
        self, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], seconds: float
    ) -> None:
        route, method = route_of(scope), scope["method"]
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if REPLAYED in headers:
            self.replays.labels(method, route).inc()
