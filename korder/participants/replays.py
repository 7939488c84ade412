"""Idempotency by key for the participants' writes: the first answer, replayed.

Every write carries an ``Idempotency-Key`` header. The first request with a key
runs and its answer (status and body, a business refusal included) is kept; a
later request with the same key gets that answer again and changes nothing. The
same key on a different request is refused with 422, as the IETF draft on the
header asks.

The lookup, the effect and the kept answer are one transaction of :mod:`.store`,
so a crash leaves either the effect with its answer or neither, and a restart on
the same state file replays every earlier key; transactions run one at a time, so
two requests with the same key at once are serialised: the second replays.

Called by the routers in :mod:`.inventory`, :mod:`.payment` and :mod:`.shipping`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from typing import Any, Literal

from fastapi.responses import JSONResponse

from korder.participants import faults, store

#: An answer: HTTP status and JSON body.
Answer = tuple[int, dict[str, Any]]
#: An effect: runs in the transaction that keeps its answer.
Effect = Callable[[sqlite3.Connection], Answer]
#: What became of a request: it ran now, it got a kept answer, it was refused unrun,
#: or an outage (a fault switched on) answered it.
Outcome = Literal["applied", "replayed", "refused", "outage"]

_REUSED: Answer = (
    422,
    {
        "error": "idempotency_key_reused",
        "detail": "This Idempotency-Key was used for a different request.",
    },
)
_UNAVAILABLE: Answer = (
    503,
    {"error": "unavailable", "detail": "The service is down (fault injected)."},
)


class Replays:
    """The answers one service gave so far, by idempotency key."""

    def __init__(self, state: store.Store, service: str) -> None:
        self._store = state
        self._service = service

    async def once(
        self, key: str, request: object, effect: Effect, switches: faults.Faults
    ) -> JSONResponse:
        """Run ``effect`` for the first request with ``key``; replay its answer after that."""
        fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()

        def work(db: sqlite3.Connection) -> tuple[Outcome, Answer]:
            kept = db.execute(
                "SELECT fingerprint, status, body FROM replays WHERE service = ? AND key = ?",
                (self._service, key),
            ).fetchone()
            if kept is not None:
                if kept[0] != fingerprint:
                    return "refused", _REUSED
                return "replayed", (kept[1], json.loads(kept[2]))
            if switches.unavailable:
                # A simulated outage happens before the effect and is not kept: a
                # retry after the outage runs the request for real.
                return "outage", _UNAVAILABLE
            code, body = effect(db)
            db.execute(
                "INSERT INTO replays (service, key, fingerprint, status, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (self._service, key, fingerprint, code, json.dumps(body)),
            )
            return "applied", (code, body)

        outcome, (code, body) = await self._store.run(work)
        if outcome == "replayed":
            return JSONResponse(body, status_code=code, headers={"Idempotent-Replayed": "true"})
        if outcome == "refused":
            return JSONResponse(body, status_code=code)
        if outcome == "outage":
            return JSONResponse(body, status_code=code, headers={faults.HEADER: "unavailable"})
        # After the commit: a held answer must not block the replay of its own key.
        if await switches.hold():
            return JSONResponse(body, status_code=code, headers={faults.HEADER: "held"})
        return JSONResponse(body, status_code=code)
