"""The one FastAPI application that serves the three reference participants.

``/inventory``, ``/payment`` and ``/shipping`` are the services' base URLs (the
defaults of ``KORDER_INVENTORY_URL`` etc. point here); ``/livez`` and ``/health`` are
the probes (:mod:`.health`), ``/metrics`` for Prometheus (:mod:`.observing`).
The three share one :class:`.store.Store` on ``KORDER_PARTICIPANTS_STATE``, opened
here and closed when the app shuts down (or by whoever built it, with
``app.state.participants.close()``). Built by :mod:`.__main__` and by the unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from korder import __version__
from korder.participants import health, inventory, observing, payment, shipping, store
from korder.settings import Settings


@dataclass(frozen=True)
class Participants:
    """The three services and their state, so a test can look inside."""

    store: store.Store
    inventory: inventory.Inventory
    payment: payment.Payment
    shipping: shipping.Shipping

    def close(self) -> None:
        self.store.close()


def create_app(settings: Settings) -> FastAPI:
    state = store.Store(settings.participants_state)
    try:
        services = Participants(
            state,
            inventory.Inventory(state, settings.inventory_stock),
            payment.Payment(state, settings.payment_decline_over),
            shipping.Shipping(state),
        )
    except BaseException:
        state.close()
        raise

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="korder reference participants",
        version=__version__,
        description="Stand-ins for a shop's inventory, payment and shipping services.",
        lifespan=lifespan,
    )
    app.state.participants = services
    observing.install(app)
    app.include_router(inventory.router(services.inventory), prefix="/inventory")
    app.include_router(payment.router(services.payment), prefix="/payment")
    app.include_router(shipping.router(services.shipping), prefix="/shipping")
    app.include_router(health.router(state))

    return app
