"""The FastAPI application of the facade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from korder import __version__, constants
from korder.api import middleware, problems
from korder.api.routes import health, metrics, orders
from korder.kube import orders as kube_orders
from korder.settings import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    app.state.kube = kube_orders.make_client(settings.namespace, constants.FIELD_MANAGER_API)
    try:
        yield
    finally:
        await app.state.kube.close()


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="korder",
        version=__version__,
        description="Orders as Kubernetes resources, driven through a saga.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(orders.router)
    # One registry per app, so an app built in a test does not collide with another.
    app.state.metrics = CollectorRegistry()
    # Added last runs first: the limit refuses a body before anything else reads it,
    # and the metrics count that refusal too.
    app.add_middleware(middleware.BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(middleware.Metrics, registry=app.state.metrics)
    return app
