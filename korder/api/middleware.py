"""ASGI middleware of the facade: the body-size limit, the request metrics and context.

Installed by :func:`korder.api.main.create_app`. Plain ASGI rather than Starlette's
``BaseHTTPMiddleware``, which buffers streaming responses and runs the app in a
separate task; the metrics and the request context are :mod:`korder.serving`'s,
shared with the reference participants, with the facade's names and error shape.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from korder import serving
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


class Metrics(serving.RequestMetrics):
    """The facade's request metrics: ``korder_api_requests_total`` and the rest."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        super().__init__(app, registry, prefix="korder_api", server="the facade")


class RequestContext(serving.RequestContext):
    """The request id, log context and access line of each request (:mod:`korder.serving`).

    An unexpected exception is answered with the facade's 500 problem document; the
    access line names the order of ``/orders/{order_id}`` or of a create's ``Location``.
    """

    def __init__(self, app: ASGIApp, namespace: str) -> None:
        def order(scope: Scope, headers: list[tuple[bytes, bytes]]) -> dict[str, str | None]:
            params = scope.get("path_params") or {}
            name = params.get("order_id")
            location = serving.header(headers, b"location")
            if not name and location and b"/orders/" in location:
                name = location.rsplit(b"/orders/", 1)[1].decode("ascii", "replace")
            return {"order": name, "namespace": params.get("namespace", namespace)} if name else {}

        super().__init__(app, failure=_internal, order=order)


def _internal(scope: Scope) -> ASGIApp:
    # A bug of ours: the client gets the same shape as every other error.
    problem = problems.Problem(
        500, "internal", "Internal error", "The server failed; the failure is logged."
    )
    return problems.response(problem, scope.get("path"))
