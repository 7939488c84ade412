"""The FastAPI application of the facade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from korder import __version__, constants
from korder.api import access, console, deps, middleware, problems, waiting
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


def _operation_id(route: APIRoute) -> str:
    """``create_order`` -> ``createOrder``: the function's name, in camelCase."""
    first, *rest = route.name.split("_")
    return first + "".join(word.title() for word in rest)


def _namespaced_operation_id(route: APIRoute) -> str:
    """``create_order`` -> ``createNamespacedOrder``, as Kubernetes' own API names them."""
    verb, *rest = route.name.split("_")
    return verb + "Namespaced" + "".join(word.title() for word in rest)


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
    # The seed's /orders, in the default namespace, and the same routes for any tenant.
    app.include_router(orders.router, prefix="/orders", generate_unique_id_function=_operation_id)
    app.include_router(
        orders.router,
        prefix="/namespaces/{namespace}/orders",
        dependencies=[Depends(deps.namespace_in_path)],
        generate_unique_id_function=_namespaced_operation_id,
    )
    console.install(app)
    # One registry per app, so an app built in a test does not collide with another.
    app.state.metrics = CollectorRegistry()
    # The standard process_*, python_info and python_gc_* series, which the default
    # registry would carry (and the operator's does): CPU, memory, open files, GC.
    ProcessCollector(registry=app.state.metrics)
    PlatformCollector(registry=app.state.metrics)
    GCCollector(registry=app.state.metrics)
    app.state.waits = waiting.Waits(app.state.metrics)
    app.state.gate = access.Gate(
        lambda: app.state.kube,
        allow_unauthenticated=settings.allow_unauthenticated,
        cache_seconds=settings.auth_cache_seconds,
    )
    app.state.readiness = health.Readiness(settings.health_cache_seconds)
    # Added last runs first: the limit refuses a body before anything else reads it,
    # the metrics count that refusal too, and every answer carries its request id.
    app.add_middleware(middleware.BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(middleware.Metrics, registry=app.state.metrics)
    app.add_middleware(middleware.RequestContext, namespace=settings.namespace)
    return app
