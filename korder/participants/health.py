"""The reference participants' probes: ``GET /livez`` and ``GET /health``.

Liveness answers while the process does. Readiness also takes the state's write
lock for an empty transaction (:mod:`.store`): a participant whose SQLite file another
process holds (a pod being replaced on the same volume) cannot take a write, and is
taken out of the Service until it can, rather than restarted. Included by
:func:`korder.participants.app.create_app`.
"""

from __future__ import annotations

import logging
import sqlite3

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from korder.participants import store

log = logging.getLogger(__name__)


def router(state: store.Store) -> APIRouter:
    r = APIRouter(tags=["health"])

    @r.get("/livez", response_model=dict[str, str])
    async def livez() -> dict[str, str]:
        """Alive while the process answers."""
        return {"status": "ok"}

    @r.get("/health", response_model=dict[str, str])
    async def health() -> JSONResponse:
        """Ready when the state takes a write now."""
        try:
            await state.run(lambda db: None)
        except sqlite3.Error as exc:
            log.warning("not ready: the state takes no write: %s", exc)
            return JSONResponse({"status": "degraded"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return r
