"""``GET /livez`` and ``GET /health``: the facade's liveness and readiness.

Liveness never touches the API server: a blip there must not make the kubelet
restart every facade replica at once. Readiness (``/health``) does: a replica that
cannot reach the API server is taken out of the Service until it can. It looks
with a list of one Order (reachable, our credentials taken, our RBAC in the
namespace: what every route needs), but not on every call: the look is kept for
``KORDER_HEALTH_CACHE_SECONDS`` (:class:`Readiness`) and probes that arrive while
one is under way wait for it, so the kubelet, a load balancer and the image's
HEALTHCHECK together cost the API server one small list per period, whatever
their rate. The answer is then at most that old, which is the probe's own period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from korder.api.deps import Kube
from korder.api.problems import RETRY_AFTER_SECONDS
from korder.kube import orders

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    apiServer: Literal["reachable", "unreachable"]  # noqa: N815 - the JSON field's name


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness:
    """The facade's last look at the API server, answered to every probe while fresh.

    Made by :func:`korder.api.main.create_app`, one per app. A change of the answer
    is logged once, not at every probe.
    """

    def __init__(self, fresh_for: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fresh_for, self.clock = fresh_for, clock
        self._looked_at: float | None = None
        self._reachable: bool | None = None
        self._looking = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._looked_at is not None and self.clock() - self._looked_at < self.fresh_for

    async def reachable(self, look: Callable[[], Awaitable[None]]) -> bool:
        """Whether the API server answered ``look``, now or less than ``fresh_for`` ago."""
        if self._fresh():
            return bool(self._reachable)
        async with self._looking:
            if self._fresh():  # another probe looked while this one waited
                return bool(self._reachable)
            try:
                await look()
            except orders.KubeError as exc:
                if self._reachable is not False:
                    log.warning("not ready: the Kubernetes API server did not answer: %s", exc)
                self._reachable = False
            else:
                if self._reachable is False:
                    log.info("ready again: the Kubernetes API server answers")
                self._reachable = True
            self._looked_at = self.clock()
            return self._reachable


@router.get("/livez", response_model=Liveness, operation_id="getLiveness")
async def livez() -> Liveness:
    """Alive while the process answers; no call to the API server."""
    return Liveness(status="ok")


@router.get("/health", response_model=Health, operation_id="getHealth")
async def health(request: Request, kube: Kube) -> JSONResponse:
    """Ready when the Kubernetes API server answered a list of Orders (recently)."""
    readiness: Readiness = request.app.state.readiness
    if not await readiness.reachable(lambda: orders.probe(kube)):
        body = Health(status="degraded", apiServer="unreachable")
        return JSONResponse(
            body.model_dump(), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    return JSONResponse(Health(status="ok", apiServer="reachable").model_dump())
