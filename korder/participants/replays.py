"""Idempotency by key for the participants' writes: the first answer, replayed.

Every write carries an ``Idempotency-Key`` header. The first request with a key
runs and its answer (status and body, a business refusal included) is kept; a
later request with the same key gets that answer again and changes nothing. Two
requests with the same key at the same time are serialised by a lock per key, so
the second waits and replays. The same key on a different request is refused with
422, as the IETF draft on the header asks.

Called by the routers in :mod:`.inventory`, :mod:`.payment` and :mod:`.shipping`.
Kept in memory: the reference participants are stand-ins, and a restart of their
process starts a fresh shop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse

from korder.participants import faults

#: An answer: HTTP status and JSON body.
Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class _Kept:
    fingerprint: str
    answer: Answer


class Replays:
    """The answers given so far, by idempotency key."""

    def __init__(self) -> None:
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def once(
        self,
        key: str,
        request: object,
        effect: Callable[[], Answer],
        switches: faults.Faults,
    ) -> JSONResponse:
        """Run ``effect`` for the first request with ``key``; replay its answer after that."""
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            kept = self._kept.get(key)
            if kept is not None:
                if kept.fingerprint != fingerprint:
                    return JSONResponse(
                        {
                            "error": "idempotency_key_reused",
                            "detail": "This Idempotency-Key was used for a different request.",
                        },
                        status_code=422,
                    )
                code, body = kept.answer
                return JSONResponse(body, status_code=code, headers={"Idempotent-Replayed": "true"})
            if switches.unavailable:
                # A simulated outage happens before the effect and is not kept: a
                # retry after the outage runs the request for real.
                return JSONResponse(
                    {"error": "unavailable", "detail": "The service is down (fault injected)."},
                    status_code=503,
                )
            code, body = effect()
            self._kept[key] = _Kept(fingerprint, (code, body))
        # Outside the lock: a held answer must not block the replay of its own key.
        await switches.hold()
        return JSONResponse(body, status_code=code)
