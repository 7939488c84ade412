"""Faults a test switches on in a participant: an outage, or answers held back.

``PUT {service}/faults`` sets them, ``GET {service}/faults`` shows them. An outage
answers every write with 503 before any effect; held answers apply the effect,
record it in the ledger, and keep the HTTP answer back until the hold is lifted,
which is how a test kills the operator between a participant's effect and the
operator's status write. Either answer says so in its ``Fault-Injected`` header.
Used by :mod:`.replays`; the operator knows nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: The header on an answer a fault changed: ``unavailable`` or ``held``. Says to a
#: person reading a 503 that it was injected, and is what the metrics count
#: (:mod:`.observing`).
HEADER = "Fault-Injected"

#: A held answer is let go after this long even if no one lifts the hold, so a
#: forgotten switch cannot wedge a connection forever.
HOLD_LIMIT_SECONDS = 120.0


class FaultSwitches(BaseModel):
    """The faults of one service."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    unavailable: bool = Field(default=False, description="Answer every write with 503.")
    hold_responses: bool = Field(
        default=False, description="Apply writes but hold their answers until switched off."
    )


class Faults:
    def __init__(self) -> None:
        self._switches = FaultSwitches()
        self._released = asyncio.Event()
        self._released.set()

    @property
    def unavailable(self) -> bool:
        return self._switches.unavailable

    def set(self, switches: FaultSwitches) -> FaultSwitches:
        self._switches = switches
        if switches.hold_responses:
            self._released.clear()
        else:
            self._released.set()
        return self._switches

    def get(self) -> FaultSwitches:
        return self._switches

    async def hold(self) -> bool:
        """Wait while answers are held (at most :data:`HOLD_LIMIT_SECONDS`); whether it did."""
        if self._released.is_set():
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), HOLD_LIMIT_SECONDS)
        return True
