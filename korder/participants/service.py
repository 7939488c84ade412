"""What the three reference participants share: state, ledger, replays, faults, routes.

Each service (:mod:`.inventory`, :mod:`.payment`, :mod:`.shipping`) is a
:class:`Service` with its own router, and its rows in the one :class:`.store.Store`
under its name; :func:`common_routes` adds the ``/ledger`` and ``/faults``
endpoints every one of them has.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from korder.participants import faults, ledger, replays, store

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="The same key replays the first answer and never repeats the effect.",
    ),
]


class Camel(BaseModel):
    """JSON in camelCase, like the rest of korder's HTTP."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Error(BaseModel):
    """A refusal: ``error`` is a machine word (out_of_stock, declined, not_found)."""

    error: str
    detail: str


def error(code: int, word: str, detail: str) -> replays.Answer:
    return code, Error(error=word, detail=detail).model_dump()


class Service:
    """A participant's state besides its business: its ledger, its replays, its faults.

    The faults are test switches and stay in memory: a restart switches them off.
    """

    def __init__(self, state: store.Store, name: str) -> None:
        self.store = state
        self.name = name
        self.replays = replays.Replays(state, name)
        self.faults = faults.Faults()

    async def ledger(self, order_id: str | None = None) -> list[dict[str, Any]]:
        """Every effect so far, oldest first (optionally of one order)."""
        return await self.store.run(lambda db: ledger.entries(db, self.name, order_id))


def common_routes(router: APIRouter, service: Service) -> None:
    @router.get("/ledger", response_model=list[dict[str, Any]])
    async def get_ledger(
        order_id: Annotated[str | None, Query(alias="orderId")] = None,
    ) -> list[dict[str, Any]]:
        """Every effect so far, oldest first (optionally of one order)."""
        return await service.ledger(order_id)

    @router.get("/faults", response_model=faults.FaultSwitches)
    async def get_faults() -> faults.FaultSwitches:
        """The faults switched on in this service."""
        return service.faults.get()

    @router.put("/faults", response_model=faults.FaultSwitches)
    async def put_faults(switches: faults.FaultSwitches) -> faults.FaultSwitches:
        """Switch faults on or off (tests and demos)."""
        return service.faults.set(switches)
