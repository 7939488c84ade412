"""``GET /health``: liveness and readiness of the facade."""

from __future__ import annotations

from typing import Literal

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from lightkube.core.exceptions import ApiError
from pydantic import BaseModel

from korder.api.deps import Kube
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
    except (ApiError, httpx.HTTPError, OSError):
        body = Health(status="degraded", apiServer="unreachable")
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "5"})
    return JSONResponse(Health(status="ok", apiServer="reachable").model_dump())
