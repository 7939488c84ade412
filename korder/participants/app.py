"""The one FastAPI application that serves the three reference participants.

``/inventory``, ``/payment`` and ``/shipping`` are the services' base URLs (the
defaults of ``KORDER_INVENTORY_URL`` etc. point here); ``/health`` is for probes.
Built by :mod:`.__main__` and by the unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from korder import __version__
from korder.participants import inventory, payment, shipping
from korder.settings import Settings


@dataclass(frozen=True)
class Participants:
    """The three services' state, so a test can look inside."""

    inventory: inventory.Inventory
    payment: payment.Payment
    shipping: shipping.Shipping


def create_app(settings: Settings) -> FastAPI:
    services = Participants(
        inventory.Inventory(settings.inventory_stock),
        payment.Payment(settings.payment_decline_over),
        shipping.Shipping(),
    )
    app = FastAPI(
        title="korder reference participants",
        version=__version__,
        description="Stand-ins for a shop's inventory, payment and shipping services.",
    )
    app.state.participants = services
    app.include_router(inventory.router(services.inventory), prefix="/inventory")
    app.include_router(payment.router(services.payment), prefix="/payment")
    app.include_router(shipping.router(services.shipping), prefix="/shipping")

    @app.get("/health", response_model=dict[str, str], tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
