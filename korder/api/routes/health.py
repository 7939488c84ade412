"""``GET /health``: liveness and readiness of the facade."""

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
