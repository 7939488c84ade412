"""``GET /livez`` and ``GET /health``: the facade's liveness and readiness.

Liveness never touches the API server: a blip there must not make the kubelet
restart every facade replica at once. Readiness (``/health``) does: a replica that
cannot reach the API server is taken out of the Service until it can.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from korder.api.deps import Kube
from korder.api.problems import RETRY_AFTER_SECONDS
from korder.kube import orders

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    apiServer: Literal["reachable", "unreachable"]  # noqa: N815 - the JSON field's name


class Liveness(BaseModel):
    status: Literal["ok"]


@router.get("/livez", response_model=Liveness, operation_id="getLiveness")
async def livez() -> Liveness:
    """Alive while the process answers; no call to the API server."""
    return Liveness(status="ok")


@router.get("/health", response_model=Health, operation_id="getHealth")
async def health(kube: Kube) -> JSONResponse:
    """Healthy when the Kubernetes API server answers a list of Orders."""
    try:
        await orders.probe(kube)
    except orders.KubeError:
        body = Health(status="degraded", apiServer="unreachable")
        return JSONResponse(
            body.model_dump(), status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        )
    return JSONResponse(Health(status="ok", apiServer="reachable").model_dump())
