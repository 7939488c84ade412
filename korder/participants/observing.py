"""The reference participants' metrics and request logs: ``GET /metrics`` and the middleware.

:func:`install` is called once by :func:`korder.participants.app.create_app`. The
series follow the facade's conventions (:mod:`korder.serving`, the same middleware):
``korder_participants_requests_total`` and ``_request_duration_seconds`` by method,
route template and status, ``_idempotent_replays_total`` for the writes answered from
a kept answer, and ``korder_participants_faults_injected_total`` for the answers a
test's fault changed (read from their ``Fault-Injected`` header, :mod:`.faults`), with
the standard process series, in a registry of the app's own (a test may build several
apps in one process).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Scope

from korder import serving
from korder.participants import faults, service

_FAULT_HEADER = faults.HEADER.lower().encode("ascii")


class Metrics(serving.RequestMetrics):
    """The facade's request metrics under the participants' prefix, and the faults."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        super().__init__(app, registry, prefix="korder_participants", server="a participant")
        self.faults = Counter(
            "korder_participants_faults_injected",
            "Answers a switched-on fault changed: 'unavailable' (503 before any effect) "
            "or 'held' (the effect applied, the answer held back).",
            ["route", "fault"],
            registry=registry,
        )

    def observe(
        self, scope: Scope, status: int, headers: list[tuple[bytes, bytes]], seconds: float
    ) -> None:
        super().observe(scope, status, headers, seconds)
        fault = serving.header(headers, _FAULT_HEADER)
        if fault:
            self.faults.labels(serving.route_of(scope), fault.decode("ascii", "replace")).inc()


def _internal(_scope: Scope) -> ASGIApp:
    code, body = service.error(500, "internal", "The service failed; the failure is logged.")
    return JSONResponse(body, status_code=code)


def install(app: FastAPI) -> None:
    """Serve ``/metrics`` and count, time and log every request of ``app``."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    app.state.metrics = registry

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def metrics(request: Request) -> PlainTextResponse:
        """Requests, replays and injected faults, in Prometheus' text format."""
        body = generate_latest(request.app.state.metrics)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    # Added last runs first: every answer, a metric's own included, gets its request id.
    app.add_middleware(Metrics, registry=registry)
    app.add_middleware(serving.RequestContext, failure=_internal)
